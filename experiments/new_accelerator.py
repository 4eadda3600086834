"""A new accelerator arrives: which few runs make every other configuration on it predictable?

One replay campaign per part (experiments/campaigns/new-*-replay.yaml): the pool is every configuration measured on
it, the base every record of every other part, nothing of it measured at the start. Each campaign runs through the
real loop (SQLite study, sampler, replay backend, refits) once per acquisition and seed, refitting after 1, 2, 3, 4,
6, 8, 12 and 16 measurements (batches that grow, as parallel workers would run them). After every refit the surrogate
predicts the held-out configurations (30 % of the pool, a different 30 % per seed, never measurable): MdAPE and
90 % interval coverage. The table gives both after 0, 1, 2, 4, 8 and 16 measurements, the measurements and
GPU-hours (MLPerf's 600 s minimum run plus set-up, times the accelerators a run holds) needed to reach 10 % MdAPE (a
run that never got there counts as the budget; [n/N]: runs that got there), and the ratios the issue asks for.

    python experiments/new_accelerator.py --json experiments/results/new_accelerator.json   # plot: same name, .png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flexpredict.campaign import Worker, load_campaign

CAMPAIGNS = sorted((Path(__file__).resolve().parent / "campaigns").glob("new-*-replay.yaml"))
REFITS = (1, 2, 3, 4, 6, 8, 12, 16)
REPORTED = (0, 1, 2, 4, 8, 16)
TARGET = 0.10
console = Console(width=None if Console().is_terminal else 200)


def one_run(path: Path, acquisition: str, seed: int, budget: int, dataset: str | None, workdir: Path) -> dict:
    """One campaign; its held-out curve (after each refit) and the GPU-hours of each measurement in order."""
    backend = yaml.safe_load(path.read_text())["backend"]
    campaign = load_campaign(
        path,
        acquisition=acquisition,
        seed=seed,
        budget={"runs": budget},
        backend={**backend, "dataset": dataset} if dataset else None,
    )
    worker = Worker(campaign, workdir=workdir, refit_at=tuple(n for n in REFITS if n <= budget))
    curve = []
    worker.run(on_fit=lambda w: curve.append(w.evaluation))
    complete = worker.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if curve[-1]["measurements"] < len(complete):  # the last measurements, learned from
        worker.refit()
        curve.append(worker.evaluation)
    hours = [t.user_attrs["gpu_hours"] for t in sorted(complete, key=lambda t: t.number)]
    return {
        "campaign": campaign.name,
        "acquisition": acquisition,
        "seed": seed,
        "curve": curve,
        "gpu_hours": hours,
        "candidates": len(worker.candidates),
        "held_out": len(worker.held_out),
    }


def at(run: dict, n: int, key: str = "mdape") -> float:
    """The run's held-out value after n measurements: its last refit at or before n."""
    return [point[key] for point in run["curve"] if point["measurements"] <= n][-1]


def reaching(run: dict, target: float) -> int | None:
    """Measurements after which the held-out MdAPE first was at or below the target (None: never)."""
    return next((p["measurements"] for p in run["curve"] if p["mdape"] is not None and p["mdape"] <= target), None)


def summarise(runs: list[dict], budget: int, target: float) -> dict:
    """Per campaign and acquisition, and over every campaign: the mean over seeds of each column."""
    rows = []
    groups = [
        (c, a)
        for c in dict.fromkeys(r["campaign"] for r in runs)
        for a in dict.fromkeys(r["acquisition"] for r in runs)
    ]
    for campaign, acquisition in [*groups, *(("all", a) for a in dict.fromkeys(a for _, a in groups))]:
        mine = [r for r in runs if r["acquisition"] == acquisition and campaign in ("all", r["campaign"])]
        needed = [reaching(r, target) for r in mine]
        spent = [sum(r["gpu_hours"][: n if n is not None else budget]) for r, n in zip(mine, needed)]
        rows.append(
            {
                "campaign": campaign,
                "acquisition": acquisition,
                "runs": len(mine),
                "mdape": {n: float(np.mean([at(r, n) for r in mine])) for n in REPORTED},
                "coverage": {n: float(np.mean([at(r, n, "coverage") for r in mine])) for n in REPORTED},
                "to_target": float(np.mean([n if n is not None else budget for n in needed])),
                "reached": sum(n is not None for n in needed),
                "gpu_hours_to_target": float(np.mean(spent)),
            }
        )
    overall = {r["acquisition"]: r for r in rows if r["campaign"] == "all"}
    random = overall.get("random")
    learned = [a for a in overall if a != "random"]
    verdict = {}
    if random and learned:
        best = min(learned, key=lambda a: (overall[a]["to_target"], overall[a]["mdape"][4]))
        verdict = {
            "best": best,
            "to_target_ratio": overall[best]["to_target"] / random["to_target"],
            "mdape_after_4_reduction": 1 - overall[best]["mdape"][4] / random["mdape"][4],
        }
    return {"rows": rows, "verdict": verdict}


