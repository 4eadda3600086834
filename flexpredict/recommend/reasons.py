"""Why a prediction is what it is, in plain words: measured, or the trees' largest contributions."""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import pandas as pd

FEATURE_WORDS = {
    "accelerator": "accelerator",
    "accelerator_vendor": "vendor",
    "acc_kind": "device kind",
    "acc_family": "architecture",
    "model": "model",
    "model_kind": "model kind",
    "scenario": "scenario",
    "precision": "precision",
    "engine": "engine",
    "system_type": "system type",
    "accelerators_total": "accelerators",
    "accelerators_per_node": "accelerators per node",
    "nodes": "nodes",
    "acc_memory_gb": "memory per accelerator (GB)",
    "acc_bandwidth_tbs": "memory bandwidth (TB/s)",
    "acc_tflops": "peak TFLOPs at this precision",
    "acc_tdp_w": "TDP (W)",
    "acc_release_year": "release year",
    "acc_interconnect_gbs": "interconnect (GB/s)",
    "total_memory_gb": "total memory (GB)",
    "total_bandwidth_tbs": "total bandwidth (TB/s)",
    "total_tflops": "total TFLOPs",
    "weights_gb": "weights (GB)",
    "memory_headroom": "memory / weights",
    "bytes_per_param": "bytes per parameter",
    "kv_bytes_per_token": "KV-cache bytes per token",
    "flops_per_byte": "FLOPs per byte",
    "log_roofline": "log roofline (upper bound)",
    "log_work_bound": "log work bound (prefill-aware roofline)",
    "model_params_active_b": "active parameters (B)",
    "host_memory_gb": "host memory (GB)",
}

_PRIOR_WORDS = {
    "prior": "median of runs with the same {}",
    "latest": "newest-round median with the same {}",
    "count": "number of runs with the same {}",
    "rounds_since": "rounds since runs with the same {}",
}


def feature_phrase(name: str, value) -> str:
    """'acc_bandwidth_tbs', 4.8 -> 'memory bandwidth (TB/s) = 4.8'; prior features in words, without their
    log-scale values."""
    from ..predictors.priors import LEVELS, level_name

    for level, _ in LEVELS:
        for prefix, words in _PRIOR_WORDS.items():
            if name == f"{prefix}_{level_name(level)}":
                parts = [p.replace("_", " ") for p in level]
                joined = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
                return words.format(joined)
    label = FEATURE_WORDS.get(name, name.replace("_", " "))
    if isinstance(value, (int, float, np.floating)):
        return f"{label} = {value:.3g}" if value == value else f"{label} unknown"
    return f"{label} = {value}" if value is not None and value == value else f"{label} unknown"


def reason_lines(bundle, records: pd.DataFrame, limit: int = 3) -> tuple[np.ndarray, list[str]]:
    """(measured?, the largest SHAP contributions to the throughput in words, one per line) per record."""
    predictor = bundle.predictors.get("throughput_per_accelerator")
    if predictor is None or not hasattr(predictor, "explained"):
        return np.zeros(len(records), dtype=bool), [""] * len(records)
    contributions, matrix = predictor.explained(records)
    features = contributions.drop(columns=["bias", "prior", "measured"]).astype("float64")
    names, values = list(features.columns), features.to_numpy()
    shown = matrix[names].astype("object").to_numpy()
    order = np.argsort(-np.abs(values), axis=1)[:, :limit]
    measured = contributions["measured"].to_numpy(dtype=bool)
    lines = []
    for position in range(len(records)):
        words = (
            []
            if measured[position]
            else [
                f"{feature_phrase(names[j], shown[position, j])}: {math.expm1(values[position, j]):+.0%}"
                for j in order[position]
                if abs(values[position, j]) >= 0.01
            ]
        )
        lines.append("\n".join(words))
    return measured, lines


def reasons(top: pd.DataFrame) -> dict[int, list[str]]:
    """Plain-word reasons for the throughput prediction of scored candidates (from `score_candidates`)."""
    if "measured_config" not in top:
        return {}
    out: dict[int, list[str]] = {}
    for index, candidate in top.iterrows():
        if bool(candidate["measured_config"]):
            runs = int(candidate.get("measured_runs") or 0)
            lines = [
                f"measured: MLPerf runs of {candidate['model']} on {candidate['accelerator']} "
                f"({candidate['scenario']}) set the starting point"
                + (f"; {runs} at exactly this count and precision" if runs else "")
            ]
        else:
            lines = ["never measured: starts from the efficiency of related measurements scaled by the roofline"]
            lines += [line for line in str(candidate["reason_lines"] or "").split("\n") if line]
        out[cast(int, index)] = lines  # Hashable in the stubs; candidate frames keep their RangeIndex labels
    return out
