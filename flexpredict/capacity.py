"""The capacity function: latency of a configuration at any load, and the throughput it sustains under any bound.

MLPerf measures one operating point per scenario, chosen to sit just under the scenario's bound; the latency-under-load
sample measures whole concurrency sweeps. Both are points of one curve per configuration, which this module models:

- physics gives the curve's shape: a decode step streams the weights touched by the batch plus each sequence's KV
  cache (or is compute bound), the batch is what fits in memory next to the weights (and the engine's batch cap),
  each prompt's prefill costs 2 x active parameters x prompt tokens of compute and steals decode time (aggregated
  serving), and requests beyond the batch limit queue for a slot;
- two XGBoost models learn log(measured / physics) of TPOT and TTFT (p50), monotone in the load, from the sample's
  sweeps and from MLPerf Server/Interactive results with logged percentiles (their concurrency by Little's law);
- p99 is p50 times the median p99/p50 ratio of MLPerf's logs; intervals are conformal, from folds that hold out
  whole (model, system) groups;
- a whole MLPerf system (no parallelism stated) also gets a speed factor k: how much faster than the curve its
  measured results (Offline, Server, Interactive at their bounds) say it is; latencies scale by 1/k and throughput by
  k. Evidence of the same system (`evidence=`) sets k directly; otherwise the median k of the model on that
  accelerator (else of the accelerator) in training.

`throughput_at_slo` inverts the curve: the highest per-accelerator throughput whose predicted p99 latencies stay
within the bounds. It is monotone in each bound (a looser bound keeps every load a tighter one allowed), tends to the
saturated (Offline) throughput as the bounds loosen, and is zero below the physical floor.
Saved as XGBoost UBJ + JSON, never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import catalogs
from .features.physics import MEMORY_FOR_WEIGHTS_AND_KV

if TYPE_CHECKING:
    import xgboost as xgb

FORMAT_VERSION = 1
FOLDER = "capacity"  # the capacity model's subfolder of a trained model folder
META_FILE = "capacity.json"
BOOSTER_FILES = {"tpot": "capacity_tpot.ubj", "ttft": "capacity_ttft.ubj"}
_MAX_PREFILL_SHARE = 0.95
_FIXED_POINT_STEPS = 12
# the concurrency grid the inverse searches: 1 .. 2^17 requests in flight, 12 points per doubling
GRID = np.exp2(np.arange(0, 17 * 12 + 1) / 12.0)
MLPERF_SCENARIOS = ("Offline", "Server", "Interactive")
OPEN_LOOP_SCENARIOS = ("Server", "Interactive")
SPEED_LIMITS = (1 / 4, 4.0)  # evidence may move a curve by at most this factor either way
ENGINES = ("tensorrt-llm", "vllm", "sglang")
FEATURES = (
    "log_concurrency",
    "log_load_over_batch",
    "log_isl",
    "log_osl",
    "log_gpus",
    "tensor_parallel",
    "expert_parallel",
    "attention_dp",
    "pipeline_parallel",
    "log_params_total",
    "log_params_active",
    "log_kv_bytes",
    "bytes_per_param",
    "log_bandwidth",
    "log_tflops",
    "log_memory",
    "disaggregated",
    "open_loop",
    *(f"engine_{e}" for e in ENGINES),
)
MONOTONE_IN_LOAD = ("log_concurrency", "log_load_over_batch")
# the bound-level correction of whole systems' throughput: headroom = log(bound x k / floor), monotone in each
BOUND_FEATURES = (
    "log_ttft_headroom",
    "log_tpot_headroom",
    "log_params_active",
    "log_params_total",
    "log_gpus",
    "log_bandwidth",
    "log_tflops",
    "bytes_per_param",
    "log_isl",
    "log_osl",
    "log_kv_bytes",
)
MONOTONE_IN_BOUNDS = ("log_ttft_headroom", "log_tpot_headroom")
UNBOUNDED_HEADROOM = 20.0  # log headroom standing for "no bound" (Offline)
BOUND_BOOSTER_FILE = "capacity_bounds.ubj"
BOUND_PARAMS = {
    "objective": "reg:pseudohubererror",
    "huber_slope": 0.5,
    "max_depth": 3,
    "eta": 0.1,
    "subsample": 0.8,
    "min_child_weight": 5.0,
    "lambda": 1.0,
    "tree_method": "hist",
    "max_bin": 64,
    "seed": 0,
}
BOUND_ROUNDS = 120
# pseudo-Huber, not L1: L1's leaf refresh can break monotone constraints; base_score = the median of the labels
XGB_PARAMS = {
    "objective": "reg:pseudohubererror",
    "huber_slope": 0.5,
    "max_depth": 5,
    "eta": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 3.0,
    "lambda": 1.0,
    "tree_method": "hist",
    "max_bin": 64,
    "seed": 0,
}
BOOST_ROUNDS = 150
CALIBRATION_FOLDS = 4
MIN_CURVE_POINTS = 20


# -- configuration and physics ---------------------------------------------------------------------------------------


def configuration(records: pd.DataFrame) -> pd.DataFrame:
    """Physical inputs of each record's configuration (new frame, same index): GPUs serving it, weights, KV bytes,
    per-GPU bandwidth/compute/memory, prompt and output lengths, batch limit, serving mode."""
    from .features import RecordFeaturizer

    frame = RecordFeaturizer.complete(records)

    def num(column: str) -> np.ndarray:
        return pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy()

    parallel = {c: np.where(num(c) > 0, num(c), 1.0) for c in ("tensor_parallel", "pipeline_parallel", "attention_dp")}
    memory, bandwidth, flops, nominal = _host_physics(frame, num)
    total = num("accelerators_total")
    replica = np.maximum(parallel["tensor_parallel"] * parallel["pipeline_parallel"] * parallel["attention_dp"], 1)
    isl, osl = _sequence_lengths(frame)
    bytes_pp = num("bytes_per_param")
    # a configuration that ran held its weights: a stated count too small for them (a disaggregated row counting
    # one worker) is raised to the fewest GPUs that can
    holding = np.ceil(num("model_params_total_b") * 1e9 * bytes_pp / (MEMORY_FOR_WEIGHTS_AND_KV * 0.75 * memory * 1e9))
    gpus = np.fmax(np.where(total > 0, total, replica), holding)
    out = pd.DataFrame(
        {
            "gpus": gpus,
            "isl": isl,
            "osl": osl,
            "bytes_per_param": bytes_pp,
            "params_total": num("model_params_total_b") * 1e9,
            "params_active": num("model_params_active_b") * 1e9,
            "kv_bytes_per_token": num("kv_bytes_per_token"),
            "bandwidth": bandwidth * 1e12,
            "flops": flops * 1e12,
            "memory": memory * 1e9,
            "nominal_speed": nominal,
            "llm": frame["benchmark"].map(_is_llm).to_numpy(dtype=bool) | (frame["model_kind"] == "llm").to_numpy(bool),
            "tensor_parallel": num("tensor_parallel"),
            "expert_parallel": num("expert_parallel"),
            "attention_dp": num("attention_dp"),
            "pipeline_parallel": num("pipeline_parallel"),
            "disaggregated": (frame["serving_mode"].astype("object") == "disaggregated").to_numpy(dtype="float64"),
            "parallelism_stated": frame["tensor_parallel"].notna().to_numpy(),
            "engine": frame["engine"].astype("object").to_numpy(),
            "model": frame["model"].astype("object").to_numpy(),
            "accelerator": frame["accelerator"].astype("object").to_numpy(),
        },
        index=records.index,
    )
    weights = out["params_total"] * out["bytes_per_param"]
    kv_per_sequence = out["kv_bytes_per_token"] * (out["isl"] + out["osl"])
    batch = (MEMORY_FOR_WEIGHTS_AND_KV * out["memory"] * out["gpus"] - weights) / kv_per_sequence
    # the engine's batch cap (it admitted that many, so they fit) holds per attention-data-parallel rank, for each
    # replica of the configuration; without one, the batch is what fits in memory next to the weights
    engine_cap = num("max_num_seqs") * parallel["attention_dp"] * np.where(total > 0, total / replica, 1.0)
    out["max_batch"] = np.fmax(np.where(engine_cap > 0, engine_cap, batch), 1.0)
    return out


def _host_physics(frame: pd.DataFrame, num) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(memory GB, bandwidth TB/s, TFLOPS, nominal) per accelerator: the catalog's; for a host CPU that served
    the model, its own memory per socket where the catalog has none; and when the catalog lacks the CPU (an own
    run), the catalog CPUs' median bandwidth as a nominal unit and no compute bound (every physics latency is then
    proportional to 1 / bandwidth): such a host's curve gets its level from its own measured points (`speed`)."""
    host = (num("cpu_only") > 0) & (num("host_memory_gb") > 0)
    sockets = np.where(num("accelerators_per_node") > 0, num("accelerators_per_node"), 1.0)
    memory = np.where(np.isfinite(num("acc_memory_gb")) | ~host, num("acc_memory_gb"), num("host_memory_gb") / sockets)
    nominal = host & ~np.isfinite(num("acc_bandwidth_tbs"))
    bandwidth = np.where(nominal, _reference_cpu_bandwidth() if nominal.any() else np.nan, num("acc_bandwidth_tbs"))
    flops = np.fmax(num("acc_tflops"), num("peak_tflops_any"))
    return memory, bandwidth, np.where(np.isnan(flops) & nominal, np.inf, flops), nominal


