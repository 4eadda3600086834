"""Baseline: the public OpenMLPerf recipe, so our gain is always measured against it.

XGBoost with 100 trees and default settings on the raw OpenMLPerf columns (label-encoded strings: accelerator
name, model, weight types, framework, host CPU; counts and memory), predicting the system result. It never sees
the scenario and matches accelerators by exact string, as published.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .base import Predictor, register

RAW_TEXT = ("accelerator_raw", "benchmark", "precision", "framework_raw", "host_cpu", "system_type")
RAW_NUMBERS = (
    "accelerators_per_node",
    "accelerators_total",
    "accelerator_memory_gb",
    "host_cpu_cores",
    "host_cpus_per_node",
    "host_memory_gb",
    "nodes",
)
BOOSTER_FILE = "booster.ubj"


@register
class PublicRecipePredictor(Predictor):
    name = "public-recipe"

    def __init__(
        self,
        n_estimators: int = 100,
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
        self.n_estimators = n_estimators

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        import xgboost as xgb

        self.codes_ = {
            c: {v: i for i, v in enumerate(sorted(records[c].dropna().astype(str).unique()))} for c in RAW_TEXT
        }
        total = self._total(records)
        # the recipe predicts the whole-system result; we compare per accelerator like every other predictor
        system = np.exp(log_y) * total
        self.booster_ = xgb.train(
            {"nthread": 2, "seed": self.random_state},
            xgb.DMatrix(self._matrix(records), label=system),
            num_boost_round=self.n_estimators,
        )

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        system = self.booster_.predict(xgb.DMatrix(self._matrix(records)))
        per_accelerator = system / self._total(records)
        return np.log(np.where(per_accelerator > 0, per_accelerator, np.nan))

    def _matrix(self, records: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=records.index)
        for column in RAW_TEXT:  # exact strings: an unseen spelling is an unknown code
            codes = self.codes_[column]
            out[column] = [codes.get(str(v), -1) if not pd.isna(v) else -1 for v in records[column]]
        for column in RAW_NUMBERS:
            out[column] = pd.to_numeric(records[column], errors="coerce").astype("float64")
        return out.astype("float64")

    @staticmethod
    def _total(records: pd.DataFrame) -> np.ndarray:
        total = pd.to_numeric(records["accelerators_total"], errors="coerce").astype("float64").to_numpy()
        return np.where(total > 0, total, 1.0)

    def _state(self, folder: Path) -> dict:
        self.booster_.save_model(folder / BOOSTER_FILE)
        return {"booster": BOOSTER_FILE, "codes": self.codes_}

    def _restore(self, state: dict, folder: Path) -> None:
        import xgboost as xgb

        self.codes_ = state["codes"]
        self.booster_ = xgb.Booster()
        self.booster_.load_model(folder / state["booster"])
