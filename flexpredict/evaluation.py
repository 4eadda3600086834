"""Evaluation that cannot leak: grouped folds, leave-one-accelerator/model-out, forward in time.

Every split keeps a run group (the -99/-99.9 twins of one run) on one side; test rows are one per run group.
Every predictor is scored on exactly the same test rows, with the same metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from .normalize import is_llm_benchmark
from .predictors import TARGETS, pair_keys
from .predictors.bundle import training_rows
from .predictors.targets import make_predictor

DEFAULT_PREDICTORS = ("xgboost", "lookup-median", "sibling-roofline", "model-roofline", "public-recipe", "roofline")
SPLITS = (
    "forward-v4.1",
    "forward-v5.0",
    "forward-v5.1",
    "grouped-kfold",
    "leave-one-accelerator-out",
    "leave-one-model-out",
    "leave-family-out",
)
HOLDOUT_GROUPS = 5  # accelerators / models held out one at a time: the most measured ones
# accelerator generations held out at once (catalog `family`): a whole new generation arriving
FAMILY_HOLDOUTS = {"blackwell": ("blackwell", "blackwell-ultra"), "mi3xx": ("cdna3", "cdna4"), "hopper": ("hopper",)}
CATEGORIES = ("seen-pair", "new-pair", "new-accelerator", "new-model", "both-new")


@dataclass(frozen=True)
class Fold:
    split: str
    name: str
    train: np.ndarray  # row positions
    test: np.ndarray


def folds(records: pd.DataFrame, split: str, *, kfold: int = 5) -> Iterator[Fold]:
    """Train/test positions of one split over `records` (rows of one target)."""
    groups = records["run_group"].astype(str).to_numpy()
    if split.startswith("forward-"):
        test_round = split.removeprefix("forward-")
        order = _round_order(records["round"])
        cut = order.get(test_round)
        if cut is None:
            return
        rank = records["round"].map(order).to_numpy(dtype="float64")
        train, test = np.flatnonzero(rank < cut), np.flatnonzero(rank == cut)
        if len(train) and len(test):
            yield Fold(split, test_round, train, test)
    elif split == "grouped-kfold":
        k = min(kfold, len(set(groups)))
        for i, (train, test) in enumerate(GroupKFold(n_splits=k).split(records, groups=groups)):
            yield Fold(split, f"fold{i + 1}", train, test)
    elif split in ("leave-one-accelerator-out", "leave-one-model-out"):
        column = "accelerator" if split == "leave-one-accelerator-out" else "model"
        values = records[column].astype("object")
        closed = records["division"] == "closed"
        for held in values[closed].value_counts().index[:HOLDOUT_GROUPS]:
            yield _held_out(split, str(held), (values == held).to_numpy(), groups)
    elif split == "leave-family-out":
        from .catalogs import accelerators

        by_id = accelerators().by_id
        family = records["accelerator"].map(
            lambda a: (by_id.get(a) or {}).get("family") if isinstance(a, str) else None
        )
        for name, members in FAMILY_HOLDOUTS.items():
            held = family.isin(members).to_numpy()
            if held.any():
                yield _held_out(split, name, held, groups)
    else:
        raise ValueError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")


def _held_out(split: str, name: str, held: np.ndarray, groups: np.ndarray) -> Fold:
    """Test on the held rows; train on the others, minus any run group that has a held row."""
    test = np.flatnonzero(held)
    train = np.flatnonzero(~held & ~pd.Series(groups).isin(set(groups[test])).to_numpy())
    return Fold(split, name, train, test)


def categories(test: pd.DataFrame, predictor) -> np.ndarray:
    """What training had measured of each test configuration: its (model, accelerator) pair (seen-pair); both, but
    never together (new-pair); the model on other parts only (new-accelerator); the part with other models only
    (new-model); neither (both-new)."""
    seen = pair_keys(test).isin(set(predictor.seen_pairs_)).to_numpy()
    known_model = test["model"].astype("object").isin(set(predictor.seen_models_)).to_numpy()
    known_part = test["accelerator"].astype("object").isin(set(predictor.seen_accelerators_)).to_numpy()
    return np.select(
        [seen, known_model & known_part, known_model, known_part],
        ["seen-pair", "new-pair", "new-accelerator", "new-model"],
        "both-new",
    )


def metrics(y: np.ndarray, pred: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict:
    """MdAPE, MAPE, share within 10 % / 25 %, signed bias (median of pred/y - 1), interval coverage."""
    ok = np.isfinite(pred) & np.isfinite(y) & (y > 0)
    if not ok.any():
        return {"n": 0}
    error = pred[ok] / y[ok] - 1
    ape = np.abs(error)
    covered = (y[ok] >= lo[ok]) & (y[ok] <= hi[ok])
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(hi[ok] / lo[ok])  # the interval as x/÷ a factor around its geometric centre
    return {
        "n": int(ok.sum()),
        "mdape": float(np.median(ape)),
        "mape": float(np.mean(ape)),
        "within_10": float(np.mean(ape <= 0.10)),
        "within_25": float(np.mean(ape <= 0.25)),
        "bias": float(np.median(error)),
        "coverage": float(np.mean(covered)),
        "width": float(np.median(width)) if np.isfinite(width).any() else float("nan"),
        "missing": int((~ok).sum()),
    }


def evaluate(
    records: pd.DataFrame,
    *,
    targets: list[str],
    splits: list[str] | None = None,
    predictors: tuple[str, ...] = DEFAULT_PREDICTORS,
    params: dict | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics table, per-row test predictions) for every target x split x predictor x subset."""
    jobs = []
    for target in targets:
        rows, y = training_rows(records, target)
        for split in splits or SPLITS:
            for fold in folds(rows, split):
                jobs.append((target, rows, y, fold))
    results, predictions = [], []
    total = len(jobs) * len(predictors)
    done = 0
    for target, rows, y, fold in jobs:
        train = rows.iloc[fold.train].reset_index(drop=True)
        test = rows.iloc[fold.test].drop_duplicates("run_group")
        test_y = y[test.index.to_numpy()]
        test = test.reset_index(drop=True)
        for name in predictors:
            if on_progress:
                on_progress(done, total, f"{target} {fold.split} {fold.name} {name}")
            done += 1
            if len(train) < 20 or len(test) == 0:
                continue
            predictor = make_predictor(name, TARGETS[target], (params or {}).get(name))
            predictor.fit(train, y[fold.train])
            pred, lo, hi = predictor.predict_interval(test)
            category = categories(test, predictor)
            llm = test["benchmark"].map(lambda b: is_llm_benchmark(b) if isinstance(b, str) else False).to_numpy()
            closed = (test["division"].astype("object") == "closed").to_numpy()
            predictions.append(
                pd.DataFrame(
                    {
                        "target": target,
                        "split": fold.split,
                        "fold": fold.name,
                        "predictor": name,
                        "record_id": test["record_id"].to_numpy(),
                        "y": test_y,
                        "pred": pred,
                        "lo": lo,
                        "hi": hi,
                        "seen_pair": category == "seen-pair",
                        "category": category,
                        "llm": llm,
                        "closed": closed,
                    }
                )
            )
    if on_progress:
        on_progress(total, total, "done")
    table = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    for (target_name, split_name, predictor_name), part in (
        table.groupby(["target", "split", "predictor"], sort=False) if len(table) else []
    ):
        for subset, mask in _subsets(part).items():
            if mask.any():
                row = metrics(
                    part["y"].to_numpy()[mask],
                    part["pred"].to_numpy()[mask],
                    part["lo"].to_numpy()[mask],
                    part["hi"].to_numpy()[mask],
                )
                results.append(
                    {"target": target_name, "split": split_name, "predictor": predictor_name, "subset": subset, **row}
                )
    return pd.DataFrame(results), table


