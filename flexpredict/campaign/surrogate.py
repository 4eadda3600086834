"""The campaign's surrogate: one predictor per metric (the objective's and each SLO's), refitted after every batch.

Predictions carry the predictors' calibrated 90 % intervals: the interval width is the uncertainty the acquisitions
spend measurements on, and the intervals of the SLO metrics give the probability that a configuration is feasible.
Both training rows and candidates are seen as known before measuring (`known_before`), so no measured-only column
(the QPS a submitter ran at, which is close to the result) leaks into a prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..predictors.base import Predictor, register
from ..predictors.targets import TARGETS, make_predictor
from ..schema import COLUMNS, conform
from .definition import Campaign

Z90 = 1.6448536269514722  # the 90 % interval is +-1.645 sigma of a log-normal
MIN_ROWS = 2
LIGHT_XGBOOST = {"calibration_folds": 3, "transfer_folds": 0, "n_estimators": 100, "n_jobs": 1}
"""Refit in about a second: 3 calibration folds, no transfer folds, 100 trees, one thread (with two threads on a
busy 2-core machine XGBoost ran 15x slower)."""
_KNOWN_GROUPS = ("hardware", "software")
_KNOWN_IDENTITY = ("record_id", "run_group", "division", "system_type", "benchmark", "model", "scenario")


def param_column(name: str) -> str:
    return f"param_{name}"


def known_before(records: pd.DataFrame, parameters: tuple[str, ...]) -> pd.DataFrame:
    """Records reduced to what is known before measuring: identity, hardware, software, the parameters."""
    keep = [c.name for c in COLUMNS if c.group in _KNOWN_GROUPS or c.name in _KNOWN_IDENTITY or c.name in parameters]
    frame = conform(records[[c for c in keep if c in records.columns]])
    extra = [param_column(p) for p in parameters if param_column(p) in records.columns]
    return pd.concat([frame, records[extra].reset_index(drop=True)], axis=1)


@register
class KnobPredictor(Predictor):
    """Gradient-boosted trees on the search-space parameters alone. The `xgboost` predictor keys its measured priors
    on model, accelerator, scenario, precision and engine, so every engine-knob setting of one measured deployment
    gets the same prediction; these trees see the knobs."""

    name = "knobs"

    def __init__(self, columns: tuple[str, ...] = (), n_estimators: int = 200, max_depth: int = 3,
                 learning_rate: float = 0.1, calibration_folds: int = 3, transfer_folds: int = 0,
                 random_state: int = 0):
        super().__init__(calibration_folds=calibration_folds, transfer_folds=transfer_folds,
                         random_state=random_state)
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
        params = {"max_depth": self.max_depth, "eta": self.learning_rate, "min_child_weight": 1.0,
                  "nthread": 1, "seed": self.random_state, "objective": "reg:squarederror"}
        self.booster_ = xgb.train(params, xgb.DMatrix(self._matrix(records), label=log_y),
                                  num_boost_round=self.n_estimators)

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


class Surrogate:
    """Predictors of the campaign's metrics, fitted on the base records plus everything the campaign measured."""

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        self.predictors: dict[str, Predictor] = {}
        self.rows: dict[str, int] = {}

    def fit(self, records: pd.DataFrame) -> Surrogate:
        """Fit every metric that has at least MIN_ROWS measured rows (one per run group and value)."""
        params = self.campaign.parameter_names
        view = known_before(records, params)
        for metric in self.campaign.metrics():
            values = pd.to_numeric(records[metric], errors="coerce").astype("float64").to_numpy()
            keep = np.isfinite(values) & (values > 0)
            rows = view.loc[keep].assign(_y=values[keep]).drop_duplicates(["run_group", "_y"])
            self.rows[metric] = len(rows)
            if len(rows) < MIN_ROWS:
                self.predictors.pop(metric, None)
                continue
            self.predictors[metric] = self._predictor(metric).fit(rows.drop(columns="_y").reset_index(drop=True),
                                                                  rows["_y"].to_numpy())
        return self

    def predict(self, records: pd.DataFrame) -> pd.DataFrame:
        """<metric>, <metric>_lo, <metric>_hi (NaN where not predicted or not defined for the scenario) and
        p_feasible: the probability that every SLO bound holds (0.5 for a bound no measurement informs yet)."""
        view = known_before(records, self.campaign.parameter_names)
        out = pd.DataFrame(index=range(len(records)))
        feasible = np.ones(len(records))
        for metric in self.campaign.metrics():
            defined = self.defined(metric, view)
            pred = np.full(len(view), np.nan)
            lo, hi = pred.copy(), pred.copy()
            predictor = self.predictors.get(metric)
            if predictor is not None and defined.any():
                pred[defined], lo[defined], hi[defined] = predictor.predict_interval(view.loc[defined])
            out[metric], out[f"{metric}_lo"], out[f"{metric}_hi"] = pred, lo, hi
            if metric in self.campaign.objective.slo:
                feasible *= np.where(defined, self._p_below(pred, hi, self.campaign.objective.slo[metric]), 0.0)
        out["p_feasible"] = feasible
        return out

    @staticmethod
    def defined(metric: str, records: pd.DataFrame) -> np.ndarray:
        """Rows whose scenario reports the metric (TTFT/TPOT: Server and Interactive)."""
        scenarios = TARGETS[metric].scenarios
        if scenarios is None:
            return np.ones(len(records), dtype=bool)
        return records["scenario"].isin(scenarios).to_numpy()

    @staticmethod
    def _p_below(pred: np.ndarray, hi: np.ndarray, bound: float) -> np.ndarray:
        from scipy.special import ndtr

        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = (np.log(hi) - np.log(pred)) / Z90
            p = ndtr((np.log(bound) - np.log(pred)) / np.where(sigma > 1e-6, sigma, 1e-6))
        return np.where(np.isfinite(pred), np.nan_to_num(p, nan=0.5), 0.5)

    def _predictor(self, metric: str) -> Predictor:
        if self.campaign.predictor == "knobs":
            columns = tuple(param_column(p) for p in self.campaign.parameter_names)
            return KnobPredictor(columns=columns, **self.campaign.predictor_params)
        return make_predictor("xgboost", TARGETS[metric], {**LIGHT_XGBOOST, **self.campaign.predictor_params})
