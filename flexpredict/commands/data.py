"""`flexpredict data build | info | export`: the Open MLPerf dataset."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from .common import console, err_console, fail, load_records, progress_bar

app = typer.Typer(help="Build, inspect and export the record dataset.", no_args_is_help=True)


class ExportFormat(str, Enum):
    openmlperf = "openmlperf"
    csv = "csv"
    parquet = "parquet"


@app.command()
def build(
    source: list[Path] = typer.Option(
        None,
        "--source",
        "-s",
        help="Results tree, cm-result.json, "
        "cmx-result-summary.json, OpenMLPerf data.parquet/json or a bench run folder "
        "(repeatable). Default: every round folder in ../shared/data/mlperf/raw and "
        "the latency-under-load sample in ../shared/data/aic_silicon_sample.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Output parquet/CSV file. Default: "
        "$FLEXPREDICT_HOME/data/mlperf_records.parquet (~/.local/share/flexpredict/...) when no "
        "--source is given, else ./dataset.parquet. The shipped dataset only when named here.",
    ),
    strict: bool = typer.Option(
        False,
        help="Fail (and write nothing) if any file had to be skipped, or a published "
        "result is missing from the records or listed twice.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read MLPerf results (any format) and flexpredict runs into one record table."""
    from .. import dataset
    from ..ingest import NoInputError, build_dataset
    from ..io import user_dataset_file

    target = out or (user_dataset_file() if not source else Path("dataset.parquet"))
    if target.is_dir() or target.suffix.lower() not in (".parquet", ".csv", ".json", ".jsonl"):
        fail(f"--out: expected a .parquet, .csv, .json or .jsonl file, got '{target}'")
    started = time.perf_counter()
    try:
        with progress_bar("reading", enabled=not quiet) as update:
            frame, report = build_dataset(source or None, on_progress=update)
    except NoInputError as exc:
        fail(str(exc))
    elapsed = time.perf_counter() - started
    for path, reason in report.skipped:
        err_console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False, soft_wrap=True)
    read = ", ".join(f"{n} {kind}" for kind, n in sorted(report.files_read.items()))
    console.print(
        f"read {report.total_files} files ({read}); {sum(report.rows_read.values())} summary rows; "
        f"skipped {len(report.skipped)} files"
        + (f"; rows not usable: {dict(report.dropped)}" if report.dropped else ""),
        highlight=False,
    )
    for table in report.tables.values():
        console.print(table.line(), highlight=False, soft_wrap=True)
    if strict and report.skipped:
        fail(f"--strict: {len(report.skipped)} file(s) skipped, nothing written")
    if strict and report.incomplete:
        fail(f"--strict: {report.incomplete[0].line()}; nothing written")
    dataset.save(frame, target)
    console.print(f"wrote {len(frame)} records to {target} in {elapsed:.1f} s", highlight=False)


