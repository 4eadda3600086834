"""The main predictor: measured priors where they exist, gradient-boosted trees (XGBoost) where they do not.

A configuration whose model, accelerator and scenario were measured is predicted from those measurements: the
median of the newest round (same precision and engine when available), moved on by the per-round trend of tuned
submissions. Trees learning corrections on top of such a prior only fit submitter noise (we measured it: they made
forward-in-time errors worse), so they are not used there.

A configuration nobody measured starts from a coarser prior (the same model and accelerator in another scenario,
or the efficiency of the same model on other accelerators, or of other models on this accelerator, scaled by the
roofline) and XGBoost learns the correction from physics, software and identity features. Its training rows see
exactly that situation: each row's own (model, accelerator, scenario) measurements are left out of its priors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..features import RecordFeaturizer
from .base import Predictor, register
from .priors import LEVELS, PriorTables, keys, level_name

BOOSTER_FILE = "booster.ubj"
MEASURED_LEVELS = 3  # LEVELS[:3] fix model, accelerator and scenario: the configuration was measured
# what the transfer model's training rows pretend was never measured
UNMEASURED = (("model", "accelerator", "scenario"), ("model", "accelerator"), ("model",), ("accelerator",))


@register
class XGBoostPredictor(Predictor):
    name = "xgboost"

    def __init__(self, n_estimators: int = 150, max_depth: int = 4, learning_rate: float = 0.1,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 2.0,
                 reg_lambda: float = 1.0, roofline_exponent: float = 1.0, use_identity: bool = True,
                 objective: str = "reg:pseudohubererror", huber_slope: float = 0.1, max_correction: float = 3.0,
                 n_jobs: int = 2, calibration_folds: int = 3, transfer_folds: int = 2, calibration_jobs: int = 2,
                 random_state: int = 0, interval_level: float = 0.9):
        super().__init__(calibration_folds=calibration_folds, transfer_folds=transfer_folds,
                         calibration_jobs=calibration_jobs, random_state=random_state,
                         interval_level=interval_level)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.roofline_exponent = roofline_exponent
        self.use_identity = use_identity
        self.objective = objective
        self.huber_slope = huber_slope
        self.max_correction = max_correction
        self.n_jobs = n_jobs

    # -- fit / predict -----------------------------------------------------------------------------------------

    def _prepare(self, records: pd.DataFrame) -> pd.DataFrame:
        """Complete the records (catalog ids, physics) once, not once per calibration fold."""
        return RecordFeaturizer.complete(records)

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        import xgboost as xgb

        self.featurizer_ = RecordFeaturizer(use_identity=self.use_identity)
        frame = self.featurizer_.complete(records)
        self.featurizer_.fit_frame(frame)
        offset = self._offset(frame)
        self.priors_ = PriorTables.fit(frame, log_y, offset)
        self.global_mean_ = float(np.mean(log_y))
        gap = log_y - offset  # how far a typical configuration sits from its roofline, in this target's direction
        self.roofline_shift_ = float(np.nanmedian(gap)) if np.isfinite(gap).any() else 0.0
        matrix, margin = self.transfer_design(frame, log_y)
        data = xgb.DMatrix(matrix, label=np.tile(log_y, len(UNMEASURED)), base_margin=margin,
                           enable_categorical=True)
        self.booster_ = xgb.train(self._xgb_params(), data, num_boost_round=self.n_estimators)

    def transfer_design(self, records: pd.DataFrame, log_y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """(features, base margin) of the rows the trees learn from, as they are used: each record once with its own
        configuration unmeasured, once with its model+accelerator pair unmeasured, once as a new model and once as a
        new accelerator. Global SHAP belongs on these rows: the trees never touch a measured configuration."""
        frame = self.featurizer_.complete(records)
        matrices, margins = [], []
        for hidden in UNMEASURED:
            matrix, margin, _ = self._design(frame, log_y=log_y, leave_out=keys(frame, hidden).to_numpy())
            if len(hidden) == 1 and hidden[0] in matrix:  # a new model/accelerator has no known identity either
                matrix[hidden[0]] = pd.Categorical([None] * len(matrix), categories=matrix[hidden[0]].cat.categories)
            matrices.append(matrix)
            margins.append(margin)
        return pd.concat(matrices, ignore_index=True), np.concatenate(margins)

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        matrix, margin, measured = self._design(self.featurizer_.complete(records))
        out = margin.copy()
        if (~measured).any():
            rows = matrix.loc[~measured]
            corrected = self.booster_.predict(xgb.DMatrix(rows, base_margin=margin[~measured],
                                                          enable_categorical=True))
            # trees extrapolate badly far from their data: they may move a transfer prior by a bounded factor
            limit = np.log(self.max_correction)
            out[~measured] = np.clip(corrected, margin[~measured] - limit, margin[~measured] + limit)
        return out

    def contributions(self, records: pd.DataFrame) -> pd.DataFrame:
        """Contributions to log(target): `prior` is the starting point (measured median, or the roofline-scaled
        efficiency of related measurements); the feature columns are exact TreeSHAP values of the trees (zero for
        measured configurations, which the trees do not touch). Row sums equal the log predictions."""
        return self.explained(records)[0]

    def explained(self, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(`contributions`, `feature_matrix`) from one featurisation."""
        import xgboost as xgb

        matrix, margin, measured = self._design(self.featurizer_.complete(records))
        values = self.booster_.predict(xgb.DMatrix(matrix, base_margin=margin, enable_categorical=True),
                                       pred_contribs=True)
        values[:, -1] -= margin  # XGBoost's bias includes the base margin: keep only the trees' part in `bias`
        frame = pd.DataFrame(values, columns=list(matrix.columns) + ["bias"], index=records.index)
        frame.loc[measured, :] = 0.0
        frame["prior"] = margin
        frame["measured"] = measured
        return frame, matrix

    def feature_matrix(self, records: pd.DataFrame) -> pd.DataFrame:
        return self._design(self.featurizer_.complete(records))[0]

    # -- design ------------------------------------------------------------------------------------------------

    def _design(self, frame: pd.DataFrame, *, log_y: np.ndarray | None = None,
                leave_out: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(features, base margin, measured?) of completed records. For training rows (log_y), priors leave out
        the `leave_out` group of each row and any later round."""
        base = self.featurizer_.matrix(frame)
        offset = self._offset(frame)
        priors = self.priors_.features(frame, offset, log_y, leave_out)
        fallback = offset + self.roofline_shift_
        fallback = np.where(np.isfinite(fallback), fallback, self.global_mean_)
        margin = self.priors_.margin(priors, offset, fallback)
        measured = np.zeros(len(frame), dtype=bool)
        for level, _ in LEVELS[:MEASURED_LEVELS]:
            measured |= np.isfinite(priors["latest_" + level_name(level)].to_numpy())
        return pd.concat([base, priors], axis=1), margin, measured

    def _offset(self, frame: pd.DataFrame) -> np.ndarray:
        """exponent x log work bound (the prefill-aware roofline): the physics part of log(target); NaN where unknown
        or not used."""
        if self.roofline_exponent == 0:
            return np.full(len(frame), np.nan)
        log_bound = pd.to_numeric(frame["log_work_bound"], errors="coerce").to_numpy(dtype="float64")
        return self.roofline_exponent * log_bound

    def _xgb_params(self) -> dict:
        return {"objective": self.objective, "huber_slope": self.huber_slope, "max_depth": self.max_depth,
                "eta": self.learning_rate, "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda, "tree_method": "hist",
                "nthread": self.n_jobs, "seed": self.random_state, "max_cat_to_onehot": 1, "max_bin": 64}

    # -- persistence -------------------------------------------------------------------------------------------

    def _state(self, folder: Path) -> dict:
        self.booster_.save_model(folder / BOOSTER_FILE)
        return {"booster": BOOSTER_FILE, "categories": self.featurizer_.categories_,
                "features": list(self.featurizer_.feature_names_out_), "priors": self.priors_.tables,
                "trend": self.priors_.trend, "newest_round": self.priors_.newest_round,
                "global_mean": self.global_mean_, "roofline_shift": self.roofline_shift_}

    def _restore(self, state: dict, folder: Path) -> None:
        import xgboost as xgb

        self.featurizer_ = RecordFeaturizer(use_identity=self.use_identity)
        self.featurizer_.categories_ = state["categories"]
        self.featurizer_.feature_names_out_ = np.array(state["features"], dtype=object)
        self.booster_ = xgb.Booster()
        self.booster_.load_model(folder / state["booster"])
        self.priors_ = PriorTables(state["priors"], state["trend"], state["newest_round"])
        self.global_mean_, self.roofline_shift_ = state["global_mean"], state["roofline_shift"]
