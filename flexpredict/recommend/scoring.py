"""Predictions for candidates from the model bundle, remembered in score tables (`flexpredict/scores.py`) so that a
fresh process answers without loading the predictors; and the SLO probability of a log-normal prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import catalogs, scores
from ..configs import config_records, resolve_model
from .candidates import catalog_candidates
from .reasons import reason_lines
from .request import DEFAULT_MODEL

TARGETS_USED = (
    "throughput_per_accelerator",
    "ttft_p99_ms",
    "tpot_p99_ms",
    "latency_p99_ms",
    "latency_p90_ms",
    "power_w",
    "energy_j_per_token",
    "energy_j_per_sample",
)

Z90 = 1.6448536269514722  # the 90 % interval is +-1.645 sigma of a log-normal


def predictions(frame: pd.DataFrame, model_id: str, scenario: str, bundle, model_dir: Path | None) -> pd.DataFrame:
    """Predictions and reasons for every candidate: from the remembered score table where it has them, scored live
    (and remembered) otherwise. An in-memory bundle has nothing to be remembered by: always live."""
    if bundle is not None:
        return score_candidates(bundle, frame)
    folder = Path(model_dir) if model_dir else catalogs.default_model_dir()
    if not (folder / "manifest.json").exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run `flexpredict train --out {folder}`)")
    key = scores.fingerprint(folder)
    keys = scores.row_keys(frame)
    known = scores.read(folder, key, model_id, scenario)
    missing = ~keys.isin(known.index) if known is not None else np.ones(len(frame), dtype=bool)
    if missing.any():
        from ..predictors.bundle import ModelBundle

        fresh = score_candidates(ModelBundle.load(folder, targets=TARGETS_USED), frame[missing])
        fresh.index = keys[missing]
        known = fresh if known is None else pd.concat([known, fresh])
        scores.write(known, scores.user_cache_dir() / scores.FOLDER / key, model_id, scenario)
    assert known is not None, "nothing remembered and nothing scored: an empty frame"
    return known.loc[keys].set_index(frame.index)


def score_candidates(bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Every target's prediction for candidate rows, and whether the throughput was measured or, if not, the
    trees' largest contributions in words (one line each)."""
    from ..features import RecordFeaturizer

    records = RecordFeaturizer.complete(config_records(frame.to_dict("records")))  # once, for both
    out = bundle.predict(records)
    out["measured_config"], out["reason_lines"] = reason_lines(bundle, records)
    out.index = frame.index
    return out


def prescore(
    bundle, folder: Path, records: pd.DataFrame, scenarios: tuple[str, ...] = ("Server", "Interactive", "Offline")
) -> list[Path]:
    """Remember the default model's candidates beside a saved bundle (what `train` does), so that the first
    `recommend` on a fresh install need not load the predictors; with a capacity function in the folder, also its
    sizing at MLPerf's Server and Interactive bounds. Older tables there are removed."""
    import shutil

    from .sizing import prescore_capacity

    shutil.rmtree(folder / scores.FOLDER, ignore_errors=True)
    model = resolve_model(DEFAULT_MODEL)
    written = []
    for scenario in scenarios:
        frame = catalog_candidates(model, scenario, records)
        table = score_candidates(bundle, frame)
        table.index = scores.row_keys(frame)
        written.append(scores.write(table, folder / scores.FOLDER / scores.fingerprint(folder), model["id"], scenario))
    written += prescore_capacity(folder, model, records)
    return [path for path in written if path]


def slo_probability(frame: pd.DataFrame, slo: dict[str, float], llm: bool) -> np.ndarray:
    """P(every bounded p99 metric <= its bound), each log-normal with the predicted median and 90 % interval."""
    probability = np.ones(len(frame))
    metrics = (
        {"ttft_ms": "ttft_p99_ms", "tpot_ms": "tpot_p99_ms"}
        if llm
        else {"latency_ms": "latency_p99_ms" if "pred_latency_p99_ms" in frame else "latency_p90_ms"}
    )
    for bound, target in metrics.items():
        if bound not in slo:
            continue
        column = f"pred_{target}"
        if column not in frame:
            probability[:] = np.nan
            continue
        probability = probability * probability_below(
            frame[column].to_numpy(dtype="float64"), frame[f"{column}_hi"].to_numpy(dtype="float64"), slo[bound]
        )
    return probability


def probability_below(pred: np.ndarray, high: np.ndarray, bound: float) -> np.ndarray:
    """P(value <= bound) of a log-normal with median `pred` and 90 % upper end `high` (NaN where `pred` is)."""
    from scipy.special import ndtr  # the standard normal CDF, without scipy.stats' import cost

    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = (np.log(high) - np.log(pred)) / Z90
        return ndtr((np.log(bound) - np.log(pred)) / np.where(sigma > 1e-6, sigma, 1e-6))
