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
from .base import Predictor, _forward_folds, register
from .priors import LEVELS, PriorTables, keys, level_name
from .siblings import ModelRooflinePredictor, SiblingRooflinePredictor

BOOSTER_FILE = "booster.ubj"
MEASURED_LEVELS = 3  # LEVELS[:3] fix model, accelerator and scenario: the configuration was measured
# what the transfer model's training rows pretend was never measured
UNMEASURED = (("model", "accelerator", "scenario"), ("model", "accelerator"), ("model",), ("accelerator",))
# the estimates an unmeasured configuration's prediction blends, and the novelty categories with weights of their own
CANDIDATES = ("prior", "trees", "sibling-roofline", "model-roofline")
NOVELTIES = ("other-scenario", "new-pair", "new-accelerator", "new-model", "both-new")
TREES_ONLY = (0.0, 1.0, 0.0, 0.0)
BLEND_STEP = 0.25  # weights on a simplex grid: few enough choices that small folds cannot overfit them
MIN_BLEND_ROWS = 30  # fewer held-out rows of a category than this: keep the trees' correction alone
# category -> the grouping whose held-out folds produce it (each hides what a configuration of it lacks)
BLEND_SCHEMES = (("model", "accelerator", "scenario"), ("model", "accelerator"), ("accelerator",), ("model",))
NEAR_SIBLING = 1.0  # a sibling distance below this: same family/kind, bandwidth or size within about an e-fold


