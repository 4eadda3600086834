"""Accuracy of flexpredict's predictor against every baseline on leak-free splits.

    python experiments/accuracy.py                      # the table the model card quotes
    python experiments/accuracy.py --json accuracy.json --model-card models/README.md --plots evaluation/

Throughput is evaluated forward in time (v4.1, v5.0, v5.1), leaving accelerators / models / whole accelerator
generations out, with every predictor (incl. the sibling-roofline and model-roofline baselines); TTFT/TPOT forward to
v5.1 (logs exist for v4.1 and v5.1) and on grouped folds; the other targets forward to v5.0 and v5.1 and, for power
and energy, leaving accelerators out, against the lookup median — the roofline baselines and the public recipe only
model throughput.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from flexpredict import dataset
from flexpredict.evaluation import DEFAULT_PREDICTORS, SPLITS, evaluate, parity_plot
from flexpredict.report import SUBSETS, metrics_table, model_card_markdown

PLAN = [
    (["throughput_per_accelerator"], [s for s in SPLITS if s != "grouped-kfold"], DEFAULT_PREDICTORS),
    (["ttft_p99_ms", "tpot_p99_ms", "energy_j_per_token"], ["grouped-kfold"], ("xgboost", "lookup-median")),
    (["ttft_p99_ms", "tpot_p99_ms"], ["forward-v5.1"], ("xgboost", "lookup-median")),
    (
        ["latency_p99_ms", "latency_p90_ms", "power_w", "energy_j_per_sample"],
        ["forward-v5.0", "forward-v5.1"],
        ("xgboost", "lookup-median"),
    ),
    (
        ["power_w", "energy_j_per_token", "energy_j_per_sample"],
        ["leave-one-accelerator-out"],
        ("xgboost", "lookup-median"),
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the metrics as JSON")
    parser.add_argument("--model-card", type=Path, help="write the model card (Markdown)")
    parser.add_argument("--plots", type=Path, help="write parity plots into this folder")
    parser.add_argument("--quick", action="store_true", help="throughput on forward-v5.1 only")
    args = parser.parse_args()
    console = Console(width=160)
    records = dataset.load()
    plan = [(["throughput_per_accelerator"], ["forward-v5.1"], DEFAULT_PREDICTORS)] if args.quick else PLAN
    started = time.perf_counter()
    results, rows = [], []
    for targets, splits, predictors in plan:
        metrics, predictions = evaluate(records, targets=targets, splits=splits, predictors=predictors)
        results.append(metrics)
        rows.append(predictions)
    results = pd.concat(results, ignore_index=True)
    rows = pd.concat(rows, ignore_index=True)
    for target, part in results.groupby("target", sort=False):
        console.print(metrics_table(part[part["subset"].isin(SUBSETS)], title=target))
    console.print(f"evaluated in {time.perf_counter() - started:.0f} s", highlight=False)
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for (target, split), _ in rows.groupby(["target", "split"]):
            parity_plot(rows, target, split, args.plots / f"parity_{target}_{split}.png")
    if args.json:
        args.json.write_text(json.dumps(results.to_dict("records"), indent=1))
    if args.model_card:
        args.model_card.write_text(model_card_markdown(results))


if __name__ == "__main__":
    main()
