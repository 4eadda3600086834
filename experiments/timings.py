"""How long the user-facing paths take on this machine (2 cores): data build, train, recommend cold, predict.

    python experiments/timings.py [--json timings.json] [--skip-train]

Each cold recommend is a fresh process, as a user runs it: for the default model (answered from the score tables
`train` ships beside the model), for another model the first time (loads the predictors and scores every candidate
live: an empty cache each run), and for that model again (remembered in the user's cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _run(command: list[str], cache: Path | None = None) -> float:
    env = {**os.environ, "FLEXPREDICT_CACHE_DIR": str(cache)} if cache else None
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "flexpredict.cli"]
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows["data build (all of ../shared), s"] = statistics.median(
            _run(cli + ["data", "build", "-q", "--out", str(tmp / "d.parquet")]) for _ in range(args.repeat)
        )
        if not args.skip_train:
            train_row = "train (8 targets, cross-conformal forward + 2+2 transfer folds), s"
            rows[train_row] = _run(cli + ["train", "-q", "--out", str(tmp / "m")])
        request = ["recommend", "--budget", "2000", "--latency-slo", "200ms"]
        other = request + ["--model", "llama3.1-8b"]
        rows["recommend --budget 2000 --latency-slo 200ms (cold process, default model), s"] = statistics.median(
            _run(cli + request, tmp / f"empty-{i}") for i in range(args.repeat)
        )
        rows["... --model llama3.1-8b, first time (cold, scored live), s"] = statistics.median(
            _run(cli + other, tmp / f"first-{i}") for i in range(args.repeat)
        )
        rows["... --model llama3.1-8b, again (cold, remembered), s"] = statistics.median(
            _run(cli + other, tmp / "first-0") for _ in range(args.repeat)
        )
        rows["python -c 'import flexpredict.cli' (import only), s"] = statistics.median(
            _run([sys.executable, "-c", "import flexpredict.cli"]) for _ in range(args.repeat)
        )
    rows.update(_in_process())
    table = Table(title="flexpredict timings (median of runs)", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in rows.items():
        table.add_row(name, f"{value:,.3f}")
    Console(width=140).print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _in_process() -> dict[str, float]:
    """Scoring speed once loaded: a few hundred unseen records, and every catalog candidate of the default model
    (priced or not: what `train` pre-scores), scored live."""
    import pandas as pd

    from flexpredict import dataset
    from flexpredict.configs import config_records
    from flexpredict.predictors.bundle import ModelBundle
    from flexpredict.recommend import DEFAULT_MODEL, TARGETS_USED, catalog_candidates, resolve_model, score_candidates

    records = dataset.load()
    bundle = ModelBundle.load()
    sample = records[records["round"] == "v5.0"].sample(300, random_state=0)
    bundle.predict(sample.head(5))  # warm caches (catalog parsing)
    started = time.perf_counter()
    bundle.predict(sample)
    predict_s = time.perf_counter() - started
    light = ModelBundle.load(targets=TARGETS_USED)
    model = resolve_model(DEFAULT_MODEL)
    frame = pd.concat(
        [catalog_candidates(model, scenario, records) for scenario in ("Server", "Offline")], ignore_index=True
    )
    started = time.perf_counter()
    light.predict(config_records(frame.to_dict("records")))
    predict_candidates_s = time.perf_counter() - started
    started = time.perf_counter()
    score_candidates(light, frame)
    score_s = time.perf_counter() - started
    return {
        "predict 300 unseen v5.0 records after load, s": predict_s,
        f"predict {len(frame)} candidates (every target, with intervals) after load, s": predict_candidates_s,
        "... with SHAP reasons for each (what recommend remembers), s": score_s,
        "candidates predicted per second": len(frame) / predict_candidates_s,
    }


if __name__ == "__main__":
    main()
