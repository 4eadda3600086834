"""The predictor contract every model fills in, the registry, and the calibrated intervals they all share.

Predictors learn positive metrics in log space. Every predictor gets a 90 % interval the same way: cross-conformal
residuals, kept separately for rows whose (model, accelerator) pair the fold had seen, rows whose model it had seen
on other accelerators only, and rows of a model it never saw (Mondrian conformal): a configuration nobody measured
gets the wider interval it deserves, and a new model the widest. Seen pairs calibrate forward in
time (each later round predicted from the rounds before it: what a user asks of the model), unseen pairs on folds
that hold out whole models or accelerators. Saved as JSON (+ the model's own format), never pickled.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..registry import Registry

PREDICTORS: Registry[type[Predictor]] = Registry("predictors", "flexpredict.predictors", "predictor")
register = PREDICTORS.register
STATE_FILE = "predictor.json"


def pair_keys(records: pd.DataFrame) -> pd.Series:
    """(model, accelerator) identity: what "seen in training" means for intervals and OOD flags."""
    accelerator = (
        records["accelerator"]
        .astype("object")
        .where(records["accelerator"].notna(), records["accelerator_raw"].astype("object"))
    )
    return records["model"].astype("object").astype(str) + "|" + accelerator.astype(str)


class Predictor(RegressorMixin, BaseEstimator, ABC):
    """fit / predict / predict_interval / save / load, on schema records and positive target values.

    `interval_level` is the coverage the conformal intervals are calibrated for (0.9: a 90 % interval)."""

    name: ClassVar[str]

    def __init__(
        self,
        calibration_folds: int = 5,
        transfer_folds: int = 2,
        calibration_jobs: int = 2,
        random_state: int = 0,
        interval_level: float = 0.9,
    ):
        self.interval_level = interval_level
        self.calibration_folds = calibration_folds
        self.transfer_folds = transfer_folds
        self.calibration_jobs = calibration_jobs
        self.random_state = random_state

    # -- what each predictor fills in --------------------------------------------------------------------------

    @abstractmethod
    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        """Learn log(target) from records."""

    @abstractmethod
    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        """log(target) per record; NaN where the predictor cannot say."""

    def _prepare(self, records: pd.DataFrame) -> pd.DataFrame:
        """Work on the training records that every calibration fold would repeat (default: none)."""
        return records

    def _fit_before_folds(self, records: pd.DataFrame, log_y: np.ndarray) -> dict:
        """Learn what the calibration folds should reuse rather than learn again (default: nothing); returns the
        parameters each fold's copy is given."""
        return {}

    def _state(self, folder: Path) -> dict:
        """JSON-able learned state (write any model files into `folder`)."""
        return {}

    def _restore(self, state: dict, folder: Path) -> None:
        """Inverse of `_state`."""

    # -- the shared contract -----------------------------------------------------------------------------------

    def fit(self, records: pd.DataFrame, y) -> Predictor:
        y = np.asarray(y, dtype="float64")
        keep = np.isfinite(y) & (y > 0)
        records, y = records.loc[keep].reset_index(drop=True), y[keep]
        if len(records) == 0:
            raise ValueError("no training rows with a positive target value")
        records = self._prepare(records)
        fold_params = self._fit_before_folds(records, np.log(y))
        self._calibrate(records, y, fold_params)
        self._fit_log(records, np.log(y))
        self.seen_pairs_ = sorted(set(pair_keys(records)))
        self.seen_models_ = sorted(set(records["model"].dropna().astype(str)))
        self.seen_accelerators_ = sorted(set(records["accelerator"].dropna().astype(str)))
        total = pd.to_numeric(records["accelerators_total"], errors="coerce")
        self.max_accelerators_ = float(total.max()) if total.notna().any() else 0.0
        return self

    def predict(self, records: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "seen_pairs_")
        return np.exp(self._predict_log(records))

    def predict_interval(self, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, low, high): the conformal interval at `interval_level`."""
        check_is_fitted(self, "seen_pairs_")
        log_pred = self._predict_log(records)
        seen = pair_keys(records).isin(set(self.seen_pairs_)).to_numpy()
        known_model = records["model"].astype("object").isin(set(self.seen_models_)).to_numpy()
        known_part = records["accelerator"].astype("object").isin(set(self.seen_accelerators_)).to_numpy()
        fallback = np.where(seen, self.quantile_seen_, self.quantile_unseen_)
        strata = _strata(records, seen, known_model, known_part)
        half = np.array(
            [self.quantile_strata_.get(key, default) for key, default in zip(strata, fallback)], dtype="float64"
        )
        return np.exp(log_pred), np.exp(log_pred - half), np.exp(log_pred + half)

    def out_of_distribution(self, records: pd.DataFrame) -> np.ndarray:
        """True where the accelerator or the model was never seen, the accelerator is not in the catalog, or the
        system is far larger than any in training."""
        accelerator = records["accelerator"]
        total = pd.to_numeric(records["accelerators_total"], errors="coerce").fillna(1)
        return (
            (~records["model"].astype(str).isin(set(self.seen_models_)))
            | accelerator.isna()
            | (~accelerator.astype(str).isin(set(self.seen_accelerators_)))
            | (total > 2 * max(self.max_accelerators_, 1))
        ).to_numpy()

    def _calibrate(self, records: pd.DataFrame, y: np.ndarray, fold_params: dict | None = None) -> None:
        """Cross-conformal quantiles of |log residual|, for seen and unseen (model, accelerator) pairs.

        Seen pairs: forward folds (round R predicted from every earlier round, for each R that has at least
        `MIN_PAST_ROUNDS` rounds before it). Folds grouped by run group (-99/-99.9 twins never on both sides) stand in
        when those give fewer than `MIN_FORWARD_SEEN` seen-pair residuals (a target measured in few rounds). Folds
        grouped by model and by accelerator (`transfer_folds` each) add residuals of configurations whose model or
        accelerator was never measured, which the others rarely produce. Each novelty category (`_strata`) with
        enough residuals gets its own width.
        """
        from joblib import Parallel, delayed  # heavy imports, needed only when fitting
        from sklearn.model_selection import GroupKFold

        level = self.interval_level
        pairs = pair_keys(records).to_numpy()
        models = records["model"].astype("object").fillna("?").astype(str).to_numpy()
        parts = records["accelerator"].astype("object").fillna("?").astype(str).to_numpy()
        abs_residuals, seen_flags, strata, signed, from_seen_scheme = [], [], [], [], []
        forward = _forward_folds(records) if self.calibration_folds >= 2 else []
        seen_forward = sum(int(np.isin(pairs[test], pairs[train]).sum()) for train, test in forward)
        jobs = [(train, test, True) for train, test in forward] if seen_forward >= MIN_FORWARD_SEEN else []
        schemes = [] if jobs else [(records["run_group"].astype(str).to_numpy(), self.calibration_folds, True)]
        if self.calibration_folds >= 2:
            schemes += [
                (records[column].astype("object").fillna("?").astype(str).to_numpy(), self.transfer_folds, False)
                for column in ("model", "accelerator")
            ]
        for groups, count, for_accuracy in schemes:
            folds = min(count, len(set(groups)))
            if folds >= 2:
                jobs += [
                    (train, test, for_accuracy) for train, test in GroupKFold(n_splits=folds).split(records, y, groups)
                ]
        # folds are independent: fit them on every core (a 2-core machine trains twice as fast)
        fold_residuals = Parallel(n_jobs=min(self.calibration_jobs, len(jobs)) if jobs else 1)(
            delayed(_fold_residual)(
                _single_threaded(clone(self).set_params(**(fold_params or {}))), records, y, train, test
            )
            for train, test, _ in jobs
        )
        for (train, test, for_accuracy), residual in zip(jobs, fold_residuals):
            if for_accuracy:
                signed.append(residual)
            abs_residuals.append(np.abs(residual))
            seen_flags.append(np.isin(pairs[test], pairs[train]))
            strata.append(
                _strata(
                    records.iloc[test],
                    seen_flags[-1],
                    np.isin(models[test], models[train]),
                    np.isin(parts[test], parts[train]),
                )
            )
            from_seen_scheme.append(np.full(len(test), for_accuracy))
        residuals = np.concatenate(abs_residuals) if abs_residuals else np.array([])
        seen = np.concatenate(seen_flags) if seen_flags else np.array([], dtype=bool)
        # a seen pair's width comes from the forward (or run-group) folds only: transfer folds hold out whole
        # models, so their "seen" rows are a different situation
        usable = np.concatenate(from_seen_scheme) | ~seen if from_seen_scheme else np.array([], dtype=bool)
        ok = np.isfinite(residuals) & usable
        self.quantile_all_ = _conformal_quantile(residuals[ok], level)
        self.quantile_seen_ = _conformal_quantile(residuals[ok & seen], level, fallback=self.quantile_all_)
        unseen = _conformal_quantile(residuals[ok & ~seen], level, fallback=np.nan)
        # too few unseen rows to calibrate on: no narrower than the pooled or seen width, whichever is larger
        self.quantile_unseen_ = unseen if np.isfinite(unseen) else max(self.quantile_all_, self.quantile_seen_)
        self.calibration_rows_ = {"seen": int((ok & seen).sum()), "unseen": int((ok & ~seen).sum())}
        # narrower where the data is cleaner: tuned closed-division datacenter runs vary less than edge sweeps
        keys = np.concatenate(strata) if strata else np.array([], dtype=object)
        self.quantile_strata_ = {}
        for key in set(keys):
            value = _conformal_quantile(residuals[ok & (keys == key)], level, fallback=np.nan, minimum=20)
            if np.isfinite(value):
                self.quantile_strata_[str(key)] = value
        # out-of-fold accuracy: the model card's reproducible number (|pred/y - 1| = |exp(-residual) - 1|)
        errors = np.abs(np.expm1(-np.concatenate(signed))) if signed else np.array([])
        self.oof_mdape_ = float(np.median(errors[np.isfinite(errors)])) if np.isfinite(errors).any() else None

    # -- persistence -------------------------------------------------------------------------------------------

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        learned = {
            key: getattr(self, key)
            for key in (
                "seen_pairs_",
                "seen_models_",
                "seen_accelerators_",
                "max_accelerators_",
                "quantile_all_",
                "quantile_seen_",
                "quantile_unseen_",
                "calibration_rows_",
                "oof_mdape_",
                "quantile_strata_",
            )
        }
        document = {
            "predictor": self.name,
            "params": self.get_params(),
            "learned": _jsonable(learned),
            "state": self._state(folder),
        }
        (folder / STATE_FILE).write_text(json.dumps(document, indent=1))
        return folder

    @staticmethod
    def load(folder: Path | str) -> Predictor:
        folder = Path(folder)
        document = json.loads((folder / STATE_FILE).read_text())
        cls = PREDICTORS.get(document["predictor"])
        if cls is None:
            raise ValueError(f"{folder / STATE_FILE}: unknown predictor '{document['predictor']}'")
        predictor = cls(**document["params"])
        for key, value in document["learned"].items():
            setattr(predictor, key, value)
        predictor._restore(document["state"], folder)
        return predictor


MIN_PAST_ROUNDS = 2  # a round predicted from a single earlier one is not the situation the model is used in
MIN_FORWARD_SEEN = 200  # fewer forward residuals of seen pairs than this: calibrate on run-group folds instead


def _forward_folds(records: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs: each round with at least MIN_PAST_ROUNDS earlier rounds, from those rounds
    (records of no known round, e.g. own benchmark runs, only ever train)."""
    from ..features.transformer import round_index

    index = records["round"].map(round_index).to_numpy(dtype="float64")
    rounds = np.unique(index[np.isfinite(index)])
    return [(np.where(~(index >= r))[0], np.where(index == r)[0]) for r in rounds[MIN_PAST_ROUNDS:]]