@app.command()
def info(
    file: Path = typer.Argument(None, help="Dataset file (default: the shipped dataset)."),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage numbers as JSON."),
) -> None:
    """Coverage: records by round x benchmark x scenario, power, TTFT/TPOT, accelerator mapping."""
    from .. import dataset

    frame = load_records(file)
    cov = dataset.coverage(frame)
    if as_json:
        console.print_json(json.dumps(cov))
        return
    rounds = list(cov["rounds"])
    summary = Table(title=f"{cov['rows']} records", title_justify="left")
    for column in ["round", "records", "with power", "with TTFT/TPOT", "with latency bounds"]:
        summary.add_column(column, justify="right")
    for rnd in rounds:
        summary.add_row(
            rnd,
            str(cov["rounds"][rnd]),
            *(str(cov[key].get(rnd, 0)) for key in ("with_power", "with_ttft_tpot", "with_bounds")),
        )
    console.print(summary)
    for title, key in (("source", "sources"), ("scenario", "scenarios")):
        console.print(
            f"records per {title}: " + ", ".join(f"{k} {v}" for k, v in cov[key].items()),
            highlight=False,
            soft_wrap=True,
        )
    models = list(cov["models"].items())
    console.print(
        f"records per model ({len(models)} models): "
        + ", ".join(f"{k} {v}" for k, v in models[:20])
        + (" ..." if len(models) > 20 else ""),
        highlight=False,
        soft_wrap=True,
    )
    mlperf_rounds = [r for r in rounds if r.startswith("v")]
    console.print(_coverage_table(frame[frame["round"].isin(mlperf_rounds)], mlperf_rounds))
    console.print(
        f"accelerator names mapped to the catalog: {cov['accelerator_mapped']} of {cov['rows']} records "
        f"({_share(cov['accelerator_mapped'], cov['rows'])}), {cov['accelerator_mapped_datacenter']} of "
        f"{cov['datacenter_records']} datacenter records "
        f"({_share(cov['accelerator_mapped_datacenter'], cov['datacenter_records'])})",
        highlight=False,
    )
    unknown = cov["unknown_accelerators"]
    if unknown:
        listed = ", ".join(f"{name} ({n})" for name, n in list(unknown.items())[:15])
        console.print(
            f"unmapped accelerators ({len(unknown)} names, {sum(unknown.values())} records): {listed}"
            + (" ..." if len(unknown) > 15 else ""),
            highlight=False,
            soft_wrap=True,
        )


def _share(part: int, whole: int) -> str:
    """A percentage that reads 100 % only when nothing is missing."""
    if not whole:
        return "n/a"
    share = part / whole
    return "100 %" if part == whole else f"{min(share, 0.9999):.2%}"


def _coverage_table(frame, rounds) -> Table:
    """Rows per benchmark x scenario and round; open-division variants of a task are lumped into one line."""
    from .. import catalogs

    known: set[str] = set()
    try:
        for row in catalogs.models().rows:
            known.update(str(b).lower() for b in row.get("mlperf_benchmarks") or [])
    except (FileNotFoundError, catalogs.CatalogError):
        pass
    bench = frame["benchmark"].where(frame["benchmark"].isin(known), "(open-division variants)")
    counts = frame.assign(bench=bench).groupby(["bench", "scenario", "round"]).size().unstack("round", fill_value=0)
    table = Table(title="records by benchmark x scenario x round", title_justify="left")
    table.add_column("benchmark")
    table.add_column("scenario")
    for rnd in rounds:
        table.add_column(rnd, justify="right")
    for (name, scenario), row in counts.iterrows():
        table.add_row(name, scenario, *[str(int(row.get(r, 0))) or "" for r in rounds])
    return table


@app.command()
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Output file."),
    format: ExportFormat = typer.Option(
        ExportFormat.parquet,
        "--format",
        "-f",
        help="openmlperf writes the OpenMLPerf column names (metrics.result, system.accelerator.name, ...).",
    ),
    file: Path = typer.Option(None, "--dataset", help="Dataset file (default: the shipped dataset)."),
) -> None:
    """Export the dataset as parquet, CSV, or in the OpenMLPerf column layout."""
    from .. import dataset
    from ..schema import SchemaError

    frame = load_records(file)
    if format is ExportFormat.openmlperf:
        left_out = int((~dataset.mlperf_results(frame)).sum())
        frame = dataset.to_openmlperf(frame)
        if left_out:
            err_console.print(
                f"left out {left_out} records that are no MLPerf results (own runs, latency-under-load "
                "samples): the OpenMLPerf layout has no place for them",
                highlight=False,
            )
    elif format is ExportFormat.csv and out.suffix.lower() != ".csv":
        out = out.with_suffix(".csv")
    try:
        dataset.save(frame, out)
    except SchemaError as exc:  # an unknown suffix, or a folder
        fail(f"--out: {exc}")
    console.print(f"wrote {len(frame)} rows to {out}", highlight=False)
