"""`flexpredict explain | report`: SHAP explanations of the predictions, and the static HTML report."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ..io import strict_json
from .common import (
    console,
    fail,
    known_targets,
    load_model,
    load_records,
    model_folder,
    non_negative_count,
    positive_count,
    progress_bar,
)
from .model import COUNT, ENGINE, MODEL, MODEL_DIR, NODES, PRECISION, SCENARIO, configuration_record


class Format(str, Enum):
    table = "table"
    json = "json"


def explain(
    accelerator: str = typer.Option(None, help="One configuration (as for `predict`): accelerator id or name."),
    count: int = COUNT,
    nodes: int = NODES,
    model: str = MODEL,
    scenario: str = SCENARIO,
    precision: str = PRECISION,
    engine: str = ENGINE,
    record_id: str = typer.Option(None, "--record-id", help="Explain this record of the dataset instead."),
    target: list[str] = typer.Option(
        None,
        "--target",
        "-t",
        callback=known_targets,
        help="Targets (repeatable; default: every one the model has, or that applies to the configuration).",
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Write the plots (PNG) into this folder."),
    output_format: Format = typer.Option(Format.table, "--format", help="table or json."),
    sample: int = typer.Option(
        4000, help="Global view: design rows explained per target (0: all).", callback=non_negative_count
    ),
    top: int = typer.Option(8, help="Features shown per target.", callback=positive_count),
    dataset_file: Path = typer.Option(None, "--dataset", help="Records (default: the shipped dataset)."),
    model_dir: Path = MODEL_DIR,
) -> None:
    """Why the model predicts what it does (SHAP): globally without a configuration, or for one configuration
    (--accelerator ... --model ...) or dataset record (--record-id)."""
    from ..explain import ExplainError
    from ..predictors import TARGETS

    if record_id and (accelerator or model):
        fail("give one configuration (--accelerator, --model, ...) or --record-id, not both")
    local = bool(record_id or accelerator or model)
    # one configuration ends at the number `predict` returns, whose constraints read the other targets (energy =
    # power / throughput): load them all
    bundle = load_model(model_dir, targets=tuple(target) if target and not local else None)
    names = list(target) if target else [n for n in TARGETS if hasattr(bundle.predictors.get(n), "transfer_design")]
    if out:
        import matplotlib

        matplotlib.use("Agg")
        out.mkdir(parents=True, exist_ok=True)
    try:
        if local:
            _local(
                bundle,
                names,
                _one_record(record_id, dataset_file, accelerator, count, nodes, model, scenario, precision, engine),
                out,
                output_format,
                top,
            )
        else:
            _global(bundle, names, load_records(dataset_file), out, output_format, sample, top)
    except ExplainError as exc:
        fail(str(exc))


def _one_record(record_id, dataset_file, accelerator, count, nodes, model, scenario, precision, engine):
    """The record to explain: a dataset record by id, or a configuration as `predict` builds it."""
    if record_id:
        records = load_records(dataset_file)
        found = records[records["record_id"].astype(str) == record_id]
        if found.empty:
            fail(f"--record-id: no record '{record_id}' in {dataset_file or 'the shipped dataset'}")
        return found.head(1)
    if accelerator is None or model is None:
        fail("a configuration needs --accelerator and --model (or explain a dataset record with --record-id)")
    return configuration_record(accelerator, count, nodes, model, scenario, precision, engine)


def _local(bundle, names, record, out, output_format, top) -> None:
    from ..explain import explain_configuration, waterfall_plot

    explanations = [e for name in names for e in explain_configuration(bundle, record, name)]
    if not explanations:
        fail(
            f"none of {', '.join(names)} is predicted for {record.iloc[0]['model']} in the "
            f"{record.iloc[0]['scenario']} scenario"
        )
    plots = []
    for item in explanations:
        if out:
            plots.append(str(out / f"waterfall_{item.target}.png"))
            waterfall_plot(item, plots[-1])
    if output_format is Format.json:
        print(
            strict_json(
                {
                    "view": "local",
                    "configuration": explanations[0].configuration,
                    "record_id": explanations[0].record_id,
                    "targets": {e.target: e.to_dict(top) for e in explanations},
                    "plots": plots,
                },
                indent=1,
            )
        )
        return
    console.print(f"[bold]{explanations[0].configuration}[/]", highlight=False)
    for item in explanations:
        console.print(f"[bold]{item.target}[/]", highlight=False)
        for line in item.reasons(top):
            console.print(f"  {line}", highlight=False)
    console.print("Effects multiply: each term scales the running value by (1 + effect).", style="dim")
    if plots:
        console.print(f"wrote {len(plots)} waterfall plots in {out}", highlight=False)


def _global(bundle, names, records, out, output_format, sample, top) -> None:
    from ..explain import DEPENDENCE, explain_global, feature_words

    explanations = []
    with progress_bar("explaining", enabled=output_format is Format.table) as update:
        for done, name in enumerate(names):
            update(done, len(names), name)
            explanations.append(explain_global(bundle, records, name, sample=sample or None))
        update(len(names), len(names), "done")
    plots = _global_plots(explanations, out, DEPENDENCE) if out else []
    if output_format is Format.json:
        print(
            strict_json(
                {"view": "global", "targets": {g.target: g.to_dict(top) for g in explanations}, "plots": plots},
                indent=1,
            )
        )
        return
    for glob in explanations:
        note = "" if glob.same_data else " (not the records the model was trained on)"
        table = Table(
            title=f"{glob.target}: {glob.records:,} training records, {len(glob.values):,} of "
            f"{glob.design_rows:,} design rows{note}",
            title_justify="left",
        )
        for column in ("#", "feature", "mean |SHAP|", "typical effect"):
            table.add_column(column, justify="left" if column == "feature" else "right")
        for rank, (name, value) in enumerate(glob.importance.head(top).items(), 1):
            table.add_row(str(rank), feature_words(str(name)), f"{value:.3f}", f"×/÷ {math.exp(value):.2f}")
        console.print(table)
    console.print(
        "SHAP of the trees on the rows they learned from (each record with its configuration, pair, model "
        "or accelerator hidden from its priors), log units. Trees only correct configurations nobody "
        "measured; a measured one is its measurements (explain it with --accelerator ... --model ...).",
        style="dim",
        highlight=False,
    )
    if plots:
        console.print(f"wrote {len(plots)} plots in {out}", highlight=False)


def _global_plots(explanations, out: Path, dependence) -> list[str]:
    from ..explain import dependence_plot, summary_plot

    plots = []
    for glob in explanations:
        for kind in ("bar", "beeswarm"):
            plots.append(str(out / f"{kind}_{glob.target}.png"))
            summary_plot(glob, plots[-1], kind=kind)
        for feature in dependence:
            if feature in glob.values.columns:
                plots.append(str(out / f"dependence_{glob.target}_{feature}.png"))
                dependence_plot(glob, feature, plots[-1])
    return plots


def report(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.html."),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="Also run a quick held-out evaluation for parity plots "
        "(throughput on forward-v5.0, xgboost vs lookup-median; minutes).",
    ),
    target: list[str] = typer.Option(
        None, "--target", "-t", callback=known_targets, help="Targets with a SHAP summary (repeatable; default: all)."
    ),
    sample: int = typer.Option(2000, help="Design rows explained per target (0: all).", callback=non_negative_count),
    dataset_file: Path = typer.Option(None, "--dataset", help="Records (default: the shipped dataset)."),
    model_dir: Path = MODEL_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """One self-contained HTML page: dataset coverage, accuracy, parity plots, SHAP summaries, campaign status."""
    import matplotlib

    from ..explain import ExplainError
    from ..report_html import build_report, quick_evaluation

    matplotlib.use("Agg")
    bundle = load_model(model_dir)
    records = load_records(dataset_file)
    evaluation = None
    if evaluate:
        with progress_bar("evaluating", enabled=not quiet) as update:
            evaluation = quick_evaluation(records, on_progress=update)
    try:
        path = build_report(
            out / "report.html",
            bundle=bundle,
            records=records,
            targets=list(target or []) or None,
            evaluation=evaluation,
            model_card=model_folder(model_dir).parent / "README.md",
            sample=sample or None,
        )
    except ExplainError as exc:
        fail(str(exc))
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