def _single_threaded(model: Predictor) -> Predictor:
    """Parallel folds already use every core: each fit gets one thread."""
    if "n_jobs" in model.get_params():
        model.set_params(n_jobs=1)
    return model


def _fold_residual(
    model: Predictor, records: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """log(y) - log(prediction) on one held-out fold."""
    model._fit_log(records.iloc[train].reset_index(drop=True), np.log(y[train]))
    return np.log(y[test]) - model._predict_log(records.iloc[test].reset_index(drop=True))


def _strata(records: pd.DataFrame, seen: np.ndarray, known_model: np.ndarray, known_part: np.ndarray) -> np.ndarray:
    """Mondrian strata for interval widths: how much of the configuration was measured (this model+accelerator pair;
    both, never together; the model on other parts only; the part with other models only; neither: the categories
    the evaluation reports) x closed division or not x LLM or not. A known model on a new part transfers far better
    than a new model, and a new LLM (physics-scaled) far better than a new open-division CNN variant, so each gets
    its own width."""
    from ..normalize import is_llm_benchmark

    closed = (records["division"].astype("object") == "closed").to_numpy()
    llm = records["benchmark"].map(lambda b: is_llm_benchmark(b) if isinstance(b, str) else False).to_numpy()
    kind = np.select(
        [seen, known_model & known_part, known_model, known_part],
        ["seen", "new-pair", "new-accelerator", "new-model"],
        "both-new",
    )
    return np.array(
        [f"{k}|{'closed' if c else 'other'}|{'llm' if m else 'other'}" for k, c, m in zip(kind, closed, llm)],
        dtype=object,
    )


def _conformal_quantile(residuals: np.ndarray, level: float, fallback: float = np.inf, minimum: int = 10) -> float:
    n = len(residuals)
    if n < minimum:
        return fallback
    rank = min(int(np.ceil((n + 1) * level)), n)
    return float(np.sort(residuals)[rank - 1])


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