def print_table(summary: dict, budget: int, target: float) -> None:
    table = Table(
        title=f"new accelerator: held-out MdAPE [90 % coverage] after n measurements; measurements and "
        f"GPU-hours to MdAPE <= {target:.0%} (mean over seeds; a run that never got there counts as "
        f"the budget, {budget}; \\[n/N]: runs that got there)"
    )
    for column in ("part", "acquisition", *(f"n={n}" for n in REPORTED), f"to {target:.0%}", "GPU-h to it"):
        table.add_column(column, justify="left" if column in ("part", "acquisition") else "right")
    rows = summary["rows"]
    for row, following in zip(rows, [*rows[1:], None]):
        cells = [f"{row['mdape'][n]:.1%} \\[{row['coverage'][n]:.0%}]" for n in REPORTED]
        table.add_row(
            row["campaign"],
            row["acquisition"],
            *cells,
            f"{row['to_target']:.1f} \\[{row['reached']}/{row['runs']}]",
            f"{row['gpu_hours_to_target']:.0f}",
            end_section=following is not None and following["campaign"] != row["campaign"],
        )
    console.print(table)
    verdict = summary["verdict"]
    if verdict:
        console.print(
            f"best acquisition {verdict['best']}: {verdict['to_target_ratio']:.2f} of random's measurements "
            f"to {target:.0%} MdAPE (aim <= 0.33); held-out MdAPE after 4 measurements "
            f"{verdict['mdape_after_4_reduction']:.0%} lower than random's (aim >= 30 %)",
            highlight=False,
        )


def plot(runs: list[dict], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    campaigns = list(dict.fromkeys(r["campaign"] for r in runs))
    fig, axes = plt.subplots(1, len(campaigns) + 1, figsize=(4 * (len(campaigns) + 1), 3.6), sharey=True)
    xs = list(range(max(REFITS) + 1))
    for axis, campaign in zip(axes, [*campaigns, "all"]):
        for acquisition in dict.fromkeys(r["acquisition"] for r in runs):
            mine = [r for r in runs if r["acquisition"] == acquisition and campaign in ("all", r["campaign"])]
            axis.plot(xs, [np.mean([at(r, x) for r in mine]) for x in xs], label=acquisition, drawstyle="steps-post")
        axis.axhline(target, color="grey", linestyle="--", linewidth=1)
        axis.set(
            title=campaign.removeprefix("new-").removesuffix("-replay") if campaign != "all" else "mean of all",
            xlabel="measurements on the new part",
        )
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("held-out MdAPE (mean over seeds)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=Path, nargs="+", default=CAMPAIGNS)
    parser.add_argument("--acquisitions", default="shrinkage,uncertainty,tpe,random")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=16, help="runs per campaign")
    parser.add_argument("--dataset", help="replay this dataset file instead of the campaigns' (default: shipped)")
    parser.add_argument("--json", type=Path, help="write the table and every curve here (the plot beside it)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    acquisitions = args.acquisitions.split(",")
    runs, started = [], time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("replay campaigns", total=len(args.campaigns) * len(acquisitions) * args.seeds)
        for path in args.campaigns:
            for seed in range(args.seeds):
                for acquisition in acquisitions:
                    progress.update(task, description=f"{path.stem}: {acquisition}, seed {seed}")
                    runs.append(
                        one_run(
                            path,
                            acquisition,
                            seed,
                            args.budget,
                            args.dataset,
                            Path(tmp) / f"{path.stem}-{acquisition}-{seed}",
                        )
                    )
                    progress.advance(task)
    summary = summarise(runs, args.budget, TARGET)
    print_table(summary, args.budget, TARGET)
    seconds = time.perf_counter() - started
    picture = (args.json or Path("out/new_accelerator.json")).with_suffix(".png")
    plot(runs, picture, TARGET)
    console.print(f"plot: {picture}; {seconds:.0f} s", highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["python", *sys.argv]),
                    "seconds": round(seconds),
                    "budget": args.budget,
                    "target": TARGET,
                    **summary,
                    "runs": runs,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
