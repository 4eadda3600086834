"""Physics of a configuration: catalog rows joined onto records, derived totals and a roofline estimate.

The roofline is an upper bound on throughput per accelerator:
- LLMs: output tokens/s limited by compute (2 x active parameters FLOPs per generated token; prefill work is left
  out so the bound holds whatever the prompt lengths) and by memory bandwidth (each decode step streams the weights
  once for the whole batch plus each sequence's KV cache; the batch is what fits in memory next to the weights).
- other models: samples/s limited by compute (forward FLOPs per sample).
It ignores efficiency losses on purpose: measured / roofline is what the predictor learns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import catalogs
from .. import normalize as norm

BYTES_PER_PARAM: dict[str | None, float] = {
    "fp4": 0.5,
    "int4": 0.5,
    "fp6": 0.75,
    "fp8": 1.0,
    "int8": 1.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp32": 4.0,
}
# peak-FLOPs column to use for each weight precision, in order of preference
FLOPS_KEYS = {
    "fp4": ("fp4", "fp8", "int8", "fp16"),
    "int4": ("int4", "int8", "fp8", "fp16"),
    "fp6": ("fp8", "fp16"),
    "fp8": ("fp8", "int8", "fp16", "bf16"),
    "int8": ("int8", "fp8", "fp16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "fp32": ("tf32", "fp32"),
    None: ("fp16", "bf16", "int8", "fp32"),
}
DEFAULT_PRECISION_BYTES = 2.0
MEMORY_FOR_WEIGHTS_AND_KV = 0.9  # the rest goes to activations and the runtime
HOST_W_PER_NODE = 3000.0  # CPUs, memory, NICs, fans and PSU losses of one server, generously (DGX H100: 10.2 kW max)

ACCELERATOR_FEATURES = (
    "acc_kind",
    "acc_family",
    "acc_release_year",
    "acc_memory_gb",
    "acc_bandwidth_tbs",
    "acc_tflops",
    "acc_tdp_w",
    "acc_interconnect_gbs",
)
MODEL_FEATURES = (
    "model_kind",
    "model_params_total_b",
    "model_params_active_b",
    "model_layers",
    "model_hidden",
    "model_kv_heads",
    "model_head_dim",
    "model_moe",
    "model_gflops_per_sample",
)


def resolve_accelerator(name: str | None) -> dict | None:
    """A catalog row for an id ('nvidia-h100-sxm-80gb'), a short id ('h100-sxm-80gb') or a submitted name."""
    if not name:
        return None
    catalog = catalogs.accelerators()
    text = str(name).strip().lower()
    if text in catalog.by_id:
        return catalog.by_id[text]
    for row in catalog.rows:
        if row["id"].endswith("-" + text) or row["id"].split("-", 1)[-1] == text:
            return row
    return catalog.match(text)


def physics(records: pd.DataFrame) -> pd.DataFrame:
    """Per-record physical features (one row per record, same index). `model_config` is optional (own runs only)."""
    acc_catalog, model_catalog = catalogs.accelerators(), catalogs.models()
    rows = []
    used = [
        "accelerator",
        "accelerator_raw",
        "model",
        "benchmark",
        "precision",
        "accelerators_total",
        "accelerator_memory_gb",
    ]
    for rec in (
        records[used]
        .assign(model_config=records["model_config"] if "model_config" in records else None)
        .itertuples(index=False)
    ):
        acc = acc_catalog.by_id.get(rec.accelerator) if isinstance(rec.accelerator, str) else None
        if acc is None and isinstance(rec.accelerator_raw, str):
            acc = acc_catalog.match(rec.accelerator_raw)
        model = model_catalog.resolve(rec.model) if isinstance(rec.model, str) else None
        if model is None and isinstance(rec.benchmark, str):
            model = model_catalog.resolve(rec.benchmark)
        if model is None and isinstance(rec.model_config, str):
            model = _from_config(rec.model_config)
        rows.append(_one(acc, model, rec))
    return pd.DataFrame(rows, index=records.index)


def _from_config(path: str) -> dict | None:
    """The model row of a record's config.json (an own run of a model folder the catalog lacks); None when the file
    is gone (a dataset moved to another machine) or describes no language model: the model stays unknown."""
    from ..model_config import ModelConfigError, resolve

    try:
        return resolve(path)
    except ModelConfigError:
        return None


def _one(acc: dict | None, model: dict | None, rec) -> dict:
    # a record that does not say its precision runs the model's published weights (DeepSeek fp8, gpt-oss mxfp4)
    precision = rec.precision if isinstance(rec.precision, str) else (model or {}).get("native_precision")
    total = (
        float(rec.accelerators_total) if _is_number(rec.accelerators_total) and rec.accelerators_total > 0 else np.nan
    )
    out: dict[str, Any] = {key: np.nan for key in ACCELERATOR_FEATURES + MODEL_FEATURES}
    out["acc_kind"] = out["acc_family"] = out["model_kind"] = None
    out["peak_tflops_any"] = np.nan
    if acc:
        tflops = acc.get("tflops") or {}
        peak = next((tflops[k] for k in FLOPS_KEYS.get(precision, FLOPS_KEYS[None]) if tflops.get(k)), None)
        # submitters state the starting weights ("fp16") and quantize at build time: the bound uses the fastest
        # format the part has
        out["peak_tflops_any"] = max((v for v in tflops.values() if _is_number(v)), default=np.nan)
        out["acc_tflops_by_format"] = tflops
        out.update(
            {
                "acc_kind": acc.get("kind"),
                "acc_family": acc.get("family"),
                "acc_release_year": _num(acc.get("release_year")),
                "acc_memory_gb": _num(acc.get("memory_gb")),
                "acc_bandwidth_tbs": _num(acc.get("memory_bandwidth_tbs")),
                "acc_tflops": _num(peak),
                "acc_tdp_w": _num(acc.get("tdp_w")),
                "acc_interconnect_gbs": _num(acc.get("interconnect_gbs")),
            }
        )
    if np.isnan(out["acc_memory_gb"]) and _is_number(rec.accelerator_memory_gb):
        out["acc_memory_gb"] = float(rec.accelerator_memory_gb)
    if model:
        experts = _num(model.get("moe_experts"))
        out.update(
            {
                "model_kind": model.get("kind"),
                "model_params_total_b": _num(model.get("params_total_b")),
                "model_params_active_b": _num(model.get("params_active_b") or model.get("params_total_b")),
                "model_layers": _num(model.get("layers")),
                "model_hidden": _num(model.get("hidden_size")),
                "model_kv_heads": _num(model.get("kv_heads")),
                "model_head_dim": _num(model.get("head_dim")),
                "model_moe": float(experts > 1) if not np.isnan(experts) else 0.0,
                "model_gflops_per_sample": _num(model.get("gflops_per_sample")),
            }
        )
    bytes_pp = BYTES_PER_PARAM.get(precision, DEFAULT_PRECISION_BYTES)
    out["bytes_per_param"] = bytes_pp
    out["total_memory_gb"] = out["acc_memory_gb"] * total
    out["total_bandwidth_tbs"] = out["acc_bandwidth_tbs"] * total
    out["total_tflops"] = out["acc_tflops"] * total
    out["weights_gb"] = out["model_params_total_b"] * bytes_pp
    out["memory_headroom"] = out["total_memory_gb"] / out["weights_gb"]
    out["fits_in_memory"] = (
        float(out["weights_gb"] <= MEMORY_FOR_WEIGHTS_AND_KV * out["total_memory_gb"])
        if not np.isnan(out["memory_headroom"])
        else np.nan
    )
    # KV caches stay 16-bit in most MLPerf LLM submissions: the catalog's bf16 size (MLA included)
    out["kv_bytes_per_token"] = _num(model.get("kv_bytes_per_token_bf16")) if model else np.nan
    out["flops_per_byte"] = out["acc_tflops"] / out["acc_bandwidth_tbs"]
    out["roofline_per_accelerator"] = roofline(out, model, rec.benchmark, total)
    out["work_bound_per_accelerator"] = roofline(out, model, rec.benchmark, total, prefill=True)
    out.pop("acc_tflops_by_format", None)  # read by the roofline only, not a feature
    return out


def roofline(feat: dict, model: dict | None, benchmark, total: float, *, prefill: bool = False) -> float:
    """Throughput per accelerator (tokens/s for LLMs, samples/s otherwise) the part could reach at its fastest
    format; NaN when unknown.

    prefill=False is a true upper bound (decode work only). prefill=True also charges each generated token its
    share of the prompt's FLOPs at the benchmark dataset's mean lengths (features/workloads.yaml): not a bound, but
    the work measure that makes efficiency comparable between chat-length and long-context models.
    """
    flops = max(feat["acc_tflops"], feat["peak_tflops_any"]) * 1e12
    if np.isnan(flops) or model is None:
        return np.nan
    if norm.is_llm_benchmark(benchmark if isinstance(benchmark, str) else None) or model.get("kind") == "llm":
        active = feat["model_params_active_b"] * 1e9
        if np.isnan(active):
            return np.nan
        n_in, n_out = catalogs.workload_sequence(benchmark if isinstance(benchmark, str) else None, model)
        per_token = 2 * active * ((n_in + n_out) / n_out if prefill else 1.0)
        if prefill:  # the work measure also counts attention over the context (long prompts, long reasoning)
            per_token += attention_flops_per_token(model, feat["kv_bytes_per_token"], n_in, n_out)
        compute_bound = flops / per_token
        bandwidth = feat["acc_bandwidth_tbs"] * 1e12
        memory = feat["acc_memory_gb"] * 1e9
        if np.isnan(bandwidth) or np.isnan(memory) or np.isnan(feat["kv_bytes_per_token"]):
            return compute_bound
        parts = total if total > 0 else 1
        usable = MEMORY_FOR_WEIGHTS_AND_KV * memory
        # weights and each sequence's KV cache are split over the parts; the batch is system-wide
        weights = feat["model_params_total_b"] * 1e9 * _weight_bytes(feat, usable * parts, prefill) / parts
        kv_per_sequence = feat["kv_bytes_per_token"] * (n_in + n_out / 2) / parts
        batch = max((usable - weights) / kv_per_sequence, 1.0)
        step = (weights + batch * kv_per_sequence) / bandwidth  # every part streams its share once per step
        return float(min(compute_bound, batch / step / parts))
    gflops = feat["model_gflops_per_sample"]
    return float(flops / (gflops * 1e9)) if gflops and not np.isnan(gflops) else np.nan


def attention_flops_per_token(model: dict, kv_bytes_per_token: float, n_in: float, n_out: float) -> float:
    """Attention FLOPs per generated token: scores and values over the context while decoding (mean context
    n_in + n_out / 2) plus the prompt's quadratic prefill shared over the output. 4 x layers x heads x d per context
    position, d = the head size, or for MLA the latent each position caches (KV bytes / 2 bytes / layers)."""
    layers, heads = _num(model.get("layers")), _num(model.get("attention_heads"))
    d = _num(model.get("head_dim"))
    if str(model.get("attention") or "").upper() == "MLA" or np.isnan(d):
        d = kv_bytes_per_token / 2.0 / layers if layers else np.nan
    per_position = 4.0 * layers * heads * d
    if not np.isfinite(per_position):
        return 0.0
    return per_position * ((n_in + n_out / 2) + n_in * n_in / (2 * n_out))


def _weight_bytes(feat: dict, memory: float, stated: bool) -> float:
    """Bytes per weight for the memory bound: the stated precision while its weights fit (the work measure), else
    and for the upper bound (`stated` False) the smallest format the part computes in: MLPerf submitters state the
    starting weights ("fp16") and quantise at build time."""
    smallest = min(
        (
            BYTES_PER_PARAM[k]
            for k, v in (feat.get("acc_tflops_by_format") or {}).items()
            if k in BYTES_PER_PARAM and _is_number(v) and v > 0
        ),
        default=feat["bytes_per_param"],
    )
    fits = feat["model_params_total_b"] * 1e9 * feat["bytes_per_param"] < memory
    return feat["bytes_per_param"] if stated and fits else min(smallest, feat["bytes_per_param"])


def _num(value) -> float:
    return float(value) if _is_number(value) else np.nan


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and value == value
        and value is not pd.NA
    )