@register
class XGBoostPredictor(Predictor):
    name = "xgboost"

    def __init__(
        self,
        n_estimators: int = 150,
        max_depth: int = 4,
        learning_rate: float = 0.1,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 2.0,
        reg_lambda: float = 1.0,
        roofline_exponent: float = 1.0,
        use_identity: bool = True,
        objective: str = "reg:pseudohubererror",
        huber_slope: float = 0.1,
        max_correction: float = 3.0,
        n_jobs: int = 2,
        calibration_folds: int = 3,
        transfer_folds: int = 2,
        calibration_jobs: int = 2,
        random_state: int = 0,
        interval_level: float = 0.9,
        blend_folds: int = 2,
        blend_weights: dict | None = None,
        physics_column: str = "log_work_bound",
    ):
        super().__init__(
            calibration_folds=calibration_folds,
            transfer_folds=transfer_folds,
            calibration_jobs=calibration_jobs,
            random_state=random_state,
            interval_level=interval_level,
        )
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.roofline_exponent = roofline_exponent
        self.physics_column = physics_column  # log of the physical bound the target scales with (Target)
        self.use_identity = use_identity
        self.objective = objective
        self.huber_slope = huber_slope
        self.max_correction = max_correction
        self.n_jobs = n_jobs
        self.blend_folds = blend_folds  # held-out folds per grouping to learn the blend weights (< 2: trees only)
        self.blend_weights = blend_weights  # category -> weights of CANDIDATES; None: learned at fit

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
        data = xgb.DMatrix(matrix, label=np.tile(log_y, len(UNMEASURED)), base_margin=margin, enable_categorical=True)
        self.booster_ = xgb.train(self._xgb_params(), data, num_boost_round=self.n_estimators)
        self.sibling_, self.model_sibling_ = self._baselines()
        self.sibling_._fit_log(frame, log_y)
        self.model_sibling_._fit_log(frame, log_y)
        self.known_models_ = sorted(set(frame["model"].dropna().astype(str)))
        self.known_accelerators_ = sorted(set(frame["accelerator"].dropna().astype(str)))
        if self.blend_weights is not None:
            self.blend_weights_ = dict(self.blend_weights)
        elif not hasattr(self, "blend_weights_"):  # fitted alone (no `fit`): the trees' correction alone
            self.blend_weights_ = {}

    def _fit_before_folds(self, records: pd.DataFrame, log_y: np.ndarray) -> dict:
        """The blend weights, learned once on held-out folds; the calibration folds reuse them (learning them
        again inside every fold would multiply the fit time for a handful of numbers)."""
        if self.blend_weights is not None:
            self.blend_weights_ = dict(self.blend_weights)
        else:
            self.blend_weights_ = self._learn_blend_weights(records, log_y) if self.blend_folds >= 2 else {}
        return {"blend_weights": self.blend_weights_}

    def _learn_blend_weights(self, records: pd.DataFrame, log_y: np.ndarray) -> dict[str, list[float]]:
        """Per novelty category, the simplex-grid weights of CANDIDATES with the smallest mean |log error| on
        forward folds (each later round from the rounds before it: novelty as the future brings it, what a user asks);
        categories the forward folds hold too few rows of learn from folds that hold out whole groups
        (configurations, model+accelerator pairs, accelerators, models) as well."""
        from joblib import Parallel, delayed
        from sklearn.base import clone
        from sklearn.model_selection import GroupKFold

        forward = _forward_folds(records)
        jobs = [(train, test, True) for train, test in forward]
        for scheme in BLEND_SCHEMES:
            groups = keys(records, scheme).to_numpy()
            folds = min(self.blend_folds, len(set(groups)))
            if folds >= 2:
                jobs += [
                    (train, test, False) for train, test in GroupKFold(n_splits=folds).split(records, groups=groups)
                ]
        inner = clone(self).set_params(blend_weights={}, calibration_folds=0, n_jobs=1)
        parts = Parallel(n_jobs=min(self.calibration_jobs, len(jobs)) if jobs else 1)(
            delayed(_held_out_candidates)(clone(inner), records, log_y, train, test) for train, test, _ in jobs
        )
        if not parts:
            return {}
        candidates = np.concatenate([c for c, _, _ in parts])
        category = np.concatenate([k for _, k, _ in parts])
        truth = np.concatenate([t for _, _, t in parts])
        from_forward = np.concatenate([np.full(len(t), f) for (_, _, t), (_, _, f) in zip(parts, jobs)])
        grid = _simplex_grid(len(CANDIDATES), BLEND_STEP)
        novelty = np.array([name.split("|")[0] for name in category], dtype=object)
        weights = {}
        for labels in (novelty, category):  # coarse first; a category with enough rows of its own refines it
            for name in sorted(set(labels)):
                rows = (labels == name) & np.isfinite(truth)
                if (rows & from_forward).sum() >= MIN_BLEND_ROWS:
                    rows &= from_forward
                if rows.sum() < MIN_BLEND_ROWS:
                    continue
                errors = [np.mean(np.abs(truth[rows] - _blend(candidates[rows], w))) for w in grid]
                weights[str(name)] = [float(v) for v in grid[int(np.argmin(errors))]]
        return weights

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

        frame = self.featurizer_.complete(records)
        matrix, margin, measured = self._design(frame)
        out = margin.copy()
        if (~measured).any():
            unmeasured = ~measured
            candidates, category = self._candidates(frame.loc[unmeasured], matrix.loc[unmeasured], margin[unmeasured])
            out[unmeasured] = _blend(candidates, self._weights(category))
        return out

    def _candidates(
        self, frame: pd.DataFrame, matrix: pd.DataFrame, margin: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows x CANDIDATES log-estimates, blend category) of unmeasured configurations (NaN where an estimate
        cannot say). The category is the novelty and whether each roofline sibling is near: a sibling of the same
        family carries over well, one from another generation does not, and the weights may say so."""
        import xgboost as xgb

        corrected = self.booster_.predict(xgb.DMatrix(matrix, base_margin=margin, enable_categorical=True))
        # trees extrapolate badly far from their data: they may move a transfer prior by a bounded factor
        limit = np.log(self.max_correction)
        trees = np.clip(corrected, margin - limit, margin + limit)
        sibling, sibling_distance = self.sibling_.nearest(frame)
        model, model_distance = self.model_sibling_.nearest(frame)
        near = [
            np.where(distance < NEAR_SIBLING, f"{name}-near", f"{name}-far")
            for name, distance in (("sibling", sibling_distance), ("model", model_distance))
        ]
        siblings = np.where(np.isfinite(sibling), near[0] + "|" + near[1], "no-physics")
        category = np.char.add(np.char.add(self.novelty(frame, matrix).astype(str), "|"), siblings.astype(str))
        return np.column_stack([margin, trees, sibling, model]), category.astype(object)

    def novelty(self, frame: pd.DataFrame, matrix: pd.DataFrame) -> np.ndarray:
        """What training measured of each unmeasured configuration: the pair in another scenario (other-scenario),
        the model and part apart (new-pair), the model elsewhere (new-accelerator), the part with other models
        (new-model), neither (both-new)."""
        pair = pd.to_numeric(matrix["count_" + level_name(("model", "accelerator"))], errors="coerce").fillna(0) > 0
        model = frame["model"].astype("object").isin(set(self.known_models_)).to_numpy()
        part = frame["accelerator"].astype("object").isin(set(self.known_accelerators_)).to_numpy()
        return np.select([pair.to_numpy(), model & part, model, part], list(NOVELTIES[:4]), NOVELTIES[4])

    def _weights(self, category: np.ndarray) -> np.ndarray:
        """Blend weights per row: of its category, else of its novelty alone, else the trees' correction alone."""

        def lookup(name: str):
            return self.blend_weights_.get(name, self.blend_weights_.get(name.split("|")[0], TREES_ONLY))

        return np.array([lookup(name) for name in category], dtype="float64").reshape(-1, len(CANDIDATES))

    def contributions(self, records: pd.DataFrame) -> pd.DataFrame:
        """Contributions to log(target): `prior` is the starting point (measured median, or the roofline-scaled
        efficiency of related measurements); the feature columns are exact TreeSHAP values of the trees (zero for
        measured configurations, which the trees do not touch). Row sums equal the log predictions."""
        return self.explained(records)[0]

    def explained(self, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(`contributions`, `feature_matrix` + the blend: `transfer_prior` and the share of each estimate,
        `blend_prior`, `blend_trees`, `blend_sibling`, `blend_model`) from one featurisation."""
        import xgboost as xgb

        completed = self.featurizer_.complete(records)
        matrix, margin, measured = self._design(completed)
        values = self.booster_.predict(
            xgb.DMatrix(matrix, base_margin=margin, enable_categorical=True), pred_contribs=True
        )
        values[:, -1] -= margin  # XGBoost's bias includes the base margin: keep only the trees' part in `bias`
        start = margin.copy()
        shares = np.zeros((len(matrix), len(CANDIDATES)))
        if (~measured).any():
            # the blend's start: every estimate but the trees' correction; the trees' terms count at their weight
            unmeasured = ~measured
            candidates, category = self._candidates(
                completed.loc[unmeasured], matrix.loc[unmeasured], margin[unmeasured]
            )
            weights = self._weights(category)
            shares[unmeasured] = _usable(candidates, weights)
            trees = shares[unmeasured, 1]
            candidates[:, 1] = margin[unmeasured]
            start[unmeasured] = _blend(candidates, weights)
            values[unmeasured] *= trees[:, None]
        frame = pd.DataFrame(values, columns=list(matrix.columns) + ["bias"], index=records.index)
        frame.loc[measured, :] = 0.0
        frame["prior"] = start
        frame["measured"] = measured
        blend = pd.DataFrame(
            shares, columns=["blend_prior", "blend_trees", "blend_sibling", "blend_model"], index=matrix.index
        ).assign(transfer_prior=margin)
        return frame, pd.concat([matrix, blend], axis=1)

    def feature_matrix(self, records: pd.DataFrame) -> pd.DataFrame:
        return self._design(self.featurizer_.complete(records))[0]

    # -- design ------------------------------------------------------------------------------------------------

    def _design(
        self, frame: pd.DataFrame, *, log_y: np.ndarray | None = None, leave_out: np.ndarray | None = None
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
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
        """exponent x log physical bound (`physics_column`: the prefill-aware roofline, or TDP for power): the physics
        part of log(target); NaN where unknown or not used."""
        if self.roofline_exponent == 0:
            return np.full(len(frame), np.nan)
        log_bound = pd.to_numeric(frame[self.physics_column], errors="coerce").to_numpy(dtype="float64")
        return self.roofline_exponent * log_bound

    def _baselines(self) -> tuple[SiblingRooflinePredictor, ModelRooflinePredictor]:
        """The two roofline-sibling estimates the blend uses, on this predictor's physics."""
        exponent, column = self.roofline_exponent, self.physics_column
        return (
            SiblingRooflinePredictor(roofline_exponent=exponent, physics_column=column),
            ModelRooflinePredictor(roofline_exponent=exponent, physics_column=column),
        )

    def _xgb_params(self) -> dict:
        return {
            "objective": self.objective,
            "huber_slope": self.huber_slope,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "tree_method": "hist",
            "nthread": self.n_jobs,
            "seed": self.random_state,
            "max_cat_to_onehot": 1,
            "max_bin": 64,
        }

    # -- persistence -------------------------------------------------------------------------------------------

    def _state(self, folder: Path) -> dict:
        self.booster_.save_model(folder / BOOSTER_FILE)
        return {
            "booster": BOOSTER_FILE,
            "categories": self.featurizer_.categories_,
            "features": list(self.featurizer_.feature_names_out_),
            "priors": self.priors_.tables,
            "trend": self.priors_.trend,
            "newest_round": self.priors_.newest_round,
            "global_mean": self.global_mean_,
            "roofline_shift": self.roofline_shift_,
            "blend_weights": self.blend_weights_,
            "sibling": self.sibling_._state(folder),
            "model_sibling": self.model_sibling_._state(folder),
            "known_models": self.known_models_,
            "known_accelerators": self.known_accelerators_,
        }

    def _restore(self, state: dict, folder: Path) -> None:
        import xgboost as xgb

        self.featurizer_ = RecordFeaturizer(use_identity=self.use_identity)
        self.featurizer_.categories_ = state["categories"]
        self.featurizer_.feature_names_out_ = np.array(state["features"], dtype=object)
        self.booster_ = xgb.Booster()
        self.booster_.load_model(folder / state["booster"])
        self.priors_ = PriorTables(state["priors"], state["trend"], state["newest_round"])
        self.global_mean_, self.roofline_shift_ = state["global_mean"], state["roofline_shift"]
        self.blend_weights_ = state["blend_weights"]
        self.sibling_, self.model_sibling_ = self._baselines()
        self.sibling_._restore(state["sibling"], folder)
        self.model_sibling_._restore(state["model_sibling"], folder)
        self.known_models_, self.known_accelerators_ = state["known_models"], state["known_accelerators"]


def _usable(candidates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weights renormalised over the estimates that exist (no physics: no roofline siblings); all on the trees
    where none of the weighted ones does."""
    weights = np.where(np.isfinite(candidates), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), np.array(TREES_ONLY))


def _blend(candidates: np.ndarray, weights) -> np.ndarray:
    """Weighted mean of log-estimates (a geometric mean of the estimates)."""
    weights = np.broadcast_to(np.asarray(weights, dtype="float64"), candidates.shape)
    return np.nansum(np.nan_to_num(candidates) * _usable(candidates, weights), axis=1)


def _simplex_grid(size: int, step: float) -> np.ndarray:
    """Every weight vector of `size` non-negative multiples of `step` summing to 1."""
    import itertools

    ticks = int(round(1 / step))
    return np.array(
        [
            np.array(c, dtype="float64") / ticks
            for c in itertools.product(range(ticks + 1), repeat=size)
            if sum(c) == ticks
        ]
    )


def _held_out_candidates(
    model: XGBoostPredictor, records: pd.DataFrame, log_y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidates, novelty, log truth) of one held-out fold's unmeasured rows, the model fitted on the rest."""
    model._fit_log(records.iloc[train].reset_index(drop=True), log_y[train])
    frame = model.featurizer_.complete(records.iloc[test].reset_index(drop=True))
    matrix, margin, measured = model._design(frame)
    rows = ~measured
    if not rows.any():  # every held-out configuration was measured: nothing to blend
        return np.empty((0, len(CANDIDATES))), np.empty(0, dtype=object), np.empty(0)
    candidates, category = model._candidates(frame.loc[rows], matrix.loc[rows], margin[rows])
    return candidates, category, log_y[test][rows]
