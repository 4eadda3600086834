"""Baseline: the physical roofline bound times the median efficiency seen for the same kind of workload."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features import RecordFeaturizer
from .base import Predictor, register


@register
class RooflinePredictor(Predictor):
    """log(target) = log(roofline) + median log-efficiency of the (model, scenario) group, falling back to the
    model kind, then to all rows. Only meaningful for throughput; other targets get no prediction (NaN)."""

    name = "roofline"

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        frame = self._frame(records)
        frame["efficiency"] = log_y - frame["log_roofline"]
        usable = frame[np.isfinite(frame["efficiency"])]
        self.efficiency_ = {
            "model_scenario": usable.groupby(["model", "scenario"])["efficiency"].median().to_dict(),
            "kind": usable.groupby("model_kind")["efficiency"].median().to_dict(),
            "all": float(usable["efficiency"].median()) if len(usable) else float("nan"),
        }

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        frame = self._frame(records)
        eff = self.efficiency_
        out = []
        for model, scenario, kind, log_roof in frame[["model", "scenario", "model_kind", "log_roofline"]].itertuples(
            index=False
        ):
            shift = eff["model_scenario"].get((model, scenario), eff["kind"].get(kind, eff["all"]))
            out.append(log_roof + shift)
        return np.asarray(out, dtype="float64")

    @staticmethod
    def _frame(records: pd.DataFrame) -> pd.DataFrame:
        frame = RecordFeaturizer.complete(records)
        roof = pd.to_numeric(frame["roofline_per_accelerator"], errors="coerce")
        return pd.DataFrame(
            {
                "model": frame["model"].astype(str),
                "scenario": frame["scenario"].astype(str),
                "model_kind": frame["model_kind"].astype(str),
                "log_roofline": np.log(roof.where(roof > 0)),
            },
            index=frame.index,
        )

    def _state(self, folder) -> dict:
        eff = self.efficiency_
        return {
            "model_scenario": [[m, s, v] for (m, s), v in eff["model_scenario"].items()],
            "kind": eff["kind"],
            "all": eff["all"],
        }

    def _restore(self, state: dict, folder) -> None:
        self.efficiency_ = {
            "model_scenario": {(m, s): v for m, s, v in state["model_scenario"]},
            "kind": state["kind"],
            "all": state["all"],
        }
