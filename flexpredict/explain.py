"""SHAP explanations of the predictors: which features move a target overall (global view) and why one
configuration or record gets its prediction (local view). `flexpredict explain`, `flexpredict report` and the
notebooks call these functions.

They explain the model as it works. XGBoostPredictor predicts log(target):

- a configuration whose model, accelerator and scenario were measured IS its measurements (the newest round's
  median, moved by the per-round trend); the trees are not used, and the explanation says so;
- any other configuration starts from a coarser prior (the base margin) that the trees correct. Its SHAP values are
  XGBoost's exact TreeSHAP in log units: prior + the trees' average + SHAP values = log prediction, so
  exp(value) - 1 is a feature's multiplicative effect. Where the predictor caps the trees' correction, the cap is
  one more term, so the terms still add up to the prediction.

Global importance is mean |SHAP| over the rows the trees learned from (the transfer design: each training record
with its own configuration, its model+accelerator pair, its model or its accelerator hidden from its priors). On the
training records themselves every configuration is measured, so every SHAP value there would be zero.

`LocalExplanation.to_dict()` (what `explain --format json` prints per target) has the keys: target, unit,
configuration, record_id, prediction, low, high, ood, measured_configuration, measured_value, start (what, value),
trees_average, contributions (feature, words, log_value, effect), reasons. `GlobalExplanation.to_dict()`: target,
unit, records, design_rows, explained_rows, same_data, importance (feature, words, mean_abs_shap, typical_effect).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .predictors import TARGETS
from .predictors.bundle import data_hash, training_rows
from .predictors.priors import LEVELS, level_name
from .predictors.xgboost_model import MEASURED_LEVELS
from .recommend import feature_phrase

DEPENDENCE = ("acc_bandwidth_tbs", "precision", "engine")  # what the global view shows throughput against
TREND, CAP, CONSTRAINT = "trend", "cap", "constraint"  # terms of a local explanation that are not features
# what moved a prediction after the predictor: `constraints.constrain` and the targets' physical floors
CONSTRAINT_WORDS = {
    "throughput_per_accelerator": "capped at the roofline (no measured run is above it)",
    "power_w": "kept within the part's power bounds (idle share to TDP plus host)",
    "energy_j_per_token": "kept equal to predicted power / predicted throughput",
    "energy_j_per_sample": "kept equal to predicted power / predicted throughput",
    "ttft_p99_ms": "kept between one decode step and the scenario's bound",
    "tpot_p99_ms": "kept between one decode step and the scenario's bound",
    "latency_p99_ms": "kept within the scenario's bound and at least the p90",
}


class ExplainError(ValueError):
    """A request that cannot be explained as given (unknown target, no xgboost model, ...): one line."""


def feature_words(name: str) -> str:
    """Plain words for a feature (recommend's wording, without a value)."""
    return feature_phrase(name, None).removesuffix(" unknown")


def _learned_unit(target: str) -> str:
    """The unit of what the model learns (per accelerator for targets predicted per accelerator)."""
    spec = TARGETS[target]
    return spec.unit + (" per accelerator" if spec.per_accelerator else "")


def _predictor(bundle, target: str):
    if target not in TARGETS:
        raise ExplainError(f"unknown target '{target}' (expected one of {', '.join(TARGETS)})")
    predictor = bundle.predictors.get(target)
    if predictor is None:
        raise ExplainError(f"the model has no '{target}' predictor (it has {', '.join(bundle.predictors)})")
    if not hasattr(predictor, "transfer_design"):
        raise ExplainError(f"'{target}' uses the {predictor.name} predictor; SHAP explains xgboost ones")
    return predictor


# -- global view -------------------------------------------------------------------------------------------------


@dataclass
class GlobalExplanation:
    """SHAP values of one target's trees on (a sample of) the rows they learned from, in log(target) units."""

    target: str
    records: int  # training records of the target
    design_rows: int  # records x the unmeasured situations the trees learn from
    values: pd.DataFrame  # explained row x feature
    base_values: np.ndarray  # per row: prior + the trees' average
    matrix: pd.DataFrame  # feature values of those rows
    same_data: bool  # the records are those the model was trained on (else the design only resembles its own)

    @property
    def importance(self) -> pd.Series:
        """Mean |SHAP| per feature, largest first (log units: 0.1 is a typical effect of about 10 %)."""
        return self.values.abs().mean().sort_values(ascending=False)

    def to_dict(self, top: int = 10) -> dict:
        importance = self.importance.head(top)
        return {
            "target": self.target,
            "unit": _learned_unit(self.target),
            "records": self.records,
            "design_rows": self.design_rows,
            "explained_rows": len(self.values),
            "same_data": self.same_data,
            "importance": [
                {
                    "feature": name,
                    "words": feature_words(str(name)),
                    "mean_abs_shap": round(float(v), 5),
                    "typical_effect": round(math.expm1(float(v)), 4),
                }
                for name, v in importance.items()
            ],
        }

    def shap(self, codes: bool = True):
        """A shap.Explanation for shap's plots. Categorical features carry their category codes (positions on a
        dependence plot) or, with codes=False, no value (grey, not a misleading colour, on a beeswarm)."""
        import shap

        numeric = self.matrix.copy()
        for column in _categorical(self.matrix):
            values = self.matrix[column].cat.codes.astype("float64")
            numeric[column] = values.where(values >= 0) if codes else np.nan
        return shap.Explanation(
            values=self.values.to_numpy(),
            base_values=self.base_values,
            data=numeric.to_numpy(dtype="float64"),
            display_data=self.matrix.astype(object).to_numpy(),
            feature_names=[feature_words(c) for c in self.values.columns],
        )


def explain_global(
    bundle, records: pd.DataFrame, target: str, *, sample: int | None = 4000, seed: int = 0
) -> GlobalExplanation:
    """SHAP of a target's trees over the transfer design of its training rows; `sample` design rows at most
    (None or 0: all), drawn with `seed`. Priors are always computed from every training row."""
    import xgboost as xgb

    predictor = _predictor(bundle, target)
    rows, y = training_rows(records, target)
    if len(rows) == 0:
        raise ExplainError(f"no record measures {target}")
    matrix, margin = predictor.transfer_design(rows, np.log(y))
    total = len(matrix)
    if sample and total > sample:
        keep = np.sort(np.random.default_rng(seed).choice(total, sample, replace=False))
        matrix, margin = matrix.iloc[keep].reset_index(drop=True), margin[keep]
    # XGBoost's exact TreeSHAP; its bias column holds the base margin (the prior) plus the trees' average
    values = predictor.booster_.predict(
        xgb.DMatrix(matrix, base_margin=margin, enable_categorical=True), pred_contribs=True
    )
    return GlobalExplanation(
        target,
        len(rows),
        total,
        pd.DataFrame(values[:, :-1].astype("float64"), columns=matrix.columns),
        values[:, -1].astype("float64"),
        matrix,
        same_data=data_hash(records) == bundle.manifest.get("training_data_hash"),
    )


# -- local view --------------------------------------------------------------------------------------------------


@dataclass
class LocalExplanation:
    """Why one record gets its prediction of one target. Log units of what the model learns:
    start + trees_average + contributions.sum() = log(prediction / scale)."""

    target: str
    configuration: str
    record_id: str
    prediction: float  # reported units, with its 90 % interval
    low: float
    high: float
    ood: bool
    measured: bool  # model, accelerator and scenario measured: the prediction is the measured prior
    start: float  # log: the measured newest-round median, or the coarser prior the trees correct
    start_words: str
    trees_average: float  # log: the trees' mean output (0 for measured configurations)
    contributions: pd.Series  # log, by feature (plus `trend` or `cap`), largest |value| first
    phrases: dict[str, str]  # feature -> words with its value
    scale: float  # reported / learned (accelerators for per-accelerator targets)
    unit: str  # of the prediction
    measured_value: float | None = None  # the record's own measurement, for dataset records
    unknown: str | None = None  # why there is no prediction (does not fit; power with no TDP), else None

    @property
    def base(self) -> float:
        return self.start + self.trees_average

    @property
    def log_prediction(self) -> float:
        return self.base + float(self.contributions.sum())

    def reasons(self, limit: int = 5) -> list[str]:
        """The explanation in plain words, largest effects first."""
        if self.unknown is not None:
            return [f"no prediction: {self.unknown}"]
        lines = [f"{self.start_words}: {_number(math.exp(self.start) * self.scale)} {self.unit}"]
        if self.measured:
            lines += [f"{self.phrases[str(n)]}: {_effect(v)}" for n, v in self.contributions.items()]
            lines.append("the trees are not used: the measurements are the prediction")
        else:
            lines.append(f"the trees' average correction: {_effect(self.trees_average)}")
            features = self.contributions.drop([CAP, CONSTRAINT], errors="ignore")
            shown = [n for n in features.index[:limit] if abs(features[n]) >= 0.005]
            lines += [f"{self.phrases[n]}: {_effect(features[n])}" for n in shown]
            rest = features.drop(shown)
            if len(rest):
                lines.append(f"{len(rest)} other features together: {_effect(rest.sum())}")
            lines += [
                f"{self.phrases[term]}: {_effect(self.contributions[term])}"
                for term in (CAP, CONSTRAINT)
                if term in self.contributions
            ]
        measured = f"; measured {_number(self.measured_value)}" if self.measured_value is not None else ""
        lines.append(
            f"= predicted {_number(self.prediction)} {self.unit} (90 % interval {_number(self.low)} – "
            f"{_number(self.high)}){measured}" + (" [out of distribution]" if self.ood else "")
        )
        return lines

    def to_dict(self, limit: int = 10) -> dict:
        top = self.contributions.head(limit)
        return {
            "target": self.target,
            "unit": self.unit,
            "configuration": self.configuration,
            "record_id": self.record_id,
            "prediction": self.prediction,
            "low": self.low,
            "high": self.high,
            "ood": self.ood,
            "measured_configuration": self.measured,
            "measured_value": self.measured_value,
            "start": {"what": self.start_words, "value": math.exp(self.start) * self.scale},
            "trees_average": self.trees_average,
            "contributions": [
                {"feature": n, "words": self.phrases[str(n)], "log_value": float(v), "effect": math.expm1(float(v))}
                for n, v in top.items()
            ],
            "reasons": self.reasons(),
        }

    def shap(self):
        import shap

        return shap.Explanation(
            values=self.contributions.to_numpy(dtype="float64"),
            base_values=self.base,
            feature_names=[self.phrases[n] for n in self.contributions.index],
        )


def explain_configuration(bundle, records: pd.DataFrame, target: str) -> list[LocalExplanation]:
    """One explanation per record the target applies to (records as `configs.config_records` or the dataset hold
    them); records from the dataset also carry their own measured value."""
    from .features import RecordFeaturizer

    predictor = _predictor(bundle, target)
    spec = TARGETS[target]
    frame = RecordFeaturizer.complete(records)
    frame.index = records.index
    frame = frame.loc[spec.mask(frame).to_numpy()]
    if frame.empty:
        return []
    contributions, matrix = predictor.explained(frame)
    matrix = matrix.astype(object).where(matrix.notna(), None)
    learned = predictor.predict(frame)
    # the numbers `predict` returns (physical floors, bounds and consistency applied): the explanation ends there
    constrained = bundle.predict(records.loc[frame.index])
    prediction, low, high = (constrained[f"pred_{target}{end}"].to_numpy(dtype="float64") for end in ("", "_lo", "_hi"))
    unknown = _unknown_reasons(constrained, frame, target)
    scale = spec.scale(frame)
    ood = predictor.out_of_distribution(frame)
    measured_values = spec.values(frame) / scale
    out = []
    for i in range(len(frame)):
        row, values, record = contributions.iloc[i], matrix.iloc[i], frame.iloc[i]
        measured_value = measured_values.iloc[i]
        if bool(row["measured"]):
            start, start_words, terms, phrases = _measured_start(row, values)
            average = 0.0
        else:
            start, start_words = float(row["prior"]), _transfer_start(values)
            features = row.drop(labels=["bias", "prior", "measured"]).astype("float64")
            terms = features.reindex(features.abs().sort_values(ascending=False).index)
            phrases = {name: feature_phrase(name, values[name]) for name in terms.index}
            average = float(row["bias"])
            # a capped correction: the difference to the predictor's output is the cap's doing
            cap = math.log(learned[i]) - (float(row["prior"]) + average + float(terms.sum()))
            if abs(cap) > 1e-4:
                terms[CAP] = cap
                phrases[CAP] = "cap on how far the trees may move a prior"
        moved = math.log(prediction[i] / scale[i]) - math.log(learned[i]) if prediction[i] > 0 else 0.0
        if abs(moved) > 1e-4:
            terms[CONSTRAINT] = moved
            phrases[CONSTRAINT] = CONSTRAINT_WORDS.get(target, "physics and consistency constraints")
        out.append(
            LocalExplanation(
                target,
                _configuration(record),
                str(record["record_id"]),
                float(prediction[i]),
                float(low[i]),
                float(high[i]),
                bool(ood[i]),
                bool(row["measured"]),
                start,
                start_words,
                average,
                terms,
                phrases,
                float(scale[i]),
                _unit(target, bool(record["is_llm"])),
                float(measured_value * scale[i]) if pd.notna(measured_value) else None,
                unknown[i],
            )
        )
    return out


def _unknown_reasons(constrained: pd.DataFrame, frame: pd.DataFrame, target: str) -> list[str | None]:
    """Why a row has no prediction of `target` (the bundle's own flags), else None."""
    reasons: list[str | None] = []
    from .predictors.constraints import unknown_power_reason

    no_flag = pd.Series(False, index=constrained.index)
    unknown = constrained.get(f"unknown_{target}", no_flag).to_numpy(bool)
    for i, (value, fits) in enumerate(zip(constrained[f"pred_{target}"], constrained["fits"])):
        if not bool(fits):
            reasons.append("does not fit: the weights and one sequence's KV cache exceed the accelerators' memory")
        elif unknown[i]:
            reasons.append(unknown_power_reason(frame["accelerator"].iloc[i]))
        elif not value > 0:
            reasons.append("the model predicts none for this configuration")
        else:
            reasons.append(None)
    return reasons


def _measured_start(row: pd.Series, values: pd.Series) -> tuple[float, str, pd.Series, dict[str, str]]:
    """A measured prior, built up: the newest-round median of the broadest matching runs (same model, accelerator
    and scenario), the step to the runs that also share precision (and engine) where those exist, and the per-round
    trend. The steps add up to the prior the predictor uses, which is the most specific of those medians."""
    found = [(level, values[f"latest_{level_name(level)}"]) for level, _ in LEVELS[:MEASURED_LEVELS]]
    found = [(level, float(latest)) for level, latest in found if latest is not None and np.isfinite(latest)]
    broadest, start = found[-1]
    runs = values[f"count_{level_name(broadest)}"]
    words = f"measured: {feature_phrase(f'latest_{level_name(broadest)}', None)} ({_count(runs, 'run')} in all rounds)"
    terms, phrases = {}, {}
    for (level, latest), (coarser, coarser_latest) in zip(found[-2::-1], found[::-1]):
        added = [c for c in level if c not in coarser]
        name = "same_" + "_".join(added)
        terms[name] = latest - coarser_latest
        phrases[name] = "only the runs with " + " and ".join(feature_phrase(c, values[c]) for c in added)
    since = max(0.0, values[f"rounds_since_{level_name(found[0][0])}"] or 0.0)
    terms[TREND] = float(row["prior"]) - found[0][1]
    phrases[TREND] = f"per-round trend of tuned submissions, {_count(since, 'round')} since those runs"
    return start, words, pd.Series(terms, dtype="float64"), phrases


def _transfer_start(values: pd.Series) -> str:
    """In words, where an unmeasured configuration starts: the coarser prior and, where the predictor blends it
    with the roofline siblings, the share of each."""
    words = "never measured, nothing related either: starts from the roofline at the typical efficiency"
    for level, physical in LEVELS[MEASURED_LEVELS:]:
        name = level_name(level)
        latest = values[f"latest_{name}"]
        if latest is not None and np.isfinite(latest):
            words = f"never measured: starts from the {feature_phrase(f'latest_{name}', None)}" + (
                ", scaled by the roofline" if physical else ""
            )
            break
    shares = [(values.get(f"blend_{key}"), phrase) for key, phrase in BLEND_PHRASES]
    shares = [(float(share), phrase) for share, phrase in shares if share is not None and share > 0]
    if not shares or (len(shares) == 1 and shares[0][1] == BLEND_PHRASES[0][1]):
        return words
    return words + "; blended: " + ", ".join(f"{share:.0%} {phrase}" for share, phrase in shares)


# the estimates the predictor blends for an unmeasured configuration (matrix columns blend_<key>)
BLEND_PHRASES = (
    ("prior", "that prior"),
    ("trees", "that prior corrected by the trees"),
    ("sibling", "the same model on the nearest measured part, scaled by the roofline"),
    ("model", "the nearest measured model on this part, scaled by the roofline"),
)


def _configuration(rec: pd.Series) -> str:
    def text(value, missing):
        return str(value) if pd.notna(value) else missing

    return (
        f"{text(rec['accelerators_total'], '?')}x {text(rec['accelerator'], text(rec['accelerator_raw'], '?'))}"
        f" · {rec['model']} · {rec['scenario']} · {text(rec['precision'], 'any precision')} · "
        f"{text(rec['engine'], 'any engine')}"
    )


def _unit(target: str, llm: bool) -> str:
    """The unit of a reported prediction; throughput's depends on the workload."""
    if target == "throughput_per_accelerator":
        return f"{'tokens' if llm else 'samples'}/s per accelerator"
    return TARGETS[target].unit


def _count(n: float, word: str) -> str:
    return f"{n:.0f} {word}{'s' * (round(n) != 1)}"


def _effect(log_value: float) -> str:
    return f"{math.expm1(log_value):+.0%}"


def _number(value: float) -> str:
    return f"{value:,.4g}"


def _categorical(matrix: pd.DataFrame) -> list[str]:
    return [c for c in matrix.columns if isinstance(matrix[c].dtype, pd.CategoricalDtype)]


# -- plots (shap's, saved as PNG when given a path; the figure is returned for notebooks) --------------------------


def waterfall_plot(local: LocalExplanation, path: Path | str | None = None, max_display: int = 10):
    """From the starting point to the prediction, term by term (log units)."""
    import matplotlib.pyplot as plt
    import shap

    plt.figure()
    shap.plots.waterfall(local.shap(), max_display=max_display, show=False)
    fig, ax = plt.gcf(), plt.gcf().axes[0]
    low, high = ax.get_xlim()
    if high - low < 0.02:  # steps of a few tenths of a percent would otherwise fill the axis
        middle = (low + high) / 2
        for axis in fig.axes:  # shap's f(x) and E[f(X)] labels sit on twin axes
            axis.set_xlim(middle - 0.05, middle + 0.05)
    what = "measured" if local.measured else "never measured"
    ax.set_title(
        f"{local.configuration}\n{local.target} ({what}): start "
        f"{_number(math.exp(local.base) * local.scale)} → {_number(local.prediction)} {local.unit}  "
        "(axis: log units)",
        fontsize=9,
        pad=30,
    )
    return _finish(fig, path)


def summary_plot(
    explanation: GlobalExplanation, path: Path | str | None = None, kind: str = "bar", max_display: int = 12
):
    """Mean |SHAP| per feature (`bar`) or every row's SHAP coloured by the feature's value (`beeswarm`)."""
    import matplotlib.pyplot as plt
    import shap

    plt.figure()
    if kind == "bar":
        shap.plots.bar(explanation.shap(), max_display=max_display, show=False)
    elif kind == "beeswarm":
        with warnings.catch_warnings():  # shap takes percentiles of the value-less categorical columns
            warnings.simplefilter("ignore", RuntimeWarning)
            shap.plots.beeswarm(explanation.shap(codes=False), max_display=max_display, show=False)
    else:
        raise ExplainError(f"unknown summary plot '{kind}' (expected bar or beeswarm)")
    fig = plt.gcf()
    fig.axes[0].set_title(
        f"{explanation.target}: SHAP of the trees on {len(explanation.values):,} rows they learned from (log units)",
        fontsize=9,
    )
    return _finish(fig, path)


def dependence_plot(explanation: GlobalExplanation, feature: str, path: Path | str | None = None):
    """SHAP of one feature against its value: how the trees' correction depends on it."""
    import matplotlib.pyplot as plt
    import shap

    if feature not in explanation.values.columns:
        raise ExplainError(f"unknown feature '{feature}' (e.g. {', '.join(explanation.importance.index[:5])})")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    shap.plots.scatter(explanation.shap()[:, list(explanation.values.columns).index(feature)], ax=ax, show=False)
    if feature in _categorical(explanation.matrix):
        levels = explanation.matrix[feature].cat.categories
        present = sorted(set(explanation.matrix[feature].cat.codes) - {-1})
        ax.set_xticks(present)
        ax.set_xticklabels([levels[i] for i in present], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(feature_words(feature))
    ax.set_title(f"{explanation.target}: dependence on {feature_words(feature)}", fontsize=9)
    return _finish(fig, path)


def _finish(fig, path):
    import matplotlib.pyplot as plt

    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return fig
