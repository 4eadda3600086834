"""The campaign surrogate's `knobs` predictor: trees on a search space's parameters (engine knobs) alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .base import Predictor, register


@register
class KnobPredictor(Predictor):
    """Gradient-boosted trees on the search-space parameters alone. The `xgboost` predictor keys its measured priors
    on model, accelerator, scenario, precision and engine, so every engine-knob setting of one measured deployment
    gets the same prediction; these trees see the knobs."""

    name = "knobs"

    def __init__(
        self,
        columns: tuple[str, ...] = (),
        n_estimators: int = 200,
        max_depth: int = 3,
        learning_rate: float = 0.1,
        calibration_folds: int = 3,
        transfer_folds: int = 0,
        random_state: int = 0,
    ):
        super().__init__(calibration_folds=calibration_folds, transfer_folds=transfer_folds, random_state=random_state)
        self.columns = tuple(columns)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        import xgboost as xgb

        self.levels_ = {}
        for column in self.columns:
            values = records[column]
            if pd.to_numeric(values, errors="coerce").notna().sum() < values.notna().sum():
                self.levels_[column] = sorted({str(v) for v in values.dropna()})
        params = {
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "min_child_weight": 1.0,
            "nthread": 1,
            "seed": self.random_state,
            "objective": "reg:squarederror",
        }
        self.booster_ = xgb.train(
            params, xgb.DMatrix(self._matrix(records), label=log_y), num_boost_round=self.n_estimators
        )

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        return self.booster_.predict(xgb.DMatrix(self._matrix(records)))

    def _matrix(self, records: pd.DataFrame) -> np.ndarray:
        """Numbers as their logarithm (knobs act multiplicatively), categories as their index among those seen."""
        out = []
        for column in self.columns:
            values = records[column] if column in records else pd.Series(np.nan, index=records.index)
            if column in self.levels_:
                index = {level: i for i, level in enumerate(self.levels_[column])}
                out.append(np.array([index.get(str(v), np.nan) for v in values], dtype="float64"))
            else:
                numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
                out.append(np.where(numbers > 0, np.log(np.where(numbers > 0, numbers, 1.0)), numbers))
        return np.column_stack(out) if out else np.zeros((len(records), 0))

    def _state(self, folder: Path) -> dict:
        self.booster_.save_model(folder / "booster.ubj")
        return {"booster": "booster.ubj", "levels": self.levels_}

    def _restore(self, state: dict, folder: Path) -> None:
        import xgboost as xgb

        self.booster_ = xgb.Booster()
        self.booster_.load_model(folder / state["booster"])
        self.levels_ = state["levels"]
