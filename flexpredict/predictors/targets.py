"""What the predictors predict: one `Target` per metric, with the rows it is learned from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Target:
    name: str  # the output is pred_<name>
    column: str  # the record column holding the measured value
    unit: str
    scenarios: tuple[str, ...] | None = None  # learned only from these scenarios (None: all)
    llm: bool | None = None  # True: LLM rows only; False: non-LLM only; None: both
    per_accelerator: bool = False  # learn value / accelerators_total, predict times it back
    roofline_exponent: float = 0.0  # value ~ bound^exponent: +1 for throughput, -1 for latency and energy
    # the completed-record column holding log of the physical bound the value scales with: the prefill-aware
    # roofline for speed; TDP + host share for power (a new part draws a similar share of it, not similar watts)
    physics_column: str = "log_work_bound"
    # a physical lower bound on the value (completed records in, NaN where unknown): a prediction below it is
    # impossible, so predictions and intervals are raised to it
    floor: Callable[[pd.DataFrame], np.ndarray] | None = None
    # no prediction for a part the target never measured when its physics column is unknown: nothing then says
    # how the part scales (power with no TDP in the catalog would be a guess from other parts' watts)
    physics_required: bool = False

    def values(self, records: pd.DataFrame) -> pd.Series:
        """Measured values of this target (NaN where the record has none)."""
        values = pd.to_numeric(records[self.column], errors="coerce").astype("float64")
        return values.where(values > 0)

    def mask(self, records: pd.DataFrame) -> pd.Series:
        """Rows this target is defined for (whether measured or not)."""
        mask = pd.Series(True, index=records.index)
        if self.scenarios is not None:
            mask &= records["scenario"].isin(self.scenarios)
        if self.llm is not None:
            from ..normalize import is_llm_benchmark

            llm = records["benchmark"].map(lambda b: is_llm_benchmark(b) if isinstance(b, str) else False)
            mask &= llm if self.llm else ~llm
        return mask

    def unknowable(self, records: pd.DataFrame, measured_accelerators) -> np.ndarray:
        """Rows this target cannot predict (completed records in): `physics_required`, the physics column unknown
        and the accelerator not among `measured_accelerators`."""
        if not self.physics_required:
            return np.zeros(len(records), dtype=bool)
        physics = pd.to_numeric(records[self.physics_column], errors="coerce").to_numpy(dtype="float64")
        measured = records["accelerator"].astype("object").isin(set(measured_accelerators)).to_numpy()
        return ~np.isfinite(physics) & ~measured

    def scale(self, records: pd.DataFrame) -> np.ndarray:
        """Factor between what the model learns and the reported value (accelerators for per-accelerator)."""
        if not self.per_accelerator:
            return np.ones(len(records))
        total = pd.to_numeric(records["accelerators_total"], errors="coerce").astype("float64").to_numpy()
        return np.where(total > 0, total, np.nan)


def decode_step_ms(records: pd.DataFrame) -> np.ndarray:
    """The shortest an LLM forward pass can take: every accelerator streams its share of the weights from memory
    once (GB / (TB/s) = ms). A token, the first one included, cannot come faster."""
    weights = pd.to_numeric(records["weights_gb"], errors="coerce").to_numpy(dtype="float64")
    bandwidth = pd.to_numeric(records["total_bandwidth_tbs"], errors="coerce").to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bandwidth > 0, weights / bandwidth, np.nan)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "throughput_per_accelerator",
            "throughput_per_accelerator",
            "tokens/s (LLM) or samples/s per accelerator",
            scenarios=("Offline", "Server", "Interactive"),
            roofline_exponent=1.0,
        ),
        Target(
            "ttft_p99_ms",
            "ttft_p99_ms",
            "ms",
            scenarios=("Server", "Interactive"),
            llm=True,
            roofline_exponent=-1.0,
            floor=decode_step_ms,
        ),
        Target(
            "tpot_p99_ms",
            "tpot_p99_ms",
            "ms",
            scenarios=("Server", "Interactive"),
            llm=True,
            roofline_exponent=-1.0,
            floor=decode_step_ms,
        ),
        Target(
            "latency_p99_ms",
            "latency_p99_ms",
            "ms",
            scenarios=("SingleStream", "MultiStream", "Server"),
            llm=False,
            roofline_exponent=-1.0,
        ),
        Target(
            "latency_p90_ms", "latency_p90_ms", "ms", scenarios=("SingleStream",), llm=False, roofline_exponent=-1.0
        ),
        Target(
            "power_w",
            "power_w",
            "W (whole system)",
            per_accelerator=True,
            roofline_exponent=1.0,
            physics_column="log_power_ceiling",
            physics_required=True,
        ),
        Target("energy_j_per_token", "energy_j_per_token", "J/token", llm=True, roofline_exponent=-1.0),
        Target("energy_j_per_sample", "energy_j_per_sample", "J/sample", llm=False, roofline_exponent=-1.0),
    )
}


def make_predictor(name: str, target: Target, params: dict | None = None):
    """A predictor for a target: predictors that use the roofline learn in its direction for that target."""
    import inspect

    from .base import PREDICTORS

    cls = PREDICTORS[name]
    kwargs = dict(params or {})
    parameters = inspect.signature(cls.__init__).parameters
    if "roofline_exponent" in parameters:
        kwargs.setdefault("roofline_exponent", target.roofline_exponent)
    if "physics_column" in parameters:
        kwargs.setdefault("physics_column", target.physics_column)
    return cls(**kwargs)
