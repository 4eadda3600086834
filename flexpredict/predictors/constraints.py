"""Physics and consistency as constraints on a bundle's predictions, not hopes.

- Throughput per accelerator is never above the roofline (a true upper bound: no measured LLM row exceeds it).
- A configuration whose weights (at its stated precision) plus the KV cache of one sequence exceed the
  accelerators' memory gets
  `fits = False` and no prediction at all (nothing runs).
- Power lies between the accelerators' idle share and their TDP plus a host allowance per node; a part with no
  TDP and no measured power has none (`unknown_power_w`, set by the bundle), and then no energy either.
- Energy per token (per sample) is predicted power over predicted throughput of the same configuration; its interval
  keeps the width the energy target was calibrated to.
- Latency p99 is never below latency p90 of the same configuration.
- TTFT/TPOT p99 of an MLPerf Server/Interactive configuration is never above the scenario's bound: a valid result
  met it by the rules; never below one decode step either (the targets' own `floor`), which wins where a part is
  too slow to meet the bound at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import catalogs
from ..features.transformer import power_ceiling_per_accelerator
from .targets import decode_step_ms

# a system under load never draws less than this share of its accelerators' TDP (measured minimum over MLPerf power
# results: 0.63 for GPU systems, 0.37 for SoC modules, 0.07 for CPU sockets, whose TDP is not the system's)
IDLE_SHARE = {"cpu": 0.03, "soc": 0.15}
IDLE_SHARE_ACCELERATOR = 0.3
_RATE_TARGET = {"energy_j_per_token": "throughput_per_accelerator", "energy_j_per_sample": "throughput_per_accelerator"}
_BOUND_COLUMNS = {"ttft_p99_ms": "ttft_bound_ms", "tpot_p99_ms": "tpot_bound_ms", "latency_p99_ms": "latency_bound_ms"}


def fits(records: pd.DataFrame) -> np.ndarray:
    """True where the weights and one sequence's KV cache fit in the accelerators' memory, False where they do not,
    True where unknown (no catalog memory: the trees' OOD flag speaks for those)."""
    weights = pd.to_numeric(records["weights_gb"], errors="coerce").to_numpy("float64")
    memory = pd.to_numeric(records["total_memory_gb"], errors="coerce").to_numpy("float64")
    kv = pd.to_numeric(records["kv_bytes_per_token"], errors="coerce").to_numpy("float64")
    lengths: dict = {}
    tokens = np.array(
        [
            sum(
                _sequence(b, m, i, o)
                if _positive(i) and _positive(o)
                else lengths.setdefault((b, m), _sequence(b, m, None, None))
            )
            for b, m, i, o in zip(
                records["benchmark"], records["model"], records["input_tokens_mean"], records["output_tokens_mean"]
            )
        ]
    )
    need = weights + np.nan_to_num(kv) * tokens / 1e9
    with np.errstate(invalid="ignore"):
        return ~(need > memory)


def unknown_power_reason(accelerator) -> str:
    """Why a configuration has no power (nor energy): `unknown_<target>` rows."""
    return f"no TDP for {accelerator} in the catalog and no measured power on it"


def power_bounds(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(floor, ceiling) of whole-system power in W; NaN where the part's TDP is unknown."""
    tdp = pd.to_numeric(records["acc_tdp_w"], errors="coerce").to_numpy("float64")
    total = pd.to_numeric(records["accelerators_total"], errors="coerce").to_numpy("float64")
    share = records["acc_kind"].map(lambda k: IDLE_SHARE.get(k, IDLE_SHARE_ACCELERATOR)).to_numpy("float64")
    return share * tdp * total, power_ceiling_per_accelerator(records).to_numpy("float64") * total


def constrain(records: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """`predicted` (pred_<target>, _lo, _hi per completed record) with the constraints above applied: a new frame."""
    out = predicted.copy()
    names = [c.removeprefix("pred_") for c in out.columns if c.startswith("pred_") and not c.endswith(("_lo", "_hi"))]
    if "pred_throughput_per_accelerator" in out:  # the roofline is a true upper bound (no measured row above it)
        ceiling = pd.to_numeric(records["roofline_per_accelerator"], errors="coerce").to_numpy("float64")
        ceiling = np.where(np.isfinite(ceiling) & (ceiling > 0), ceiling, np.inf)
        for suffix in ("", "_lo", "_hi"):
            column = f"pred_throughput_per_accelerator{suffix}"
            out[column] = np.minimum(out[column].to_numpy("float64"), ceiling)
    if "pred_power_w" in out:
        floor, ceiling = power_bounds(records)
        for suffix in ("", "_lo", "_hi"):
            column = f"pred_power_w{suffix}"
            out[column] = np.clip(out[column], np.nan_to_num(floor, nan=0.0), np.nan_to_num(ceiling, nan=np.inf))
    total = pd.to_numeric(records["accelerators_total"], errors="coerce").to_numpy("float64")
    for name, rate in _RATE_TARGET.items():
        if f"pred_{name}" not in out or "pred_power_w" not in out or f"pred_{rate}" not in out:
            continue
        consistent = out["pred_power_w"].to_numpy() / (out[f"pred_{rate}"].to_numpy() * total)
        has = np.isfinite(consistent) & out[f"pred_{name}"].notna().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            up = (out[f"pred_{name}_hi"] / out[f"pred_{name}"]).to_numpy()
            down = (out[f"pred_{name}"] / out[f"pred_{name}_lo"]).to_numpy()
        out.loc[has, f"pred_{name}"] = consistent[has]
        out.loc[has, f"pred_{name}_lo"] = consistent[has] / down[has]
        out.loc[has, f"pred_{name}_hi"] = consistent[has] * up[has]
        if "unknown_power_w" in out:  # energy is power / throughput: an unknown power leaves it unknown
            unknown = out["unknown_power_w"].to_numpy(dtype=bool) & out[f"pred_{name}"].notna().to_numpy()
            out.loc[unknown, [f"pred_{name}", f"pred_{name}_lo", f"pred_{name}_hi"]] = np.nan
            out[f"unknown_{name}"] = unknown
    for name, bound_column in _BOUND_COLUMNS.items():
        if f"pred_{name}" not in out or bound_column not in records:
            continue
        valid_mlperf = records["scenario"].isin(["Server", "Interactive"]).to_numpy()
        bound = pd.to_numeric(records[bound_column], errors="coerce").to_numpy("float64")
        bound = np.where(valid_mlperf & np.isfinite(bound), bound, np.inf)
        if name in ("ttft_p99_ms", "tpot_p99_ms"):  # a part too slow to meet the bound stays at its physical floor
            bound = np.maximum(bound, np.nan_to_num(decode_step_ms(records), nan=0.0))
        for suffix in ("", "_lo", "_hi"):
            column = f"pred_{name}{suffix}"
            out[column] = np.minimum(out[column].to_numpy("float64"), bound)
    if "pred_latency_p99_ms" in out and "pred_latency_p90_ms" in out:  # two models, one distribution: p99 >= p90
        for suffix in ("", "_lo", "_hi"):
            p99, p90 = (out[f"pred_latency_p{q}_ms{suffix}"].to_numpy("float64") for q in (99, 90))
            out[f"pred_latency_p99_ms{suffix}"] = np.fmax(p99, p90)
    fit = fits(records)
    for name in names:
        for suffix in ("", "_lo", "_hi"):
            out.loc[~fit, f"pred_{name}{suffix}"] = np.nan
    out["fits"] = fit
    return out


def _sequence(benchmark, model, input_tokens, output_tokens) -> tuple[float, float]:
    """(input, output) tokens of one sequence: the record's own lengths, else its benchmark's dataset means."""
    if _positive(input_tokens) and _positive(output_tokens):
        return float(input_tokens), float(output_tokens)
    row = catalogs.models().resolve(model) if isinstance(model, str) else None
    if row is None or row.get("kind") != "llm":
        return 0.0, 0.0
    return catalogs.workload_sequence(benchmark if isinstance(benchmark, str) else None, row)


def _positive(value) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False
