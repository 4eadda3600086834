"""The campaign's surrogate: one predictor per metric (the objective's and each SLO's), refitted after every batch.

Predictions carry the predictors' calibrated 90 % intervals: the interval width is the uncertainty the acquisitions
spend measurements on, and the intervals of the SLO metrics give the probability that a configuration is feasible.
Both training rows and candidates are seen as known before measuring (`known_before`), so no measured-only column
(the QPS a submitter ran at, which is close to the result) leaks into a prediction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..predictors.base import STATE_FILE, Predictor
from ..predictors.knobs import KnobPredictor
from ..predictors.targets import TARGETS, make_predictor
from ..schema import COLUMNS, conform
from .acquisition.base import NOISE_SD, Z90, log_sd
from .candidates import param_column, similarity_between
from .definition import Campaign

MIN_ROWS = 2
LIGHT_XGBOOST = {"calibration_folds": 3, "transfer_folds": 0, "n_estimators": 100, "n_jobs": 1}
"""Refit in about a second: 3 calibration folds, no transfer folds, 100 trees, one thread (with two threads on a
busy 2-core machine XGBoost ran 15x slower)."""
_KNOWN_GROUPS = ("hardware", "software")
_KNOWN_IDENTITY = ("record_id", "run_group", "division", "system_type", "benchmark", "model", "scenario")


def known_before(records: pd.DataFrame, parameters: tuple[str, ...]) -> pd.DataFrame:
    """Records reduced to what is known before measuring: identity, hardware, software, the parameters."""
    keep = [c.name for c in COLUMNS if c.group in _KNOWN_GROUPS or c.name in _KNOWN_IDENTITY or c.name in parameters]
    frame = conform(records[[c for c in keep if c in records.columns]])
    extra = [param_column(p) for p in parameters if param_column(p) in records.columns]
    return pd.concat([frame, records[extra].reset_index(drop=True)], axis=1)


class Surrogate:
    """Predictors of the campaign's metrics, fitted on the base records plus everything the campaign measured."""

    def __init__(self, campaign: Campaign):
        self.campaign = campaign
        self.predictors: dict[str, Predictor] = {}
        self.rows: dict[str, int] = {}

    def fit(self, base: pd.DataFrame, measured: pd.DataFrame | None = None) -> Surrogate:
        """Fit every metric that has at least MIN_ROWS measured rows (one per run group and value) on the base
        records plus the campaign's measurements."""
        records = pd.concat([base, measured], ignore_index=True) if measured is not None and len(measured) else base
        for metric in self.campaign.metrics():
            rows, y = self.training_rows(records, metric)
            self.rows[metric] = len(rows)
            if len(rows) < MIN_ROWS:
                self.predictors.pop(metric, None)
                continue
            self.predictors[metric] = self._predictor(metric).fit(rows, y)
        return self

    def training_rows(self, records: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Records known before measuring with a positive value of the metric, one per run group and value."""
        view = known_before(records, self.campaign.parameter_names)
        values = pd.to_numeric(records[metric], errors="coerce").astype("float64").to_numpy()
        keep = np.isfinite(values) & (values > 0)
        rows = view.loc[keep].assign(_y=values[keep]).drop_duplicates(["run_group", "_y"])
        return rows.drop(columns="_y").reset_index(drop=True), rows["_y"].to_numpy()

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
            if metric in self.predictors and defined.any():
                pred[defined], lo[defined], hi[defined] = self.interval(metric, view.loc[defined])
            out[metric], out[f"{metric}_lo"], out[f"{metric}_hi"] = pred, lo, hi
            if metric in self.campaign.objective.slo:
                feasible *= np.where(defined, self._p_below(pred, hi, self.campaign.objective.slo[metric]), 0.0)
        out["p_feasible"] = feasible
        return out

    def interval(self, metric: str, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, low, high) of one metric for records where it is defined."""
        return self.predictors[metric].predict_interval(records)

    @staticmethod
    def defined(metric: str, records: pd.DataFrame) -> np.ndarray:
        """Rows whose scenario reports the metric (TTFT/TPOT: Server and Interactive)."""
        scenarios = TARGETS[metric].scenarios
        if scenarios is None:
            return np.ones(len(records), dtype=bool)
        return records["scenario"].isin(scenarios).to_numpy()

    @staticmethod
    def _p_below(pred: np.ndarray, hi: np.ndarray, bound: float) -> np.ndarray:
        from ..recommend import probability_below

        p = probability_below(pred, hi, bound)
        return np.where(np.isfinite(pred), np.nan_to_num(p, nan=0.5), 0.5)

    def _predictor(self, metric: str) -> Predictor:
        if self.campaign.predictor == "knobs":
            columns = tuple(param_column(p) for p in self.campaign.parameter_names)
            return KnobPredictor(columns=columns, **self.campaign.predictor_params)
        return make_predictor("xgboost", TARGETS[metric], {**LIGHT_XGBOOST, **self.campaign.predictor_params})


class TransferSurrogate(Surrogate):
    """`predictor: transfer`, for a part nobody measured yet. The transfer predictor (xgboost on the base records,
    with its calibrated interval per configuration) is fitted once; each refit only corrects it by the campaign's
    measurements: the log error of the transfer prediction is a Gaussian process over the search space (prior sd:
    the transfer interval of each configuration; correlation: the parameters' `similarity`; noise: NOISE_SD). One
    measurement then moves and narrows every configuration that shares its model, precision, count or scenario,
    as much as the similarity says, and the refit takes milliseconds.

    The fitted transfer predictor is saved (JSON + booster, no pickle) under `cache`, keyed by its training rows and
    parameters: every worker and every campaign over the same base records reuses it."""

    def __init__(self, campaign: Campaign, cache: Path | None = None):
        super().__init__(campaign)
        self.cache = Path(cache) if cache is not None else None
        self.errors: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
        """Per metric: (measured configurations, their log error of the transfer prediction, its prior sd)."""
        self.transferred: dict[str, dict[np.integer, tuple[float, float]]] = {}
        """Per metric: (prediction, upper bound) of the transfer predictor by record hash; it never changes."""

    def fit(self, base: pd.DataFrame, measured: pd.DataFrame | None = None) -> TransferSurrogate:
        for metric in self.campaign.metrics():
            if metric not in self.predictors:
                rows, y = self.training_rows(base, metric)
                self.rows[metric] = len(rows)
                if len(rows) < MIN_ROWS:
                    continue
                self.predictors[metric] = self._transfer(metric, rows, y)
                self.transferred[metric] = {}
            self.errors.pop(metric, None)
            if measured is None or not len(measured):
                continue
            rows, y = self.training_rows(measured, metric)
            defined = self.defined(metric, rows)
            rows, y = rows.loc[defined].reset_index(drop=True), y[defined]
            if len(rows):
                pred, hi = self._transferred(metric, rows)
                self.errors[metric] = (self._parameters(rows), np.log(y) - np.log(pred), log_sd(pred, hi))
        return self

    def interval(self, metric: str, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The transfer prediction moved by the posterior mean of its error; the interval from the posterior sd
        plus the noise of one run."""
        pred, hi = self._transferred(metric, records)
        sd = log_sd(pred, hi)
        shift, variance = np.zeros(len(records)), sd**2
        if metric in self.errors:
            configs, error, error_sd = self.errors[metric]
            space = self.campaign.space
            gram = np.outer(error_sd, error_sd) * similarity_between(space, configs, configs)
            cross = np.outer(sd, error_sd) * similarity_between(space, self._parameters(records), configs)
            weights = np.linalg.solve(gram + NOISE_SD**2 * np.eye(len(error)), cross.T).T
            shift = weights @ error
            variance = np.clip(variance - np.einsum("ij,ij->i", weights, cross), 0.0, None)
        half = Z90 * np.sqrt(variance + NOISE_SD**2)
        centre = np.log(pred) + shift
        return np.exp(centre), np.exp(centre - half), np.exp(centre + half)

    def _transferred(self, metric: str, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, upper bound) of the transfer predictor, each record predicted once per surrogate."""
        known = self.transferred[metric]
        hashes = pd.util.hash_pandas_object(records.astype(str), index=False).to_numpy()
        new = np.array([h not in known for h in hashes])
        if new.any():
            pred, _, hi = self.predictors[metric].predict_interval(records.loc[new])
            known.update(zip(hashes[new], zip(pred, hi)))
        pred, hi = np.array([known[h] for h in hashes], dtype="float64").reshape(-1, 2).T
        return pred, hi

    def _parameters(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The search-space parameters of records (their param_<name> columns, under the parameter names)."""
        names = self.campaign.parameter_names
        return rows[[param_column(p) for p in names]].set_axis(list(names), axis=1).reset_index(drop=True)

    def _transfer(self, metric: str, rows: pd.DataFrame, y: np.ndarray) -> Predictor:
        """The metric's xgboost predictor on the base rows: loaded when the cache holds one fitted on exactly these
        rows with these parameters, else fitted (and cached)."""
        predictor = self._predictor(metric)
        if self.cache is None:
            return predictor.fit(rows, y)
        digest = hashlib.sha256(json.dumps([metric, predictor.get_params()], sort_keys=True, default=str).encode())
        digest.update(_predictor_code())
        digest.update(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes())
        digest.update(np.asarray(y, dtype="float64").tobytes())
        folder = self.cache / f"{metric}-{digest.hexdigest()[:16]}"
        if (folder / STATE_FILE).is_file():
            return Predictor.load(folder)
        predictor.fit(rows, y)
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache, prefix=".saving-"))
        predictor.save(staging)
        try:
            staging.rename(folder)  # atomic: a worker saving the same predictor at once keeps its own copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return predictor


@functools.cache
def _predictor_code() -> bytes:
    """The predictor's and featuriser's source, as this process loaded it: a cached predictor from other code is
    not reused."""
    root = Path(__file__).resolve().parent.parent
    return b"".join(
        path.read_bytes() for folder in ("predictors", "features") for path in sorted((root / folder).glob("*.py"))
    )


def make_surrogate(campaign: Campaign, cache: Path | None = None) -> Surrogate:
    """The campaign's surrogate: `transfer` corrects a once-fitted predictor, the others refit on everything."""
    return TransferSurrogate(campaign, cache) if campaign.predictor == "transfer" else Surrogate(campaign)
