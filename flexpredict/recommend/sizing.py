"""Sizing by the capacity function: each candidate's throughput within the TTFT/TPOT bounds (with its interval), the
value at the requested confidence (what replicas and ranking use), the latencies at the load one replica then
carries, P(SLO), and how the evidence stands. Remembered per (bounds, workload, confidence, load) like the score
tables, so a repeated request needs neither XGBoost nor the capacity model."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import capacity, scores
from ..configs import config_records, resolve_model
from .candidates import catalog_candidates
from .request import Load, Request, RequestError, capacity_bounds, preset_bounds, workload_of
from .scoring import Z90

LATENCY_COLUMNS = tuple(f"pred_{metric}_p99_ms{end}" for metric in ("ttft", "tpot") for end in ("", "_lo", "_hi"))
SIZED_COLUMNS = (
    "pred_throughput_per_accelerator",
    "pred_throughput_per_accelerator_lo",
    "pred_throughput_per_accelerator_hi",
    "throughput_sigma",
    "throughput_at_confidence_per_accelerator",
    "concurrency_at_capacity",
    "replicas_for_load",
    "replica_load",
    *LATENCY_COLUMNS,
    "p_slo",
)


def capacity_beside(model_dir: Path | None, required: bool) -> Path | None:
    """The model folder when it holds a capacity function; None (MLPerf operating-point predictions are used) when
    it does not and the request can do without. Nothing is loaded here: a remembered sizing needs no model."""
    from .. import catalogs

    folder = Path(model_dir) if model_dir else catalogs.default_model_dir()
    if (folder / capacity.FOLDER / capacity.META_FILE).exists():
        return folder
    if required:
        try:
            capacity.load_beside(folder)
        except FileNotFoundError as exc:
            raise RequestError(str(exc)) from exc
    return None


def sized(
    frame: pd.DataFrame,
    bounds: dict[str, float],
    workload: dict,
    confidence: float,
    load: Load | None,
    records: pd.DataFrame,
    *,
    capacity_model=None,
    model_dir: Path | None = None,
) -> pd.DataFrame:
    """Candidates with SIZED_COLUMNS (replacing the bundle's throughput and TTFT/TPOT) and `evidence`: from
    `capacity_model` live, else remembered for `model_dir`'s capacity function (scored live where missing). A new
    frame."""
    if capacity_model is not None:
        columns = sized_columns(frame, capacity_model, bounds, workload, confidence, load)
    elif model_dir is not None:
        columns = _remembered(frame, Path(model_dir), bounds, workload, confidence, load)
    else:
        raise TypeError("sized: pass capacity_model or model_dir")
    kept = frame.drop(columns=[c for c in SIZED_COLUMNS if c in frame])
    return kept.join(columns).assign(evidence=evidence(frame, records, bounds))


def _remembered(frame, model_dir: Path, bounds, workload, confidence, load) -> pd.DataFrame:
    key = scores.capacity_fingerprint(model_dir)
    model_id, name = str(frame["model"].iloc[0]), table_name(bounds, workload, confidence, load)
    keys = scores.row_keys(frame)
    known = scores.read(model_dir, key, model_id, name)
    missing = ~keys.isin(known.index) if known is not None else np.ones(len(frame), dtype=bool)
    if missing.any():
        try:
            model = capacity.load_beside(model_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise RequestError(str(exc)) from exc
        fresh = sized_columns(frame[missing], model, bounds, workload, confidence, load)
        fresh.index = keys[missing]
        known = fresh if known is None else pd.concat([known, fresh])
        scores.write(known, scores.user_cache_dir() / scores.FOLDER / key, model_id, name)
    assert known is not None, "nothing remembered and nothing sized: an empty frame"
    return known.loc[keys, list(SIZED_COLUMNS)].set_index(frame.index)


def table_name(bounds: dict[str, float], workload: dict, confidence: float, load: Load | None) -> str:
    """What a remembered sizing depends on besides the model and the candidate, as a short file-name part."""
    what = {
        "bounds": {k: float(v) for k, v in sorted(bounds.items())},
        "isl": float(workload["isl"]),
        "osl": float(workload["osl"]),
        "confidence": float(confidence),
        "load": [load.kind, float(load.value)] if load is not None else None,
    }
    text = json.dumps(what, sort_keys=True, default=str).replace("Infinity", "inf")
    return "capacity-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def prescore_capacity(folder: Path, model: dict, records: pd.DataFrame) -> list[Path | None]:
    """Remember the sizing of `model`'s candidates at MLPerf's Server and Interactive bounds, the model's workload,
    the default confidence and no load, beside a model folder with a capacity function (what `train` does)."""
    if not (folder / capacity.FOLDER / capacity.META_FILE).exists():
        return []
    capacity_model = capacity.load_beside(folder)
    request = Request()
    workload = workload_of(model, request)
    written = []
    for scenario in ("Server", "Interactive"):
        bounds = capacity_bounds(model, {}, scenario)
        frame = catalog_candidates(model, scenario, records)
        table = sized_columns(frame, capacity_model, bounds, workload, request.confidence, None)
        table.index = scores.row_keys(frame)
        written.append(
            scores.write(
                table,
                folder / scores.FOLDER / scores.capacity_fingerprint(folder),
                model["id"],
                table_name(bounds, workload, request.confidence, None),
            )
        )
    return written


def sized_columns(
    frame: pd.DataFrame, capacity_model, bounds: dict[str, float], workload: dict, confidence: float, load: Load | None
) -> pd.DataFrame:
    """SIZED_COLUMNS for candidates (new frame, same index). Throughput per accelerator at the bounds with its
    interval; at the requested confidence the log-normal's lower quantile (spread from the interval's lower side,
    from the upper side where the lower end is 0); replicas for the load from that; latencies at the load one
    replica carries; P(SLO) = P(capacity >= that load)."""
    from scipy.special import ndtr, ndtri

    records = capacity_records(frame, workload)
    curves = capacity_model.curves(records)  # once for both directions
    at_bounds = capacity_model.throughput_at_slo(
        records, ttft_ms=bounds["ttft_ms"], tpot_ms=bounds["tpot_ms"], curves=curves
    )
    described = capacity.covers(records, curves.config)  # weights that leave no room for a KV cache: nothing
    point, low, high = (
        np.where(described, at_bounds[f"pred_throughput_per_accelerator{end}"].to_numpy(dtype="float64"), 0.0)
        for end in ("", "_lo", "_hi")
    )
    total = frame["accelerators_total"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(point > 0, np.where(low > 0, np.log(point / low), np.log(high / point)) / Z90, np.nan)
        at_confidence = np.where(point > 0, point * np.exp(-ndtri(confidence) * np.nan_to_num(sigma)), 0.0)
        users = at_bounds["pred_concurrency"].to_numpy(dtype="float64") * at_confidence / point
        carried = at_confidence * total  # tokens/s one replica carries: all it can at the confidence, or its share
        replicas = np.full(len(frame), np.nan)
        if load is not None and load.kind == "concurrency":
            replicas = np.ceil(load.value / np.where(users > 0, users, np.nan))
            carried = carried * load.value / replicas / users
        elif load is not None:
            needed = load.value * (workload["osl"] if load.kind == "qps" else 1.0)
            replicas = np.ceil(needed / np.where(carried > 0, carried, np.nan))
            carried = needed / replicas
        margin = np.log(point * total / carried) / sigma
    live = np.isfinite(carried) & (carried > 0)
    latencies = pd.DataFrame(index=range(len(frame)), columns=list(LATENCY_COLUMNS), dtype="float64")
    if live.any():  # rows carrying nothing get a stand-in load, and no latency
        at_load = capacity_model.latency_at_load(records, tokens_per_s=np.where(live, carried, 1.0), curves=curves)
        latencies.loc[np.flatnonzero(live), list(LATENCY_COLUMNS)] = at_load[list(LATENCY_COLUMNS)].to_numpy()[live]
    columns = {
        "pred_throughput_per_accelerator": point,
        "pred_throughput_per_accelerator_lo": low,
        "pred_throughput_per_accelerator_hi": high,
        "throughput_sigma": sigma,
        "throughput_at_confidence_per_accelerator": at_confidence,
        "concurrency_at_capacity": at_bounds["pred_concurrency"].to_numpy(dtype="float64"),
        "replicas_for_load": replicas,
        "replica_load": np.where(live, carried, np.nan),
        **{c: latencies[c].to_numpy(dtype="float64") for c in LATENCY_COLUMNS},
        "p_slo": np.where(live, ndtr(np.where(np.isfinite(margin), margin, np.inf)), 0.0),
    }
    return pd.DataFrame(columns, index=frame.index)


def capacity_records(frame: pd.DataFrame, workload: dict) -> pd.DataFrame:
    """Candidates as schema records with the workload's mean prompt and output lengths."""
    return config_records(frame.to_dict("records")).assign(
        input_tokens_mean=workload["isl"], output_tokens_mean=workload["osl"]
    )


