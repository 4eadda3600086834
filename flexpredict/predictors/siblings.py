"""Baselines for what nobody measured: the nearest measured sibling, carried over through the roofline.

`sibling-roofline`: the same model, scenario and precision on the nearest measured accelerator (same family, else
same vendor, else closest memory bandwidth), scaled by the ratio of the two parts' work bounds. `model-roofline`: the
same accelerator and scenario with the nearest measured model (same kind and dense/MoE, closest active parameters),
scaled likewise. A configuration that was measured itself is its own nearest sibling (the lookup median). They make
the bar visible: a learned transfer that cannot beat "the same thing on the closest part, scaled by physics" is not
worth its complexity.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd

from ..features import RecordFeaturizer
from .base import Predictor, register

_FAR = 1e6  # distance of a sibling that differs in kind: only taken when nothing closer exists


class NearestSiblingPredictor(Predictor):
    """log(target) = exponent x log(work bound) + the measured efficiency of the nearest sibling configuration.

    Siblings share `fixed` columns (first with precision, then without) and differ in `varied`; `distance` orders
    them. Rows with no sibling fall back to the median efficiency of their model kind."""

    name: ClassVar[str]
    fixed: ClassVar[tuple[str, ...]]
    varied: ClassVar[str]

    def __init__(
        self,
        roofline_exponent: float = 1.0,
        physics_column: str = "log_work_bound",
        calibration_folds: int = 5,
        transfer_folds: int = 2,
        calibration_jobs: int = 2,
        random_state: int = 0,
        interval_level: float = 0.9,
    ):
        super().__init__(
            calibration_folds=calibration_folds,
            transfer_folds=transfer_folds,
            calibration_jobs=calibration_jobs,
            random_state=random_state,
            interval_level=interval_level,
        )
        self.roofline_exponent = roofline_exponent
        self.physics_column = physics_column

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        frame = self._frame(records)
        frame["efficiency"] = log_y - frame["offset"].to_numpy()
        frame = frame[np.isfinite(frame["efficiency"])]
        columns = [*self.fixed, "precision", self.varied]
        table = (
            frame.groupby(columns, dropna=False)
            .agg(efficiency=("efficiency", "median"), **{f: (f, "first") for f in self.descriptors})
            .reset_index()
        )
        self.siblings_ = table.to_dict("records")
        self.kind_efficiency_ = frame.groupby("model_kind")["efficiency"].median().to_dict()
        self.all_efficiency_ = float(frame["efficiency"].median()) if len(frame) else float("nan")
        self._pools: dict[tuple, dict[str, np.ndarray]] | None = None

    def _sibling_pools(self) -> dict[tuple, dict[str, np.ndarray]]:
        """The measured siblings by their `fixed` values, as arrays, built on first use: a prediction looks up
        many rows (a per-row pandas filter was the slowest step of a first-time `recommend`), and a loaded model
        whose sibling predictor is never asked should not pay for it."""
        if self._pools is None:
            table = pd.DataFrame(self.siblings_)
            groups = () if table.empty else table.groupby(list(self.fixed), dropna=False)
            self._pools = {key: {c: group[c].to_numpy() for c in group.columns} for key, group in groups}
        return self._pools

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        return self.nearest(records)[0]

    def nearest(self, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(log estimate, distance to the sibling it came from) per record; the distance is infinite where no
        sibling was measured and the model kind's median efficiency stands in."""
        frame = self._frame(records)
        # rows that differ only in what the offset reads (counts, lengths) share a sibling: look each up once
        descriptors = frame.drop(columns="offset")
        unique = descriptors.drop_duplicates()
        position_of = pd.Series(np.arange(len(unique)), index=pd.MultiIndex.from_frame(unique))
        rows = position_of.reindex(pd.MultiIndex.from_frame(descriptors)).to_numpy()
        efficiency, distance = self._efficiencies(unique)
        return efficiency[rows] + frame["offset"].to_numpy(), distance[rows]

    def _efficiencies(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The nearest sibling's measured efficiency and its distance per (distinct) row."""
        out, far = np.full(len(frame), np.nan), np.full(len(frame), np.inf)
        pools = self._sibling_pools()
        for position, row in enumerate(frame.itertuples(index=False)):
            candidates = pools.get(tuple(getattr(row, c) for c in self.fixed))
            efficiency = self.kind_efficiency_.get(row.model_kind, self.all_efficiency_)
            if candidates is not None:
                same = candidates["precision"] == row.precision
                pool = {c: v[same] for c, v in candidates.items()} if same.any() else candidates
                distance = self.distance(pool, row)
                nearest = int(np.argmin(distance))
                efficiency, far[position] = float(pool["efficiency"][nearest]), float(distance[nearest])
            out[position] = efficiency
        return out, far

    def _prepare(self, records: pd.DataFrame) -> pd.DataFrame:
        """Complete the records (catalog ids, physics) once, not once per calibration fold."""
        return RecordFeaturizer.complete(records)

    descriptors: ClassVar[tuple[str, ...]] = ()  # what `distance` reads of a sibling

    @staticmethod
    @abstractmethod
    def distance(pool: dict[str, np.ndarray], row) -> np.ndarray:
        """How far each sibling in `pool` (descriptor arrays) is from `row` (lower is nearer)."""

    def _frame(self, records: pd.DataFrame) -> pd.DataFrame:
        frame = RecordFeaturizer.complete(records)
        out = pd.DataFrame(index=frame.index)
        for column in (
            "model",
            "accelerator",
            "scenario",
            "precision",
            "model_kind",
            "acc_family",
            "accelerator_vendor",
        ):
            out[column] = frame[column].astype("object").where(frame[column].notna(), "?").astype(str)
        for column in (
            "acc_bandwidth_tbs",
            "acc_memory_gb",
            "model_params_active_b",
            "model_params_total_b",
            "model_moe",
        ):
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        # exponent x log physical bound: the physics part of log(target), as the XGBoost predictor's offset
        out["offset"] = self.roofline_exponent * pd.to_numeric(frame[self.physics_column], errors="coerce").astype(
            "float64"
        )
        return out

    def _state(self, folder) -> dict:
        return {
            "siblings": self.siblings_,
            "kind_efficiency": self.kind_efficiency_,
            "all_efficiency": self.all_efficiency_,
        }

    def _restore(self, state: dict, folder) -> None:
        self.siblings_, self.kind_efficiency_ = state["siblings"], state["kind_efficiency"]
        self.all_efficiency_ = state["all_efficiency"]
        self._pools = None


def _log_gap(pool: dict[str, np.ndarray], column: str, value) -> np.ndarray:
    """|log ratio| of a descriptor; a missing value counts as one e-fold apart."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(np.log(pool[column].astype("float64") / float(value)))
    return np.where(np.isfinite(gap), gap, 1.0)


@register
class SiblingRooflinePredictor(NearestSiblingPredictor):
    """The same model, scenario (and precision) on the nearest measured accelerator, scaled by the roofline."""

    name = "sibling-roofline"
    fixed = ("model", "scenario")
    varied = "accelerator"
    descriptors = ("acc_family", "accelerator_vendor", "acc_bandwidth_tbs", "acc_memory_gb")

    @staticmethod
    def distance(pool: dict[str, np.ndarray], row) -> np.ndarray:
        return (
            (pool["acc_family"] != row.acc_family) * 2.0
            + (pool["accelerator_vendor"] != row.accelerator_vendor) * 10.0
            + _log_gap(pool, "acc_bandwidth_tbs", row.acc_bandwidth_tbs)
            + 0.5 * _log_gap(pool, "acc_memory_gb", row.acc_memory_gb)
            + (pool["accelerator"] != row.accelerator) * 0.01
        )


@register
class ModelRooflinePredictor(NearestSiblingPredictor):
    """The same accelerator and scenario (and precision) with the nearest measured model, scaled by the roofline."""

    name = "model-roofline"
    fixed = ("accelerator", "scenario")
    varied = "model"
    descriptors = ("model_kind", "model_moe", "model_params_active_b", "model_params_total_b")

    @staticmethod
    def distance(pool: dict[str, np.ndarray], row) -> np.ndarray:
        return (
            (pool["model_kind"] != row.model_kind) * _FAR
            + (np.nan_to_num(pool["model_moe"].astype("float64")) != np.nan_to_num(row.model_moe)) * 2.0
            + _log_gap(pool, "model_params_active_b", row.model_params_active_b)
            + 0.5 * _log_gap(pool, "model_params_total_b", row.model_params_total_b)
            + (pool["model"] != row.model) * 0.01
        )