def _subsets(part: pd.DataFrame) -> dict[str, np.ndarray]:
    """all / llm / non-llm, each split into seen and unseen pairs, and the LLM rows per category (closed division:
    tuned submissions, the situation a user's question is in)."""
    llm, seen = part["llm"].to_numpy(dtype=bool), part["seen_pair"].to_numpy(dtype=bool)
    subsets = {
        "all": np.ones(len(part), dtype=bool),
        "llm": llm,
        "llm-seen-pair": llm & seen,
        "llm-unseen-pair": llm & ~seen,
        "non-llm": ~llm,
        "non-llm-seen-pair": ~llm & seen,
        "non-llm-unseen-pair": ~llm & ~seen,
    }
    closed, category = part["closed"].to_numpy(dtype=bool), part["category"].to_numpy()
    for name in CATEGORIES:
        subsets[f"llm-closed-{name}"] = llm & closed & (category == name)
    return subsets


def _round_order(rounds: pd.Series) -> dict[str, int]:
    def key(value: str):
        try:
            return tuple(int(p) for p in str(value).lstrip("v").split("."))
        except ValueError:
            return (10**6,)

    ordered = sorted({str(r) for r in rounds.dropna()}, key=key)
    return {r: i for i, r in enumerate(ordered)}


def parity_plot(table: pd.DataFrame, target: str, split: str, path) -> None:
    """Measured vs predicted (log-log), one panel per predictor, the 90 % intervals as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = table[(table["target"] == target) & (table["split"] == split)]
    names = list(dict.fromkeys(part["predictor"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = part[part["predictor"] == name]
        ok = np.isfinite(rows["pred"]) & (rows["y"] > 0)
        rows = rows[ok]
        ax.errorbar(
            rows["y"],
            rows["pred"],
            yerr=[rows["pred"] - rows["lo"], rows["hi"] - rows["pred"]],
            fmt="none",
            ecolor="0.85",
            lw=0.5,
            zorder=1,
        )
        ax.scatter(rows["y"], rows["pred"], s=6, c=np.where(rows["seen_pair"], "tab:blue", "tab:red"), zorder=2)
        low, high = rows[["y", "pred"]].min().min(), rows[["y", "pred"]].max().max()
        if np.isfinite(low) and low > 0:
            ax.plot([low, high], [low, high], "k--", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
        mdape = np.median(np.abs(rows["pred"] / rows["y"] - 1)) if len(rows) else np.nan
        ax.set_title(f"{name}: MdAPE {mdape:.1%} (n={len(rows)})", fontsize=9)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
    fig.suptitle(f"{target} — {split} (blue: seen model+accelerator, red: unseen)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
