"""Active learning vs random vs TPE on real MLPerf records: how many measurements does each need?

The replay campaign (experiments/campaigns/llama2-70b-replay.yaml) runs end to end through the real loop (SQLite
study, sampler, replay backend, refits) once per acquisition and seed. After every refit the surrogate predicts the
held-out configurations (never measurable, a quarter of the pool, a different quarter per seed); after every
measurement the best SLO-feasible configuration found so far is compared with the true best of the pool. The table
gives, per acquisition, the measurements needed to reach the campaign's target error and to find a configuration
within 5 % of the true best (mean over seeds; a seed that never got there counts as the budget and the column says
how many did), and the held-out error at the end.

    python experiments/active_learning.py --json out/active_learning.json      # plot: out/active_learning.png
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flexpredict.campaign import Worker, load_campaign
from flexpredict.campaign.study import constraint_values, with_parameters

CAMPAIGN = Path(__file__).resolve().parent / "campaigns" / "llama2-70b-replay.yaml"
WITHIN = 0.05
console = Console(width=None if Console().is_terminal else 160)  # a log gets the whole table


def one_run(path: Path, acquisition: str, seed: int, budget: int, workdir: Path) -> dict:
    """One campaign; returns its curves: held-out error after each refit, best-found ratio after each trial."""
    campaign = load_campaign(path, acquisition=acquisition, seed=seed, budget={"runs": budget})
    worker = Worker(campaign, workdir=workdir)
    objective = campaign.objective
    truth = [worker.backend.measure(worker.candidates.params(i), workdir).record for i in range(len(worker.candidates))]
    feasible = [r[objective.metric] for r in truth if all(c <= 0 for c in constraint_values(r, objective.slo).values())]
    best = max(feasible) if objective.direction == "maximize" else min(feasible)
    held = worker.backend.evaluation_records()
    held_input = with_parameters(held, campaign.parameter_names)
    true_values = held[objective.metric].to_numpy(dtype="float64")
    errors, found = [], []

    def on_fit(w: Worker) -> None:
        predicted = w.surrogate.predict(held_input)[objective.metric].to_numpy(dtype="float64")
        ok = np.isfinite(predicted)
        error = float(np.median(np.abs(predicted[ok] / true_values[ok] - 1))) if ok.any() else float("nan")
        errors.append((w.fitted_on, error))

    def on_trial(_trial) -> None:
        measured = worker.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        values = [t.value for t in measured if all(c <= 0 for c in t.constraints.values())]
        mine = (max(values) if objective.direction == "maximize" else min(values)) if values else None
        ratio = (mine / best if objective.direction == "maximize" else best / mine) if mine else 0.0
        found.append((len(measured), ratio))

    worker.run(on_fit=on_fit, on_trial=on_trial)
    if errors[-1][0] < budget:  # the last measurements, learned from
        worker.refit()
        on_fit(worker)
    return {
        "acquisition": acquisition,
        "seed": seed,
        "errors": errors,
        "found": found,
        "true_best": best,
        "held_out": len(held),
        "candidates": len(worker.candidates),
    }


def first_reaching(curve: list[tuple[int, float]], ok) -> int | None:
    return next((n for n, value in curve if ok(value)), None)


def table_rows(runs: list[dict], targets: list[float], budget: int) -> list[dict]:
    """Per acquisition: mean measurements to each target error and to within 5 % of the best (a seed that never
    got there counts as the budget), how many seeds got there, and the final held-out error."""
    rows = []
    for acquisition in dict.fromkeys(r["acquisition"] for r in runs):
        mine = [r for r in runs if r["acquisition"] == acquisition]
        row = {"acquisition": acquisition, "seeds": len(mine)}
        for target in targets:
            reached = [first_reaching(r["errors"], lambda e, t=target: e <= t) for r in mine]
            row[f"to_{target:g}"] = [
                float(np.mean([n if n is not None else budget for n in reached])),
                sum(n is not None for n in reached),
            ]
        found = [first_reaching(r["found"], lambda f: f >= 1 - WITHIN) for r in mine]
        row["to_best"] = [
            float(np.mean([n if n is not None else budget for n in found])),
            sum(n is not None for n in found),
        ]
        row["final_error"] = float(np.mean([r["errors"][-1][1] for r in mine]))
        rows.append(row)
    return rows


def plot(runs: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for acquisition in dict.fromkeys(r["acquisition"] for r in runs):
        mine = [r for r in runs if r["acquisition"] == acquisition]
        for axis, key in ((left, "errors"), (right, "found")):
            xs = sorted({n for r in mine for n, _ in r[key]})
            curves = np.array([[_at(r[key], x) for x in xs] for r in mine])
            mean = np.nanmean(curves, axis=0)
            axis.plot(xs, mean, label=acquisition)
            axis.fill_between(xs, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), alpha=0.12)
    left.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    left.set(xlabel="measurements", ylabel="held-out MdAPE", title="prediction error (mean, min-max over seeds)")
    left.set_ylim(0, min(1.0, left.get_ylim()[1]))
    right.axhline(1 - WITHIN, color="grey", linestyle="--", linewidth=1, label="within 5 % of the true best")
    right.set(xlabel="measurements", ylabel="best found / true best", title="best SLO-feasible configuration found")
    for axis in (left, right):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _at(curve: list[tuple[int, float]], x: int) -> float:
    """The curve's value at x measurements: its last point at or before x."""
    before = [value for n, value in curve if n <= x]
    return before[-1] if before else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaign", type=Path, default=CAMPAIGN)
    parser.add_argument("--acquisitions", default="uncertainty,improvement,random,tpe")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=None, help="runs per campaign (default: the campaign's)")
    parser.add_argument(
        "--targets",
        default=None,
        help="comma-separated MdAPE targets (default: the campaign's, and 5 points either side)",
    )
    parser.add_argument("--json", type=Path, help="write the table and every curve here")
    parser.add_argument("--plot", type=Path, default=Path("out/active_learning.png"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign = load_campaign(args.campaign)
    budget = args.budget or campaign.budget.runs
    target = campaign.objective.target_error
    targets = [float(t) for t in args.targets.split(",")] if args.targets else [target - 0.05, target, target + 0.05]
    acquisitions = args.acquisitions.split(",")
    runs, started = [], time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("replay campaigns", total=len(acquisitions) * args.seeds)
        for seed in range(args.seeds):
            for acquisition in acquisitions:
                progress.update(task, description=f"{acquisition}, seed {seed}")
                runs.append(one_run(args.campaign, acquisition, seed, budget, Path(tmp) / f"{acquisition}-{seed}"))
                progress.advance(task)
    rows = table_rows(runs, targets, budget)
    table = Table(
        title=f"{campaign.name}: measurements needed ({runs[0]['candidates']} candidates, "
        f"{runs[0]['held_out']} held out; budget {budget} runs; mean of {args.seeds} seeds, "
        "a seed that never got there counts as the budget; "
        "\\[n/N]: seeds that got there)"
    )
    table.add_column("acquisition")
    for level in targets:
        table.add_column(
            f"to MdAPE <= {level:.0%}" + (" (campaign target)" if level == target else ""), justify="right"
        )
    table.add_column(f"to within {WITHIN:.0%} of the best", justify="right")
    table.add_column("final MdAPE", justify="right")
    for row in rows:
        cells = [f"{row[f'to_{t:g}'][0]:.1f} \\[{row[f'to_{t:g}'][1]}/{row['seeds']}]" for t in targets]
        table.add_row(
            row["acquisition"],
            *cells,
            f"{row['to_best'][0]:.1f} \\[{row['to_best'][1]}/{row['seeds']}]",
            f"{row['final_error']:.1%}",
        )
    console.print(table)
    plot(runs, target, args.plot)
    console.print(f"plot: {args.plot}; {time.perf_counter() - started:.0f} s", highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"campaign": campaign.name, "budget": budget, "targets": targets, "table": rows, "runs": runs}, indent=1
            )
        )


if __name__ == "__main__":
    main()