def evidence(frame: pd.DataFrame, records: pd.DataFrame, bounds: dict[str, float]) -> np.ndarray:
    """Per candidate: 'measured' where MLPerf has the model on that accelerator in a scenario with exactly these
    bounds, 'interpolated' where it has the model on that accelerator in other scenarios (the curve between them),
    'transferred' where the model never ran on it (the speed of related results carries over)."""
    model_id = str(frame["model"].iloc[0])
    model = resolve_model(model_id)
    exact = [
        scenario
        for scenario, kind in (("Server", "server"), ("Interactive", "interactive"))
        if _same_bounds(preset_bounds(model, kind), bounds)
    ]
    if math.isinf(bounds["ttft_ms"]) and math.isinf(bounds["tpot_ms"]):
        exact.append("Offline")
    ran = records[
        records["model"].astype(str).eq(model_id)
        & records["scenario"].isin(["Offline", "Server", "Interactive"])
        & records["valid"].fillna(False).astype(bool)
        & records["throughput_per_accelerator"].notna()
    ]
    scenarios = {
        str(accelerator): set(group.astype(str))
        for accelerator, group in ran.groupby(ran["accelerator"].astype(str))["scenario"]
    }
    seen = [scenarios.get(str(accelerator), set()) for accelerator in frame["accelerator"]]
    return np.array(
        ["transferred" if not found else "measured" if found & set(exact) else "interpolated" for found in seen],
        dtype=object,
    )


def _same_bounds(preset: dict | None, bounds: dict[str, float]) -> bool:
    if not preset:
        return False
    return all(
        math.isclose(float(preset.get(key) or math.inf), bounds[key], rel_tol=0.01) for key in ("ttft_ms", "tpot_ms")
    )