def _reference_cpu_bandwidth() -> float:
    """Median peak DRAM bandwidth (TB/s) of the catalog's CPUs."""
    cpus = [r for r in catalogs.accelerators().rows if r.get("kind") == "cpu" and r.get("memory_bandwidth_tbs")]
    return float(np.median([r["memory_bandwidth_tbs"] for r in cpus]))


def covers(records: pd.DataFrame, config: pd.DataFrame | None = None) -> np.ndarray:
    """Which records the capacity function describes: LLM workloads (an MLPerf LLM benchmark, or a language model
    by its catalog row or config.json) whose stated accelerators (when stated) hold the weights with room for a KV
    cache (`configuration` would otherwise count more GPUs than they have)."""
    config = configuration(records) if config is None else config
    llm = config["llm"].to_numpy(dtype=bool)
    stated = pd.to_numeric(records["accelerators_total"], errors="coerce").to_numpy(dtype="float64")
    held = ~(config["gpus"].to_numpy() > stated)
    known = np.isfinite(
        config[["isl", "osl", "params_total", "kv_bytes_per_token", "max_batch"]].to_numpy(dtype="float64")
    ).all(axis=1)
    return llm & held & known & (config["max_batch"].to_numpy() > 0)


def _sequence_lengths(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Stated mean lengths, else the benchmark's MLPerf workload, else the catalog default."""
    model_catalog = catalogs.models()
    defaults = [
        catalogs.workload_sequence(
            b if isinstance(b, str) else None, model_catalog.resolve(m) if isinstance(m, str) else None
        )
        for b, m in zip(frame["benchmark"].astype("object"), frame["model"].astype("object"))
    ]
    default_in, default_out = (
        (np.array(side, dtype="float64") for side in zip(*defaults)) if defaults else (np.array([]), np.array([]))
    )
    stated_in = pd.to_numeric(frame["input_tokens_mean"], errors="coerce").to_numpy(dtype="float64")
    stated_out = pd.to_numeric(frame["output_tokens_mean"], errors="coerce").to_numpy(dtype="float64")
    return (np.where(stated_in > 0, stated_in, default_in), np.where(stated_out > 0, stated_out, default_out))


def physics_latency(config: pd.DataFrame, concurrency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT ms, TPOT ms) of a closed loop keeping `concurrency` requests in flight (rows x grid, or rows).

    Fixed point of: batch = min(concurrency, max batch); decode step = max(weights touched + batch x KV cache over
    bandwidth, 2 x active params x batch over compute); prefill of one prompt = 2 x active x ISL over compute + one
    weight pass; prefill share of the GPUs = admission rate x prefill time (aggregated serving stretches TPOT by
    1 / (1 - share)); TTFT = prefill + its M/D/1 wait + the wait for a batch slot + one step."""
    c = np.asarray(concurrency, dtype="float64")
    col = (
        (lambda name: config[name].to_numpy(dtype="float64")[:, None])
        if c.ndim == 2
        else (lambda name: config[name].to_numpy(dtype="float64"))
    )
    gpus, bandwidth, flops = col("gpus"), col("bandwidth"), col("flops")
    bytes_pp, active, total = col("bytes_per_param"), col("params_active"), col("params_total")
    isl, osl, max_batch, disagg = col("isl"), col("osl"), col("max_batch"), col("disaggregated")
    batch = np.minimum(c, max_batch)
    kv_sequence = col("kv_bytes_per_token") * (isl + osl / 2)
    touched = np.minimum(total, active * batch) * bytes_pp
    step = np.maximum((touched + batch * kv_sequence) / (gpus * bandwidth), 2 * active * batch / (gpus * flops))
    prefill = 2 * active * isl / (gpus * flops) + total * bytes_pp / (gpus * bandwidth)
    tpot, in_service = step, prefill + step  # in_service: TTFT once the request holds a batch slot
    for _ in range(_FIXED_POINT_STEPS):
        admitted = batch / (in_service + (osl - 1) * tpot)
        share = np.minimum(admitted * prefill, _MAX_PREFILL_SHARE)
        tpot = np.where(disagg > 0, step, step / (1 - share))
        in_service = prefill * (1 + share / (2 * (1 - share))) + step
    slot_wait = np.maximum(c - max_batch, 0) / admitted
    return (in_service + slot_wait) * 1e3, tpot * 1e3


def floors_ms(config: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, TPOT) floors: one prompt's prefill alone; one decode step at batch 1 (the active weights and one
    sequence's KV cache from memory). No load makes a token come faster. A host of nominal speed has none (0): its
    bandwidth is a placeholder unit, not the part's."""

    def col(name: str) -> np.ndarray:
        return config[name].to_numpy(dtype="float64")

    gpus, bandwidth, flops, active = col("gpus"), col("bandwidth"), col("flops"), col("params_active")
    step = np.maximum(
        (active * col("bytes_per_param") + col("kv_bytes_per_token") * col("isl")) / (gpus * bandwidth),
        2 * active / (gpus * flops),
    )
    prefill = 2 * active * col("isl") / (gpus * flops) + active * col("bytes_per_param") / (gpus * bandwidth)
    known = ~config["nominal_speed"].to_numpy(bool)
    return np.where(known, prefill * 1e3, 0.0), np.where(known, step * 1e3, 0.0)


# -- the model -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curves:
    """What both directions need of a set of records, computed once: configuration, speed factors, and the predicted
    open-loop p50 curve over GRID (`CapacityModel._grid`)."""

    config: pd.DataFrame
    speed: np.ndarray
    grid: dict


@dataclass
class CapacityModel:
    """Learned corrections of the physics curve, p99/p50 ratios, conformal half-widths (log) and speed tables."""

    boosters: dict
    p99_over_p50: dict  # metric -> ratio
    half_width: dict  # "ttft_p50" ... -> conformal half-width of log(value) at `interval_level`
    speed_table: dict = field(default_factory=dict)  # "model|accelerator" or "|accelerator" -> log k
    bound_booster: xgb.Booster | None = None  # log(measured / curve) of whole systems' throughput at their bounds
    throughput_half_width: float = np.nan  # conformal half-width of that corrected log throughput
    interval_level: float = 0.9
    training_rows: dict = field(default_factory=dict)

    # -- latency at a load ---------------------------------------------------------------------------------------

    def curves(self, records: pd.DataFrame, evidence: pd.DataFrame | None = None) -> Curves:
        """The records' configuration, speed factors and predicted curve, for several calls on the same records."""
        config = configuration(records)
        return Curves(config, self.speed(config, records, evidence), self._grid(config))

    def latency_at_load(
        self,
        records: pd.DataFrame,
        *,
        concurrency=None,
        qps=None,
        tokens_per_s=None,
        evidence: pd.DataFrame | None = None,
        curves: Curves | None = None,
    ) -> pd.DataFrame:
        """TTFT/TPOT p50/p99 (+ _lo/_hi) and output tokens/s per record at a load, as a new frame (records' index).

        The load is one of: `concurrency` (requests in flight, closed loop), `qps` (requests/s) or `tokens_per_s`
        (generated tokens/s, whole configuration), each a scalar or one value per record; none given reads the
        records' `concurrency`, else `target_qps` column. `over_capacity` is True where an arrival rate exceeds
        what the configuration sustains (latencies are then null: no steady state), or where the concurrency is
        beyond the batch limit (requests queue for a slot; TTFT grows with the load, throughput no longer).
        `curves` (from `curves(records, evidence)`) saves recomputing them."""
        config = curves.config if curves is not None else configuration(records)
        speed = curves.speed if curves is not None else self.speed(config, records, evidence)
        load_kind, load = _load(records, concurrency, qps, tokens_per_s)
        open_loop = np.full(len(config), load_kind != "concurrency")
        if load_kind == "concurrency":
            # k x faster at the same batch: same concurrency, latencies / k
            at = load
            over = at > config["max_batch"].to_numpy()
        else:
            rate = load if load_kind == "tokens_per_s" else load * config["osl"].to_numpy()
            at, over = self._concurrency_for_rate(
                curves.grid if curves is not None else self._grid(config), rate / speed
            )
        frame = pd.DataFrame(self._latencies(config, at, open_loop))
        frame = _scaled(frame, 1 / speed, *floors_ms(config))
        frame["pred_output_tokens_per_s"] = (
            _tokens_per_s(at, config["osl"].to_numpy(), frame)
            if load_kind == "concurrency"
            else np.where(over, np.nan, rate)
        )
        frame["pred_concurrency"] = at
        frame["over_capacity"] = over
        frame["speed_factor"] = speed
        if load_kind != "concurrency":
            frame.loc[over, [c for c in frame.columns if c.startswith(("pred_ttft", "pred_tpot"))]] = np.nan
        frame.index = records.index
        return frame

    @staticmethod
    def _concurrency_for_rate(curve: dict, rate) -> tuple[np.ndarray, np.ndarray]:
        """Concurrency at which the (unscaled) open-loop curve delivers `rate` tokens/s, and whether it cannot."""
        throughput = np.maximum.accumulate(curve["tokens_per_s"], axis=1)
        log_rate = np.log(np.maximum(rate, 1e-12))
        out = np.empty(len(rate))
        for i, row in enumerate(np.log(throughput)):
            out[i] = np.exp(np.interp(log_rate[i], row, np.log(GRID)))
        return out, rate > throughput[:, -1]

    # -- throughput under bounds ---------------------------------------------------------------------------------

    def throughput_at_slo(
        self,
        records: pd.DataFrame,
        *,
        ttft_ms=None,
        tpot_ms=None,
        evidence: pd.DataFrame | None = None,
        curves: Curves | None = None,
    ) -> pd.DataFrame:
        """Generated tokens/s per accelerator sustainable with TTFT p99 <= ttft_ms and TPOT p99 <= tpot_ms (scalars
        or one per record; None: unbounded), with the interval (`_lo` from the pessimistic end of the latency
        intervals, `_hi` from the optimistic end), as a new frame. Zero where even one request misses the bound.
        `curves` (from `curves(records, evidence)`) saves recomputing them."""
        curves = curves if curves is not None else self.curves(records, evidence)
        config, speed = curves.config, curves.speed
        ttft, tpot = (
            np.nan_to_num(_per_row(bound, len(config), np.inf), nan=np.inf, posinf=np.inf)
            for bound in (ttft_ms, tpot_ms)
        )
        out = _capacity(curves.grid, config["gpus"].to_numpy(), self.latency_offsets(), ttft * speed, tpot * speed)
        point, low, high = (out[name] * speed for name in ("point", "lo", "hi"))
        whole = ~config["parallelism_stated"].to_numpy()
        if self.bound_booster is not None and whole.any():
            # whole MLPerf systems: the correction their results at other bounds taught, with its own interval
            corrected = point * np.exp(
                _predict_with(self.bound_booster, _bound_design(config, ttft * speed, tpot * speed), BOUND_FEATURES)
            )
            point = np.where(whole, corrected, point)
            low = np.where(whole, point * np.exp(-self.throughput_half_width), low)
            high = np.where(whole, point * np.exp(self.throughput_half_width), high)
        frame = pd.DataFrame(
            {
                "pred_throughput_per_accelerator": point,
                "pred_throughput_per_accelerator_lo": low,
                "pred_throughput_per_accelerator_hi": high,
                "pred_concurrency": out["concurrency"],
                "speed_factor": speed,
            },
            index=records.index,
        )
        return frame

    def latency_offsets(self) -> dict:
        """log(p99 / p50-prediction) at the point, pessimistic and optimistic ends of the p99 intervals."""
        return {
            name: {
                metric: np.log(self.p99_over_p50[metric]) + sign * self.half_width[f"{metric}_p99"]
                for metric in ("ttft", "tpot")
            }
            for name, sign in (("point", 0.0), ("lo", 1.0), ("hi", -1.0))
        }

    def _grid(self, config) -> dict:
        """The predicted open-loop p50 curve over GRID: log TTFT, log TPOT, tokens/s (rows x grid). Rows with the
        same configuration (candidates that differ only in price or provider) share one curve."""
        codes, distinct = pd.factorize(pd.util.hash_pandas_object(config, index=False))
        if len(distinct) < len(config):
            first_rows = np.unique(codes, return_index=True)[1]  # code k's first row, for k = 0, 1, ...
            return {name: values[codes] for name, values in self._grid(config.iloc[first_rows]).items()}
        concurrency = np.broadcast_to(GRID, (len(config), len(GRID)))
        latency = self._latencies(config, concurrency, np.ones(concurrency.shape, dtype=bool), intervals=False)
        ttft, tpot = latency["pred_ttft_p50_ms"], latency["pred_tpot_p50_ms"]
        osl, max_batch = config["osl"].to_numpy()[:, None], config["max_batch"].to_numpy()[:, None]
        # beyond the batch limit the extra requests only queue: the batch's own time in the system sets the rate
        in_batch = GRID[None, :] <= np.maximum(max_batch, GRID[0])
        ttft_in_batch = pd.DataFrame(np.where(in_batch, ttft, np.nan)).ffill(axis=1).to_numpy()
        return {
            "log_ttft_p50": np.log(ttft),
            "log_tpot_p50": np.log(tpot),
            "tokens_per_s": np.minimum(GRID[None, :], max_batch) * osl / ((ttft_in_batch + (osl - 1) * tpot) / 1e3),
        }

    # -- latencies -----------------------------------------------------------------------------------------------

    def _latencies(self, config, concurrency, open_loop, *, intervals: bool = True) -> dict[str, np.ndarray]:
        """Predicted TTFT/TPOT p50/p99 (ms, + _lo/_hi with `intervals`) per point, shaped like `concurrency`: one
        load per config row, or rows x grid (the config is then broadcast, not repeated as a frame)."""
        import xgboost as xgb

        shape = np.shape(concurrency)
        phys_ttft, phys_tpot = physics_latency(config, concurrency)
        design = _design(config, concurrency, open_loop)
        matrix = xgb.DMatrix(design.to_numpy(dtype="float64"), feature_names=list(FEATURES))
        with np.errstate(divide="ignore"):  # no floor (0) is log 0 = -inf: nothing to clip
            floors = [np.log(f) for f in floors_ms(config)]
        floor = {
            m: np.broadcast_to(f.reshape(-1, *([1] * (len(shape) - 1))), shape)
            for m, f in zip(("ttft", "tpot"), floors)
        }
        log_p50 = {
            "ttft": np.log(phys_ttft) + self.boosters["ttft"].predict(matrix).reshape(shape),
            "tpot": np.log(phys_tpot) + self.boosters["tpot"].predict(matrix).reshape(shape),
        }
        log_p50 = {metric: np.fmax(value, floor[metric]) for metric, value in log_p50.items()}
        out = {}
        for metric in ("ttft", "tpot"):
            for stat in ("p50", "p99"):
                center = log_p50[metric] + (np.log(self.p99_over_p50[metric]) if stat == "p99" else 0.0)
                out[f"pred_{metric}_{stat}_ms"] = np.exp(center)
                if intervals:
                    half = self.half_width[f"{metric}_{stat}"]
                    out[f"pred_{metric}_{stat}_ms_lo"] = np.exp(np.fmax(center - half, floor[metric]))
                    out[f"pred_{metric}_{stat}_ms_hi"] = np.exp(center + half)
        return out

    # -- speed factor --------------------------------------------------------------------------------------------

    def speed(self, config: pd.DataFrame, records: pd.DataFrame, evidence: pd.DataFrame | None) -> np.ndarray:
        """k per record: from measured results of the same system (evidence: MLPerf results, closed-loop sweep
        points), else the training table for whole systems whose parallelism is not stated, else 1 (the curve is
        what the latency sample taught). A host of nominal speed has only its own points' k, unclipped (its curve's
        level is a unit, not a prediction); without them it is NaN, and so are its latencies."""
        log_k = np.full(len(config), np.nan)
        if evidence is not None and len(evidence):
            measured = self.measured_speed(evidence)
            keys = _system_keys(evidence.loc[measured.index])
            by_system = pd.Series(measured.to_numpy(), index=keys.to_numpy()).groupby(level=0).median()
            log_k = _system_keys(records).map(by_system).to_numpy(dtype="float64")
        for key in (
            config["model"].astype(str) + "|" + config["accelerator"].astype(str),
            "|" + config["accelerator"].astype(str),
        ):
            from_table = key.map(self.speed_table).to_numpy(dtype="float64")
            log_k = np.where(np.isnan(log_k) & ~config["parallelism_stated"].to_numpy(), from_table, log_k)
        nominal = config["nominal_speed"].to_numpy(bool)
        return np.exp(np.where(nominal, log_k, np.clip(np.nan_to_num(log_k, nan=0.0), *np.log(SPEED_LIMITS))))

    def measured_speed(self, results: pd.DataFrame) -> pd.Series:
        """log k of measured results: of MLPerf results (throughput per accelerator at their bounds; Offline
        unbounded) the factor k with k x capacity(bounds x k) = measured, found by bisection (capacity grows with
        k); of closed-loop sweep points log(curve TPOT p50 / measured) at their concurrency (decode steps k x
        faster). Indexed like `results`' rows it could use."""
        mlperf, closed = _mlperf_mask(results), results.loc[_closed_loop(results) & _positive(results, "tpot_p50_ms")]
        parts = [self._mlperf_speed(results.loc[mlperf])] if mlperf.any() else []
        if len(closed):
            concurrency = pd.to_numeric(closed["concurrency"], errors="coerce").to_numpy(float)
            curve = self._latencies(configuration(closed), concurrency, np.zeros(len(closed)), intervals=False)
            measured = pd.to_numeric(closed["tpot_p50_ms"], errors="coerce").to_numpy(float)
            parts.append(pd.Series(np.log(curve["pred_tpot_p50_ms"] / measured), index=closed.index))
        return pd.concat(parts) if parts else pd.Series(dtype="float64")

    def _mlperf_speed(self, rows: pd.DataFrame) -> pd.Series:
        config = configuration(rows)
        offline = (rows["scenario"] == "Offline").to_numpy()
        ttft = np.where(offline, np.inf, pd.to_numeric(rows["ttft_bound_ms"], errors="coerce").to_numpy(float))
        tpot = np.where(offline, np.inf, pd.to_numeric(rows["tpot_bound_ms"], errors="coerce").to_numpy(float))
        measured = pd.to_numeric(rows["throughput_per_accelerator"], errors="coerce").to_numpy(float)
        curve, gpus, offsets = self._grid(config), config["gpus"].to_numpy(), {"point": self.latency_offsets()["point"]}
        low, high = np.full(len(rows), np.log(SPEED_LIMITS[0])), np.full(len(rows), np.log(SPEED_LIMITS[1]))
        for _ in range(14):
            mid = (low + high) / 2
            k = np.exp(mid)
            predicted = _capacity(curve, gpus, offsets, ttft * k, tpot * k)["point"] * k
            faster = predicted < measured
            low, high = np.where(faster, mid, low), np.where(faster, high, mid)
        return pd.Series((low + high) / 2, index=rows.index)

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for metric, name in BOOSTER_FILES.items():
            self.boosters[metric].save_model(folder / name)
        if self.bound_booster is not None:
            self.bound_booster.save_model(folder / BOUND_BOOSTER_FILE)
        document = {
            "format_version": FORMAT_VERSION,
            "features": list(FEATURES),
            "boosters": BOOSTER_FILES,
            "p99_over_p50": self.p99_over_p50,
            "half_width": self.half_width,
            "speed_table": self.speed_table,
            "interval_level": self.interval_level,
            "training_rows": self.training_rows,
            "bound_booster": BOUND_BOOSTER_FILE if self.bound_booster is not None else None,
            "throughput_half_width": _finite_or_none(self.throughput_half_width),
        }
        (folder / META_FILE).write_text(json.dumps(document, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> CapacityModel:
        import xgboost as xgb

        folder = Path(folder)
        document = json.loads((folder / META_FILE).read_text())
        if document.get("format_version") != FORMAT_VERSION or document.get("features") != list(FEATURES):
            raise ValueError(
                f"{folder / META_FILE}: capacity format {document.get('format_version')}, "
                f"expected {FORMAT_VERSION}; retrain with `flexpredict train`"
            )
        boosters = {}
        for metric, name in document["boosters"].items():
            boosters[metric] = xgb.Booster()
            boosters[metric].load_model(folder / name)
        bound_booster = None
        if document["bound_booster"]:
            bound_booster = xgb.Booster()
            bound_booster.load_model(folder / document["bound_booster"])
        half = document["throughput_half_width"]
        return cls(
            boosters=boosters,
            p99_over_p50=document["p99_over_p50"],
            half_width=document["half_width"],
            speed_table=document["speed_table"],
            interval_level=document["interval_level"],
            training_rows=document["training_rows"],
            bound_booster=bound_booster,
            throughput_half_width=np.nan if half is None else half,
        )


# -- training --------------------------------------------------------------------------------------------------------


def curve_points(records: pd.DataFrame) -> pd.DataFrame:
    """The measured points of latency curves, as a new frame of records: closed-loop sweep rows with their
    concurrency and p50 latencies, and MLPerf Server/Interactive results with logged p50s, their concurrency by
    Little's law (tokens/s / output length x time in the system). Adds `point_concurrency`, `open_loop`, `group`."""
    closed = _closed_loop(records)
    logged = records["scenario"].isin(OPEN_LOOP_SCENARIOS) & records["benchmark"].notna()
    keep = (closed | logged) & _positive(records, "ttft_p50_ms") & _positive(records, "tpot_p50_ms")
    rows = _one_per_result(records.loc[keep])
    config = configuration(rows)
    ttft, tpot = (pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in ("ttft_p50_ms", "tpot_p50_ms"))
    little = (
        pd.to_numeric(rows["tokens_per_s"], errors="coerce").to_numpy(float)
        / config["osl"].to_numpy()
        * (ttft + (config["osl"].to_numpy() - 1) * tpot)
        / 1e3
    )
    is_closed = rows["scenario"].eq("ClosedLoop").to_numpy()
    concurrency = np.where(is_closed, pd.to_numeric(rows["concurrency"], errors="coerce").to_numpy(float), little)
    phys_ttft, phys_tpot = physics_latency(config, concurrency)
    usable = (
        np.isfinite(concurrency)
        & (concurrency > 0)
        & np.isfinite(phys_ttft)
        & np.isfinite(phys_tpot)
        & (phys_ttft > 0)
        & (phys_tpot > 0)
    )
    return rows.assign(point_concurrency=concurrency, open_loop=~is_closed, group=group_keys(rows))[usable].reset_index(
        drop=True
    )


def _nominal_level(log_ratio: np.ndarray, groups: np.ndarray, nominal: pd.Series) -> np.ndarray:
    """Per point: the median log ratio of its group where the group's hardware speed is nominal, else 0."""
    median = pd.Series(log_ratio).groupby(groups).transform("median").to_numpy()
    return np.where(nominal.to_numpy(bool), median, 0.0)


def group_keys(records: pd.DataFrame) -> pd.Series:
    """(model, system) groups: no group is on both sides of a split."""
    return records["model"].astype(str) + "|" + records["system_id"].astype(str)


def fit_capacity(
    records: pd.DataFrame, *, interval_level: float = 0.9, random_state: int = 0, n_jobs: int = 2
) -> CapacityModel:
    """Learn the capacity model from schema records (`data build` output: the latency-under-load sample and MLPerf
    LLM results are used, other rows ignored). Intervals from group-held-out folds; about 40 s on 2 cores."""
    from sklearn.model_selection import GroupKFold

    points = curve_points(records)
    if len(points) < MIN_CURVE_POINTS or points["group"].nunique() < 2:
        raise ValueError(
            f"{len(points)} latency-curve point(s) in {points['group'].nunique()} (model, system) "
            f"group(s): the capacity function needs at least {MIN_CURVE_POINTS} in 2 groups (the "
            "latency-under-load sample, or MLPerf Server/Interactive results with logged p50s)"
        )
    config = configuration(points)
    concurrency = points["point_concurrency"].to_numpy(float)
    phys_ttft, phys_tpot = physics_latency(config, concurrency)
    design = _design(config, concurrency, points["open_loop"].to_numpy())
    groups = points["group"].to_numpy()
    # a host of nominal speed: its points teach the curve's shape; their level (median TPOT ratio) is its own k,
    # which evidence of that host sets at prediction, so it is taken out of both targets here
    level = _nominal_level(np.log(points["tpot_p50_ms"].to_numpy(float) / phys_tpot), groups, config["nominal_speed"])
    targets = {
        "ttft": np.log(points["ttft_p50_ms"].to_numpy(float) / phys_ttft) - level,
        "tpot": np.log(points["tpot_p50_ms"].to_numpy(float) / phys_tpot) - level,
    }
    ratios = _p99_over_p50(points)
    params = {**XGB_PARAMS, "seed": random_state, "nthread": n_jobs}
    oof = {metric: np.full(len(points), np.nan) for metric in targets}
    for train, test in GroupKFold(n_splits=min(CALIBRATION_FOLDS, len(set(groups)))).split(design, groups=groups):
        for metric, y in targets.items():
            booster = _train(design.iloc[train], y[train], params)
            oof[metric][test] = _predict(booster, design.iloc[test])
    half = {}
    for metric, y in targets.items():
        half[f"{metric}_p50"] = _conformal(np.abs(y - oof[metric]), interval_level)
        # p99 = p50 x ratio: its width adds the p50 error on held-out groups and the spread of the ratio in MLPerf's
        # logs (a sum, assuming nothing about how the two errors combine)
        ratio = (
            pd.to_numeric(points[f"{metric}_p99_ms"], errors="coerce")
            / pd.to_numeric(points[f"{metric}_p50_ms"], errors="coerce")
        ).to_numpy(float)
        spread = _conformal(np.abs(np.log(ratio / ratios[metric])), interval_level, fallback=0.0)
        half[f"{metric}_p99"] = half[f"{metric}_p50"] + spread
    boosters = {metric: _train(design, y, params) for metric, y in targets.items()}
    model = CapacityModel(
        boosters=boosters,
        p99_over_p50=ratios,
        half_width=half,
        interval_level=interval_level,
        training_rows={"curve_points": len(points), "closed_loop": int((~points["open_loop"]).sum())},
    )
    mlperf = _one_per_result(records.loc[_mlperf_mask(records)])
    if len(mlperf):
        log_k = model.measured_speed(mlperf)
        model.speed_table = _speed_table(mlperf.loc[log_k.index], log_k)
        model.training_rows["speed_results"] = len(log_k)
        _fit_bound_correction(
            model,
            mlperf.loc[log_k.index],
            log_k,
            interval_level,
            {**BOUND_PARAMS, "seed": random_state, "nthread": n_jobs},
        )
    return model


def _fit_bound_correction(
    model: CapacityModel, results: pd.DataFrame, log_k: pd.Series, level: float, params: dict
) -> None:
    """Learn log(measured / curve) of each MLPerf result from its system's *other* scenarios' speed factor (what a
    prediction has), monotone in the bound headrooms; interval half-width from folds grouped by system."""
    from sklearn.model_selection import GroupKFold

    keys = (_system_keys(results) + "|" + results["round"].astype(str)).to_numpy()
    scenario = results["scenario"].astype(str).to_numpy()
    values = log_k.to_numpy()
    frame = pd.DataFrame({"key": keys, "scenario": scenario, "log_k": values})
    others = np.array(
        [
            frame.loc[(frame["key"] == key) & (frame["scenario"] != sc), "log_k"].median()
            for key, sc in zip(keys, scenario)
        ]
    )
    keep = np.isfinite(others)
    if keep.sum() < 20:
        return
    rows = results.loc[keep]
    config = configuration(rows)
    k = np.exp(others[keep])
    offline = (rows["scenario"] == "Offline").to_numpy()
    ttft = np.where(offline, np.inf, pd.to_numeric(rows["ttft_bound_ms"], errors="coerce").to_numpy(float)) * k
    tpot = np.where(offline, np.inf, pd.to_numeric(rows["tpot_bound_ms"], errors="coerce").to_numpy(float)) * k
    curve = (
        _capacity(
            model._grid(config), config["gpus"].to_numpy(), {"point": model.latency_offsets()["point"]}, ttft, tpot
        )["point"]
        * k
    )
    residual = _log(
        pd.to_numeric(rows["throughput_per_accelerator"], errors="coerce").to_numpy(float)
        / np.where(curve > 0, curve, np.nan)
    )
    usable = np.isfinite(residual)
    design = _bound_design(config, ttft, tpot).loc[usable].reset_index(drop=True)
    residual, groups = residual[usable], keys[keep][usable]
    out_of_fold = np.full(len(residual), np.nan)
    for train, test in GroupKFold(n_splits=min(CALIBRATION_FOLDS, len(set(groups)))).split(design, groups=groups):
        booster = _train_with(
            design.iloc[train], residual[train], params, BOUND_FEATURES, MONOTONE_IN_BOUNDS, BOUND_ROUNDS
        )
        out_of_fold[test] = _predict_with(booster, design.iloc[test], BOUND_FEATURES)
    model.throughput_half_width = _conformal(np.abs(residual - out_of_fold), level)
    model.bound_booster = _train_with(design, residual, params, BOUND_FEATURES, MONOTONE_IN_BOUNDS, BOUND_ROUNDS)
    model.training_rows["bound_correction_results"] = len(residual)


def _bound_design(config: pd.DataFrame, ttft_bound: np.ndarray, tpot_bound: np.ndarray) -> pd.DataFrame:
    with np.errstate(divide="ignore"):  # no floor (a nominal host): unbounded headroom
        ttft_headroom, tpot_headroom = (b / f for b, f in zip((ttft_bound, tpot_bound), floors_ms(config)))
    log = _log
    columns = {
        "log_ttft_headroom": np.minimum(log(ttft_headroom), UNBOUNDED_HEADROOM),
        "log_tpot_headroom": np.minimum(log(tpot_headroom), UNBOUNDED_HEADROOM),
        "log_params_active": log(config["params_active"]),
        "log_params_total": log(config["params_total"]),
        "log_gpus": log(config["gpus"]),
        "log_bandwidth": log(config["bandwidth"]),
        "log_tflops": log(config["flops"]),
        "bytes_per_param": config["bytes_per_param"],
        "log_isl": log(config["isl"]),
        "log_osl": log(config["osl"]),
        "log_kv_bytes": log(config["kv_bytes_per_token"]),
    }
    design = pd.DataFrame({name: np.asarray(columns[name], dtype="float64") for name in BOUND_FEATURES})
    return design.where(np.isfinite(design))


def train_capacity(records: pd.DataFrame, folder: Path | str, **options) -> Path:
    """`fit_capacity` and save into `folder` (capacity.json + two UBJ boosters): what `flexpredict train` calls."""
    return fit_capacity(records, **options).save(folder)


def load_beside(model_dir: Path | str) -> CapacityModel:
    """The capacity model `flexpredict train` saved in a model folder; one-line errors when it is missing (a model
    trained before the capacity function existed) or of another format."""
    folder = Path(model_dir) / FOLDER
    if not (folder / META_FILE).exists():
        raise FileNotFoundError(
            f"{model_dir}: this model has no capacity function (latency at a load, throughput "
            f"under a bound): retrain (`flexpredict train`, then --model-dir to the new folder)"
        )
    try:
        return CapacityModel.load(folder)
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder}: damaged capacity model ({exc}); retrain with `flexpredict train`") from exc


def _train(design: pd.DataFrame, y: np.ndarray, params: dict):
    return _train_with(design, y, params, FEATURES, MONOTONE_IN_LOAD, BOOST_ROUNDS)


def _predict(booster, design: pd.DataFrame) -> np.ndarray:
    return _predict_with(booster, design, FEATURES)


def _train_with(design: pd.DataFrame, y: np.ndarray, params: dict, features, monotone, rounds: int):
    """XGBoost on log ratios (robust loss, starting from the median), non-decreasing in the `monotone` features."""
    import xgboost as xgb

    constraints = "(" + ",".join("1" if f in monotone else "0" for f in features) + ")"
    data = xgb.DMatrix(design.to_numpy(dtype="float64"), label=y, feature_names=list(features))
    return xgb.train(
        {**params, "monotone_constraints": constraints, "base_score": float(np.median(y))}, data, num_boost_round=rounds
    )


def _predict_with(booster, design: pd.DataFrame, features) -> np.ndarray:
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(design.to_numpy(dtype="float64"), feature_names=list(features)))


def _p99_over_p50(points: pd.DataFrame) -> dict:
    """Median p99/p50 of each token latency where MLPerf logged both (1.0 where nothing did)."""
    ratios = {}
    for metric in ("ttft", "tpot"):
        ratio = pd.to_numeric(points[f"{metric}_p99_ms"], errors="coerce") / pd.to_numeric(
            points[f"{metric}_p50_ms"], errors="coerce"
        )
        ratio = ratio[np.isfinite(ratio) & (ratio >= 1)]
        ratios[metric] = float(ratio.median()) if len(ratio) else 1.0
    return ratios


def _speed_table(results: pd.DataFrame, log_k: pd.Series) -> dict:
    """Median log k of the newest round per (model, accelerator) and per accelerator."""
    frame = pd.DataFrame(
        {
            "model": results["model"].astype(str),
            "accelerator": results["accelerator"].astype(str),
            "round": results["round"].astype(str),
            "log_k": log_k.to_numpy(),
        }
    )
    table = {}
    for keys, prefix in ((["model", "accelerator"], None), (["accelerator"], "")):
        newest = frame[frame["round"] == frame.groupby(keys)["round"].transform("max")]
        for key, value in newest.groupby(keys)["log_k"].median().items():
            parts = key if isinstance(key, tuple) else (key,)  # the group's values: str (astype above)
            name = "|".join(map(str, parts)) if prefix is None else prefix + "|" + str(parts[0])
            table[name] = float(value)
    return table


# -- helpers ---------------------------------------------------------------------------------------------------------


def _design(config, concurrency, open_loop) -> pd.DataFrame:
    """What the corrections see: load, lengths, parallelism, model and part (physics enters as the offset). One row
    per point: `concurrency` holds one load per config row, or a rows x grid array (config values broadcast)."""
    shape = np.shape(concurrency)

    def spread(values) -> np.ndarray:
        values = np.asarray(values, dtype="float64")
        return np.broadcast_to(values.reshape(-1, *([1] * (len(shape) - 1))), shape).ravel()

    engine = config["engine"].astype(str).to_numpy()
    log = _log
    load = np.asarray(concurrency, dtype="float64")
    columns = {
        "log_concurrency": log(load).ravel(),
        "log_load_over_batch": log(
            load / config["max_batch"].to_numpy().reshape(-1, *([1] * (len(shape) - 1)))
        ).ravel(),
        "log_isl": log(config["isl"]),
        "log_osl": log(config["osl"]),
        "log_gpus": log(config["gpus"]),
        "tensor_parallel": config["tensor_parallel"],
        "expert_parallel": config["expert_parallel"],
        "attention_dp": config["attention_dp"],
        "pipeline_parallel": config["pipeline_parallel"],
        "log_params_total": log(config["params_total"]),
        "log_params_active": log(config["params_active"]),
        "log_kv_bytes": log(config["kv_bytes_per_token"]),
        "bytes_per_param": config["bytes_per_param"],
        "log_bandwidth": log(config["bandwidth"]),
        "log_tflops": log(config["flops"]),
        "log_memory": log(config["memory"]),
        "disaggregated": config["disaggregated"],
        "open_loop": np.asarray(open_loop, dtype="float64").ravel(),
        **{f"engine_{e}": (engine == e).astype("float64") for e in ENGINES},
    }
    per_point = {"log_concurrency", "log_load_over_batch", "open_loop"}
    design = np.column_stack([columns[name] if name in per_point else spread(columns[name]) for name in FEATURES])
    return pd.DataFrame(np.where(np.isfinite(design), design, np.nan), columns=list(FEATURES))


def _closed_loop(records: pd.DataFrame) -> pd.Series:
    return records["scenario"].eq("ClosedLoop") & _positive(records, "concurrency")


def _mlperf_mask(records: pd.DataFrame) -> pd.Series:
    offline = records["scenario"].eq("Offline")
    bounded = (
        records["scenario"].isin(OPEN_LOOP_SCENARIOS)
        & _positive(records, "ttft_bound_ms")
        & _positive(records, "tpot_bound_ms")
    )
    llm = records["benchmark"].map(lambda b: _is_llm(b))
    return (
        (offline | bounded)
        & llm
        & _positive(records, "throughput_per_accelerator")
        & records["valid"].fillna(False).astype(bool)
    )


def _is_llm(benchmark) -> bool:
    from .normalize import is_llm_benchmark

    return bool(is_llm_benchmark(benchmark)) if isinstance(benchmark, str) else False


def _positive(records: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(records[column], errors="coerce").gt(0).fillna(False).astype(bool)


def _one_per_result(records: pd.DataFrame) -> pd.DataFrame:
    """One row per MLPerf result (the -99/-99.9 accuracy twins and repeated logs dropped); sweep rows all kept."""
    mlperf = records["scenario"].isin(MLPERF_SCENARIOS)
    twins = (
        records.duplicated(subset=["round", "submitter", "system_id", "model", "scenario", "accelerators_total"])
        & mlperf
    )
    return records.loc[~twins & ~records["record_id"].duplicated()]


def _system_keys(records: pd.DataFrame) -> pd.Series:
    return (
        records["submitter"].astype(str)
        + "|"
        + records["system_id"].astype(str)
        + "|"
        + records["model"].astype(str)
        + "|"
        + records["accelerators_total"].astype(str)
    )


def _load(records, concurrency, qps, tokens_per_s) -> tuple[str, np.ndarray]:
    given = [
        (name, value)
        for name, value in (("concurrency", concurrency), ("qps", qps), ("tokens_per_s", tokens_per_s))
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError("give one load: concurrency, qps or tokens_per_s")
    if not given:
        for name, column in (("concurrency", "concurrency"), ("qps", "target_qps")):
            values = pd.to_numeric(records[column], errors="coerce") if column in records else None
            if values is not None and values.notna().all():
                given = [(name, values.to_numpy(float))]
                break
        else:
            raise ValueError(
                "no load: give concurrency, qps or tokens_per_s, or records with a 'concurrency' or"
                " 'target_qps' value in every row"
            )
    name, value = given[0]
    values = _per_row(value, len(records), np.nan)
    if not (np.isfinite(values) & (values > 0)).all():
        raise ValueError(f"{name}: expected a positive number for every record")
    return name, values


def _per_row(value, n: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default)
    values = np.asarray(value, dtype="float64")
    return np.full(n, float(values)) if values.ndim == 0 else values.astype("float64").copy()


def _scaled(frame: pd.DataFrame, factor: np.ndarray, ttft_floor: np.ndarray, tpot_floor: np.ndarray) -> pd.DataFrame:
    """Latencies times `factor`, never below the physical floors (new frame)."""
    out = frame.copy()
    for column in out.columns:
        floor = ttft_floor if column.startswith("pred_ttft") else tpot_floor
        out[column] = np.maximum(out[column].to_numpy() * factor, floor)
    return out


def _tokens_per_s(concurrency, osl, frame: pd.DataFrame) -> np.ndarray:
    """Little's law: requests in flight x output tokens / time a request spends in the system."""
    seconds = (frame["pred_ttft_p50_ms"].to_numpy() + (osl - 1) * frame["pred_tpot_p50_ms"].to_numpy()) / 1e3
    return concurrency * osl / seconds


def _capacity(curve: dict, gpus: np.ndarray, offsets: dict, ttft_bound: np.ndarray, tpot_bound: np.ndarray) -> dict:
    """Per-accelerator tokens/s where the p99 curve (p50 curve + each offset) meets the bounds, per offset name,
    and the concurrency there (of the first offset)."""
    per_gpu = np.maximum.accumulate(curve["tokens_per_s"] / gpus[:, None], axis=1)
    result = {}
    for name, offset in offsets.items():
        # the binding margin: log(p99 / bound) of whichever latency is closer to (or over) its bound
        with np.errstate(invalid="ignore"):
            margin = np.maximum(
                curve["log_ttft_p50"] + offset["ttft"] - np.log(ttft_bound)[:, None],
                curve["log_tpot_p50"] + offset["tpot"] - np.log(tpot_bound)[:, None],
            )
        margin = np.fmax.accumulate(margin, axis=1)  # feasible loads form a prefix: monotone in the bounds
        result[name], at = _last_feasible(margin, np.log(per_gpu))
        result.setdefault("concurrency", at)
    return result


def _last_feasible(margin: np.ndarray, log_value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the value where the (non-decreasing) margin crosses zero, log-interpolated between grid points;
    0 where the first point already misses, the last point's value where none does. Also the concurrency there."""
    feasible = margin <= 0
    count = feasible.sum(axis=1)
    value, at = np.zeros(len(margin)), np.zeros(len(margin))
    log_grid = np.log(GRID)
    for i, last in enumerate(count - 1):
        if np.isnan(margin[i]).all() or np.isnan(log_value[i]).all():
            value[i] = at[i] = np.nan
            continue
        if last < 0:
            continue
        if last == margin.shape[1] - 1:
            value[i], at[i] = np.exp(log_value[i, last]), GRID[last]
            continue
        m0, m1 = margin[i, last], margin[i, last + 1]
        share = 0.0 if m1 <= m0 else -m0 / (m1 - m0)
        value[i] = np.exp(log_value[i, last] + share * (log_value[i, last + 1] - log_value[i, last]))
        at[i] = np.exp(log_grid[last] + share * (log_grid[last + 1] - log_grid[last]))
    return value, at


def _log(values) -> np.ndarray:
    """log of positive values; NaN (not a warning) for zero, negative or missing ones."""
    values = np.asarray(values, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def _finite_or_none(value: float):
    return float(value) if np.isfinite(value) else None


def _conformal(residuals: np.ndarray, level: float, fallback: float = np.nan) -> float:
    residuals = residuals[np.isfinite(residuals)]
    if len(residuals) < 10:
        return float(fallback)
    rank = min(int(np.ceil((len(residuals) + 1) * level)), len(residuals))
    return float(np.sort(residuals)[rank - 1])
