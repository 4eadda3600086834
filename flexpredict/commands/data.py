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
    source: list[Path] = typer.Option(None, "--source", "-s", help="Results tree, cm-result.json, "
                                      "cmx-result-summary.json, OpenMLPerf data.parquet/json or a bench run folder "
                                      "(repeatable). Default: every round in ../shared/data/mlperf."),
    out: Path = typer.Option(None, "--out", "-o", help="Output parquet/CSV file. Default: the shipped dataset "
                             "when no --source is given, else ./dataset.parquet."),
    strict: bool = typer.Option(False, help="Fail (and write nothing) if any file had to be skipped."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read MLPerf results (any format) and flexpredict runs into one record table."""
    from .. import dataset
    from ..ingest import NoInputError, build_dataset

    started = time.perf_counter()
    try:
        with progress_bar("reading", enabled=not quiet) as update:
            frame, report = build_dataset(source or None, on_progress=update)
    except NoInputError as exc:
        fail(str(exc), code=1)
    elapsed = time.perf_counter() - started
    for path, reason in report.skipped:
        err_console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False, soft_wrap=True)
    read = ", ".join(f"{n} {kind}" for kind, n in sorted(report.files_read.items()))
    console.print(f"read {report.total_files} files ({read}); {sum(report.rows_read.values())} summary rows; "
                  f"skipped {len(report.skipped)} files" + (f"; rows not usable: {dict(report.dropped)}"
                                                            if report.dropped else ""), highlight=False)
    if strict and report.skipped:
        fail(f"--strict: {len(report.skipped)} file(s) skipped, nothing written", code=1)
    target = out or (dataset.SHIPPED if not source else Path("dataset.parquet"))
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
    rounds = sorted(cov["rounds"])
    summary = Table(title=f"{cov['rows']} records", title_justify="left")
    for column in ["round", "records", "with power", "with TTFT/TPOT"]:
        summary.add_column(column, justify="right")
    for rnd in rounds:
        summary.add_row(rnd, str(cov["rounds"][rnd]), str(cov["with_power"].get(rnd, 0)),
                        str(cov["with_ttft_tpot"].get(rnd, 0)))
    console.print(summary)
    console.print(_coverage_table(frame, rounds))
    console.print(f"accelerator names mapped to the catalog: {cov['accelerator_mapped_share']:.1%} of all records, "
                  f"{cov['accelerator_mapped_share_datacenter']:.1%} of datacenter records", highlight=False)
    unknown = cov["unknown_accelerators"]
    if unknown:
        listed = ", ".join(f"{name} ({n})" for name, n in list(unknown.items())[:15])
        console.print(f"unknown accelerators ({len(unknown)} names): {listed}"
                      + (" ..." if len(unknown) > 15 else ""), highlight=False, soft_wrap=True)


def _coverage_table(frame, rounds) -> Table:
    """Rows per benchmark x scenario and round; open-division variants of a task are lumped into one line."""
    from .. import catalogs

    known = set()
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
    format: ExportFormat = typer.Option(ExportFormat.parquet, "--format", "-f", help="openmlperf writes the "
                                        "OpenMLPerf column names (metrics.result, system.accelerator.name, ...)."),
    file: Path = typer.Option(None, "--dataset", help="Dataset file (default: the shipped dataset)."),
) -> None:
    """Export the dataset as parquet, CSV, or in the OpenMLPerf column layout."""
    from .. import dataset

    frame = load_records(file)
    if format is ExportFormat.openmlperf:
        frame = dataset.to_openmlperf(frame)
    elif format is ExportFormat.csv and out.suffix.lower() != ".csv":
        out = out.with_suffix(".csv")
    dataset.save(frame, out)
    console.print(f"wrote {len(frame)} rows to {out}", highlight=False)
