"""How well the capacity function predicts what nobody showed it (issue 16's acceptance table).

    python experiments/capacity.py [--records FILE] [--json experiments/results/capacity.json]

- Latency-under-load sample, GroupKFold over (model, system) groups so no group is on both sides: TTFT and TPOT
  (the sample's run statistic, predicted as p50) at the measured concurrency, MdAPE and 90 % interval coverage.
- Leave one system out (every gb200 / b200 / h200 / h100 row of the sample out at once): TPOT and TTFT MdAPE.
- Forward v5.1 (trained on MLPerf rounds <= v5.0 + the whole sample): Interactive and Server throughput per
  accelerator predicted from the capacity function at each result's own TTFT/TPOT bounds, split by whether the same
  system's other scenarios (Offline, Server or Interactive) of v5.1 were measured (they set its speed factor) or not.
Records default to a fresh `flexpredict data build` of ../shared (about 30 s).

    python experiments/capacity.py --own-runs my-runs.parquet [--json FILE]

- Own bench sweeps instead (issue 17): the capacity function fitted on the records + those runs, their closed-loop
  points predicted at their concurrency with the runs as evidence (in-sample), then each point left out of both the
  fit and the evidence: how many TTFT/TPOT p50/p99 values fall inside the 90 % intervals, and the point errors.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.model_selection import GroupKFold

from flexpredict import capacity
from flexpredict.features.transformer import round_index

SYSTEMS = ("gb200", "b200_sxm", "h200_sxm", "h100_sxm")
FOLDS = 5
FORWARD_ROUND = "v5.1"


def mdape(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    error = np.abs(np.asarray(predicted, float) / np.asarray(measured, float) - 1)
    error = error[np.isfinite(error)]
    return float(np.median(error)) if len(error) else None


def coverage(low: np.ndarray, high: np.ndarray, measured: np.ndarray) -> float | None:
    ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(measured)
    return float(((low[ok] <= measured[ok]) & (measured[ok] <= high[ok])).mean()) if ok.any() else None


def sample_scores(records: pd.DataFrame, held_out: pd.Series) -> dict:
    """Train without the held-out sample rows, predict them at their measured concurrency."""
    model = capacity.fit_capacity(records.loc[~held_out])
    test = capacity.curve_points(records.loc[held_out])
    test = test[test["scenario"] == "ClosedLoop"]
    predicted = model.latency_at_load(test, concurrency=test["point_concurrency"].to_numpy())
    return {"test": test, "predicted": predicted}


def summarize_sample(parts: list[dict]) -> dict:
    test = pd.concat([p["test"] for p in parts], ignore_index=True)
    predicted = pd.concat([p["predicted"] for p in parts], ignore_index=True)
    out = {"rows": len(test), "groups": int(test["group"].nunique())}
    for metric in ("ttft", "tpot"):
        measured = test[f"{metric}_p50_ms"].to_numpy(float)
        out[f"{metric}_mdape"] = mdape(predicted[f"pred_{metric}_p50_ms"].to_numpy(), measured)
        out[f"{metric}_coverage_90"] = coverage(
            predicted[f"pred_{metric}_p50_ms_lo"].to_numpy(), predicted[f"pred_{metric}_p50_ms_hi"].to_numpy(), measured
        )
    return out


def grouped_sample(records: pd.DataFrame) -> dict:
    sample = records["scenario"].eq("ClosedLoop")
    groups = capacity.group_keys(records).where(sample, "not-sample")
    sample_index = np.where(sample)[0]
    parts = []
    for _, test in GroupKFold(n_splits=FOLDS).split(sample_index, groups=groups.iloc[sample_index]):
        held_out = pd.Series(False, index=records.index)
        held_out.iloc[sample_index[test]] = True
        parts.append(sample_scores(records, held_out))
    return summarize_sample(parts)


def leave_one_system_out(records: pd.DataFrame) -> dict:
    out = {}
    for system in SYSTEMS:
        held_out = records["scenario"].eq("ClosedLoop") & records["system_id"].eq(system)
        if held_out.any():
            out[system] = summarize_sample([sample_scores(records, held_out)])
    return out


def forward(records: pd.DataFrame) -> dict:
    """Train on rounds before FORWARD_ROUND (+ the sample); predict its Interactive and Server throughput."""
    rounds = records["round"].map(round_index)
    target_round = round_index(FORWARD_ROUND)
    model = capacity.fit_capacity(records.loc[(rounds < target_round) | records["scenario"].eq("ClosedLoop")])
    results = capacity._one_per_result(records.loc[capacity._mlperf_mask(records) & (rounds == target_round)])
    out = {}
    for scenario in ("Interactive", "Server"):
        test = results[results["scenario"] == scenario]
        evidence = results[results["scenario"] != scenario]
        keys = capacity._system_keys(test)
        has_evidence = keys.isin(set(capacity._system_keys(evidence))).to_numpy()
        predicted = model.throughput_at_slo(
            test,
            ttft_ms=test["ttft_bound_ms"].to_numpy(float),
            tpot_ms=test["tpot_bound_ms"].to_numpy(float),
            evidence=evidence,
        )
        measured = test["throughput_per_accelerator"].to_numpy(float)
        point = predicted["pred_throughput_per_accelerator"].to_numpy()
        low = predicted["pred_throughput_per_accelerator_lo"].to_numpy()
        high = predicted["pred_throughput_per_accelerator_hi"].to_numpy()
        for label, mask in (("same system measured", has_evidence), ("otherwise", ~has_evidence)):
            out[f"{scenario}, {label}"] = {
                "rows": int(mask.sum()),
                "mdape": mdape(point[mask], measured[mask]),
                "coverage_90": coverage(low[mask], high[mask], measured[mask]),
                "models": sorted(set(test.loc[mask, "model"].astype(str))),
            }
    return out


OWN_METRICS = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99")


def own_sweep(records: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """In-sample and leave-one-point-out reproduction of an own closed-loop sweep (see the module docstring)."""
    points = runs[runs["scenario"].eq("ClosedLoop")]

    def predicted(train_runs: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
        model = capacity.fit_capacity(pd.concat([records, train_runs]))
        return model.latency_at_load(test, evidence=train_runs)

    def rows(test: pd.DataFrame, frame: pd.DataFrame) -> list[dict]:
        return [
            {
                "concurrency": int(test["concurrency"].iloc[i]),
                "metric": metric,
                "measured_ms": float(test[f"{metric}_ms"].iloc[i]),
                "predicted_ms": float(frame[f"pred_{metric}_ms"].iloc[i]),
                "interval_ms": [
                    float(frame[f"pred_{metric}_ms_lo"].iloc[i]),
                    float(frame[f"pred_{metric}_ms_hi"].iloc[i]),
                ],
            }
            for i in range(len(test))
            for metric in OWN_METRICS
        ]

    def summary(values: list[dict]) -> dict:
        inside = [v["interval_ms"][0] <= v["measured_ms"] <= v["interval_ms"][1] for v in values]
        errors = [abs(v["predicted_ms"] / v["measured_ms"] - 1) for v in values]
        return {"inside": int(sum(inside)), "values": len(values), "mdape": float(np.median(errors)), "points": values}

    in_sample = rows(points, predicted(runs, points))
    left_out = [
        value
        for index in points.index
        for value in rows(points.loc[[index]], predicted(runs.drop(index=index), points.loc[[index]]))
    ]
    return {"points": len(points), "in_sample": summary(in_sample), "leave_one_point_out": summary(left_out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=Path, help="a `data build` parquet (default: build one from ../shared)")
    parser.add_argument("--own-runs", type=Path, help="bench records with a closed-loop sweep: score only those")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.records
        if path is None:
            path = Path(tmp) / "records.parquet"
            subprocess.run(
                [sys.executable, "-m", "flexpredict.cli", "data", "build", "-q", "--out", str(path)], check=True
            )
        records = pd.read_parquet(path)
    started = time.perf_counter()
    if args.own_runs is not None:
        report = {"command": "python experiments/capacity.py " + " ".join(sys.argv[1:])}
        report["own_sweep"] = own_sweep(records, pd.read_parquet(args.own_runs))
        report["seconds"] = round(time.perf_counter() - started, 1)
        _print_own(report)
        _write(report, args.json)
        return
    fit_started = time.perf_counter()
    capacity.fit_capacity(records)
    report = {
        "command": "python experiments/capacity.py " + " ".join(sys.argv[1:]),
        "train_seconds_all_records": round(time.perf_counter() - fit_started, 1),
        "sample_grouped_by_model_system": grouped_sample(records),
        "sample_leave_one_system_out": leave_one_system_out(records),
        f"forward_{FORWARD_ROUND}_throughput_at_own_bounds": forward(records),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    _print(report)
    _write(report, args.json)


def _write(report: dict, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")


def _print_own(report: dict) -> None:
    sweep = report["own_sweep"]
    table = Table(title="capacity function on an own sweep", title_justify="left")
    for column in ("split", "concurrency", "metric", "measured ms", "predicted ms", "90% interval ms"):
        table.add_column(column, justify="left" if column in ("split", "metric") else "right")
    for split in ("in_sample", "leave_one_point_out"):
        for v in sweep[split]["points"]:
            low, high = v["interval_ms"]
            table.add_row(
                split,
                str(v["concurrency"]),
                v["metric"],
                f"{v['measured_ms']:.2f}",
                f"{v['predicted_ms']:.2f}",
                f"{low:.2f} - {high:.2f}",
            )
    Console().print(table)
    for split in ("in_sample", "leave_one_point_out"):
        row = sweep[split]
        Console().print(f"{split}: {row['inside']} of {row['values']} inside, MdAPE {100 * row['mdape']:.1f} %")
    Console().print(f"whole run {report['seconds']} s")


def _print(report: dict) -> None:
    table = Table(title="capacity function: held-out accuracy", title_justify="left")
    for column in ("split", "rows", "TTFT MdAPE", "TPOT MdAPE", "throughput MdAPE", "90% coverage"):
        table.add_column(column, justify="left" if column == "split" else "right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    sample = report["sample_grouped_by_model_system"]
    table.add_row(
        "sample, GroupKFold (model, system)",
        str(sample["rows"]),
        pct(sample["ttft_mdape"]),
        pct(sample["tpot_mdape"]),
        "-",
        f"TTFT {pct(sample['ttft_coverage_90'])}, TPOT {pct(sample['tpot_coverage_90'])}",
    )
    for system, row in report["sample_leave_one_system_out"].items():
        table.add_row(
            f"sample, {system} out",
            str(row["rows"]),
            pct(row["ttft_mdape"]),
            pct(row["tpot_mdape"]),
            "-",
            f"TTFT {pct(row['ttft_coverage_90'])}, TPOT {pct(row['tpot_coverage_90'])}",
        )
    for label, row in report[f"forward_{FORWARD_ROUND}_throughput_at_own_bounds"].items():
        table.add_row(
            f"forward {FORWARD_ROUND}: {label}", str(row["rows"]), "-", "-", pct(row["mdape"]), pct(row["coverage_90"])
        )
    Console().print(table)
    Console().print(f"train on all records: {report['train_seconds_all_records']} s; whole run {report['seconds']} s")


if __name__ == "__main__":
    main()
