"""`flexpredict campaign create|run|status|export`: an active benchmarking campaign on an Optuna study."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ..commands.common import console, fail, positive_count, progress_bar, short_number

app = typer.Typer(
    help="Active benchmarking campaigns: Optuna chooses what to measure next, on one machine or many "
    "workers sharing one storage.",
    no_args_is_help=True,
)

CAMPAIGN = typer.Argument(..., help="Campaign YAML (see experiments/campaigns/).")
STORAGE = typer.Option(
    None,
    "--storage",
    help="Optuna RDB URL shared by every worker, e.g. "
    "postgresql://user:pass@host/db (default: the campaign's, else a SQLite file in --dir).",
)
DIRECTORY = typer.Option(
    None, "--dir", help="Campaign folder: SQLite study, dataset, run folders (default: runs/campaigns/<name>)."
)


class Format(str, Enum):
    table = "table"
    json = "json"


def _campaign(path: Path):
    """The campaign definition, or one line naming the file."""
    import optuna

    from . import CampaignError, load_campaign

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return load_campaign(path)
    except CampaignError as exc:
        fail(str(exc))
    except UnicodeDecodeError:
        fail(f"{path}: not a text (UTF-8) YAML file")


def _worker(path: Path, storage: str | None, directory: Path | None, seed: int | None = None):
    """A worker that may write the study (create, run)."""
    from optuna.exceptions import StorageInternalError

    from ..schema import SchemaError
    from . import CampaignError, Worker

    campaign = _campaign(path)
    try:
        return Worker(campaign, storage=storage, workdir=directory, seed=seed)
    except (CampaignError, SchemaError) as exc:
        fail(str(exc))
    except StorageInternalError as exc:
        fail(f"storage: cannot write the study ({exc.__cause__ or exc})")


def _reader(path: Path, storage: str | None, directory: Path | None):
    """(campaign, study, workdir) opened read-only for status and export: nothing is created or written."""
    from . import CampaignError
    from .loop import campaign_dir
    from .study import default_storage, load_existing_study, open_storage

    campaign = _campaign(path)
    workdir = Path(directory or campaign_dir(campaign))
    url = storage or campaign.storage or default_storage(workdir)
    try:
        return campaign, load_existing_study(campaign, open_storage(url, campaign, read_only=True)), workdir
    except CampaignError as exc:
        fail(str(exc))


@app.command()
def create(campaign: Path = CAMPAIGN, storage: str = STORAGE, directory: Path = DIRECTORY) -> None:
    """Create the campaign's study and queue its initial configurations (once, before starting many workers)."""
    from .study import safe_url

    worker = _worker(campaign, storage, directory)
    trials = worker.study.get_trials(deepcopy=False)
    console.print(
        f"campaign [bold]{worker.campaign.name}[/]: {len(worker.candidates)} candidate configurations, "
        f"{len(trials)} trial(s) in {safe_url(worker.url)}",
        highlight=False,
    )


@app.command()
def run(
    campaign: Path = CAMPAIGN,
    storage: str = STORAGE,
    directory: Path = DIRECTORY,
    trials: int = typer.Option(
        None,
        "--trials",
        help="Stop this worker after N trials (default: until the budget is spent).",
        callback=positive_count,
    ),
    seed: int = typer.Option(None, "--seed", help="This worker's sampler seed (default: the campaign's)."),
) -> None:
    """Work on the campaign: propose -> measure -> append -> refit, until the budget is spent.

    Start one worker per machine (or GPU) with the same --storage: they share the study and never measure one
    configuration twice. Run it again to resume; a killed worker's trial is retried once after the grace period.
    """
    from optuna.exceptions import StorageInternalError

    from . import CampaignError
    from .study import spending

    worker = _worker(campaign, storage, directory, seed)
    total = worker.campaign.budget.runs or trials or 0
    try:
        with progress_bar(f"campaign {worker.campaign.name}") as update:

            def show(note: str) -> None:
                done = spending(worker.study.get_trials(deepcopy=False)).runs
                update(done, max(total, done), note)

            outcome = worker.run(
                trials,
                on_trial=lambda trial: show(_describe(trial)),
                on_fit=lambda w: show(f"refitted on {w.fitted_on} measurement(s)"),
                on_wait=show,
            )
    except CampaignError as exc:
        fail(str(exc))
    except StorageInternalError as exc:
        fail(f"storage: cannot write the study ({exc.__cause__ or exc})")
    except KeyboardInterrupt:
        fail("interrupted: the running trial is retried once after the grace period (run again to resume)", 130)
    console.print(f"{outcome.trials} trial(s) run here; stopped: {outcome.reason}", highlight=False)


@app.command()
def status(
    campaign: Path = CAMPAIGN,
    storage: str = STORAGE,
    directory: Path = DIRECTORY,
    top: int = typer.Option(5, "--top", help="How many of the best configurations to show.", callback=positive_count),
    output_format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Progress, spending, failures and retries, the best configurations so far, and the prediction error."""
    from ..io import strict_json
    from .study import summary

    definition, study, _ = _reader(campaign, storage, directory)
    report = summary(definition, study, top)
    held_out = study.user_attrs.get("held_out")  # stored by the worker's latest refit: status fits nothing
    if held_out is not None:
        report["prediction_error"]["mdape_held_out"] = held_out["mdape"]
    if output_format is Format.json:
        print(strict_json(report, indent=1))
        return
    _print_status(report)


@app.command()
def export(
    campaign: Path = CAMPAIGN,
    storage: str = STORAGE,
    directory: Path = DIRECTORY,
    out: Path = typer.Option(..., "--out", help="Records file (.parquet, .csv, .json, .jsonl)."),
    trials_out: Path = typer.Option(
        None, "--trials", help="Also write every trial (state, parameters, value, failure, prediction) to this CSV."
    ),
) -> None:
    """Write every configuration the campaign measured (from the storage, all workers) as dataset records."""
    from .. import dataset
    from ..io import atomic_write
    from ..schema import SchemaError
    from .study import measured_records

    definition, study, _ = _reader(campaign, storage, directory)
    records = measured_records(study.get_trials(deepcopy=False), definition.parameter_names)
    try:
        dataset.save(records[[c for c in records.columns if not c.startswith("param_")]], out)
    except SchemaError as exc:
        fail(f"--out: {exc}")
    console.print(f"wrote {len(records)} record(s) to {out}", highlight=False)
    if trials_out:
        frame = study.trials_dataframe(
            attrs=("number", "state", "value", "params", "user_attrs", "datetime_start", "datetime_complete")
        )
        frame = frame.drop(columns=[c for c in frame.columns if c == "user_attrs_record"])
        atomic_write(trials_out, lambda temporary: frame.to_csv(temporary, index=False))
        console.print(f"wrote {len(frame)} trial(s) to {trials_out}", highlight=False)


def _describe(trial) -> str:
    if "failure" in trial.user_attrs:
        return f"#{trial.number} failed"
    return f"#{trial.number} {trial.user_attrs.get('acquisition')}: {trial.value:.4g}"


def _print_status(report: dict) -> None:
    spent, budget = report["spent"], report["budget"]
    money = ", ".join(f"{spent[k]:g} of {v:g} {k.replace('_', '-')}" for k, v in budget.items())
    states = ", ".join(
        f"{n} {s}"
        + (
            f" ({len(report['stale'])} stale: no heartbeat within the grace period, retried by the next worker)"
            if s == "running" and report["stale"]
            else ""
        )
        for s, n in report["states"].items()
        if n
    )
    console.print(
        f"[bold]{report['campaign']}[/] · acquisition {report['acquisition']} · spent {money} · trials: "
        f"{states or 'none'}" + (f" · {report['exhausted']}" if report["exhausted"] else ""),
        highlight=False,
    )
    metric, slo = report["metric"], report["slo"]
    if report["best"]:
        table = Table(
            title=f"best SLO-feasible configurations ({metric}"
            + (", " + ", ".join(f"{k} <= {v:g}" for k, v in slo.items()) if slo else "")
            + ")"
        )
        for column in ("trial", "configuration", metric, *slo, "acquisition"):
            table.add_column(column, justify="left" if column == "configuration" else "right")
        for row in report["best"]:
            config = " ".join(f"{k}={v}" for k, v in row["params"].items())
            table.add_row(
                str(row["trial"]),
                config,
                f"{row[metric]:.4g}",
                *[short_number(row.get(m)) for m in slo],
                str(row["acquisition"]),
            )
        console.print(table)
    else:
        console.print("no SLO-feasible configuration measured yet", highlight=False)
    error = report["prediction_error"]
    parts = [
        (
            f"{error['measured_with_prediction']} measurement(s) predicted before measuring: MdAPE "
            f"{_pct(error['mdape_all'])} overall, {_pct(error['mdape_last_batch'])} last batch"
        )
    ]
    if "mdape_held_out" in error:
        parts.append(f"held-out {_pct(error['mdape_held_out'])}")
    if error["target"]:
        parts.append(f"target {_pct(error['target'])}")
    console.print("prediction error of " + metric + ": " + "; ".join(parts), highlight=False)
    for failure in report["failures"]:
        reason = str(failure["reason"]).splitlines()[0][:160]
        console.print(f"[red]failed[/] #{failure['trial']} {failure['params']}: {reason}", highlight=False)
    for retry in report["retries"]:
        console.print(
            f"retry #{retry['trial']} of #{retry['retry_of']} (its worker died): {retry['state']}", highlight=False
        )


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"
