"""Measured priors: the median log-target of records sharing a configuration's identity.

The XGBoost predictor starts from the most specific prior available (same model, accelerator, scenario, precision
and engine; then coarser) and learns the correction from physics and software features. In training each row's
prior leaves out its own run group (and later rounds), exactly as a configuration nobody measured would see it.

Levels that fix both model and accelerator compare like with like and use the measured values as they are. The
coarser levels reach across accelerators or models, where raw numbers do not transfer: they use the efficiency
(log value minus the physics offset, i.e. the roofline in the target's direction), which does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# (columns, uses the physics offset)
LEVELS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("model", "accelerator", "scenario", "precision", "engine"), False),
    (("model", "accelerator", "scenario", "precision"), False),
    (("model", "accelerator", "scenario"), False),
    (("model", "accelerator"), False),
    # a known model on another part: its efficiency with the same engine on the same generation (B200 for a B300),
    # then anywhere
    (("model", "scenario", "precision", "engine", "acc_family"), True),
    (("model", "scenario", "engine", "acc_family"), True),
    (("model", "scenario"), True),
    # a new model on a known part: the part's efficiency with models of the same kind and build (dense / MoE)
    (("accelerator", "scenario", "model_kind"), True),
)


def level_name(level: tuple[str, ...]) -> str:
    return "_".join(level)


def keys(records: pd.DataFrame, level: tuple[str, ...], offset: np.ndarray | None = None) -> pd.Series:
    """Group keys of one level; with an offset, rows with and without physics never share a group."""
    parts = [records[c].astype("object").where(records[c].notna(), "?").astype(str) for c in level]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    if offset is not None:
        prefix: pd.Series = pd.Series(np.where(np.isfinite(offset), "eff|", "raw|"), index=records.index)
        key = prefix + key
    return key


def _shift(offset: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(offset), offset, 0.0)


class PriorTables:
    """Per-level medians of log-targets (robust to the odd open-division run), with leave-one-run-group-out
    medians for training rows, the newest round's median, and the per-round trend."""

    def __init__(
        self,
        tables: dict[str, dict[str, list[float]]] | None = None,
        trend: float = 0.0,
        newest_round: float = float("nan"),
    ):
        self.tables = tables or {}  # level -> key -> [median, count, newest-round median, newest round]
        self.trend = trend  # log-change per round of the same configuration (software and tuning improve)
        self.newest_round = newest_round

    @classmethod
    def fit(cls, records: pd.DataFrame, log_y: np.ndarray, offset: np.ndarray) -> PriorTables:
        tables = {}
        rounds = records["round_index"].to_numpy(dtype="float64")
        for level, physical in LEVELS:
            key = keys(records, level, offset if physical else None).to_numpy()
            values = log_y - _shift(offset) if physical else log_y
            prior, count, latest, latest_round = _summaries(
                key, np.zeros(len(key), dtype=object), values, rounds, leave_out=False
            )
            tables[level_name(level)] = {
                k: [prior[i], count[i], latest[i], latest_round[i]] for k, i in zip(*np.unique(key, return_index=True))
            }
        newest = float(np.nanmax(rounds)) if np.isfinite(rounds).any() else float("nan")
        # the trend of tuned closed-division submissions; open-division sweeps of fixed edge setups have none
        closed = (records["division"] == "closed").to_numpy()
        trend = _trend(keys(records, LEVELS[2][0]).to_numpy()[closed], rounds[closed], log_y[closed])
        return cls(tables, trend, newest)

    def features(
        self,
        records: pd.DataFrame,
        offset: np.ndarray,
        log_y: np.ndarray | None = None,
        leave_out: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Per level: prior_ (median), count_, latest_ (newest round's median) and rounds_since_ (rounds since that
        measurement) per record. With log_y (training rows), each row's `leave_out` group (default: its run group)
        and every later round are left out."""
        out = pd.DataFrame(index=records.index)
        rounds = records["round_index"].to_numpy(dtype="float64")
        now = np.where(np.isnan(rounds), self.newest_round, rounds)  # no round: as of the newest data
        groups = leave_out if leave_out is not None else records["run_group"].astype(str).to_numpy()
        for level, physical in LEVELS:
            name = level_name(level)
            key = keys(records, level, offset if physical else None)
            if log_y is None:
                table = self.tables[name]
                found = np.array([table.get(k, _MISSING) for k in key], dtype="float64").reshape(-1, 4)
                prior, count, latest, latest_round = found.T
            else:
                values = log_y - _shift(offset) if physical else log_y
                prior, count, latest, latest_round = _summaries(key.to_numpy(), groups, values, rounds, leave_out=True)
            out["prior_" + name] = prior
            out["count_" + name] = count
            out["latest_" + name] = latest
            out["rounds_since_" + name] = now - latest_round
        return out

    def margin(self, features: pd.DataFrame, offset: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """The most specific newest-round prior available per row, moved on by the per-round trend for the rounds
        since it was measured (efficiency levels converted back by the offset); else `fallback`."""
        margin = np.full(len(features), np.nan)
        for level, physical in LEVELS:
            name = level_name(level)
            since = np.clip(np.nan_to_num(features["rounds_since_" + name].to_numpy(), nan=0.0), 0, None)
            values = features["latest_" + name].to_numpy() + self.trend * since
            if physical:
                values = values + _shift(offset)
            margin = np.where(np.isnan(margin), values, margin)
        return np.where(np.isnan(margin), fallback, margin)


_MISSING = (np.nan, 0.0, np.nan, np.nan)


def _trend(key: np.ndarray, rounds: np.ndarray, y: np.ndarray) -> float:
    """Median per-round log-change of the same configuration between consecutive measured rounds."""
    frame = pd.DataFrame({"key": key, "round": rounds, "y": y}).dropna()
    medians = frame.groupby(["key", "round"])["y"].median().reset_index().sort_values(["key", "round"])
    step = medians.groupby("key")["round"].diff()
    change = medians.groupby("key")["y"].diff() / step
    change = change[step > 0]
    return float(np.median(change)) if len(change) >= 5 else 0.0


def _summaries(key, group, y, rounds, *, leave_out: bool):
    """Per row: median and count of y over rows with the same key (and another run group when leave_out), and
    the median of the most recent round among them with that round's index."""
    n = len(y)
    prior, count = np.full(n, np.nan), np.zeros(n)
    latest, latest_round = np.full(n, np.nan), np.full(n, np.nan)
    rounds = np.where(np.isnan(rounds), -1.0, rounds)
    frame = pd.DataFrame({"key": key, "group": group})
    for _, index in frame.groupby("key", sort=False).indices.items():
        groups, values, when = group[index], y[index], rounds[index]
        for g in set(groups) if leave_out else {None}:
            if leave_out:  # other run groups, and nothing from a later round than this row's
                mine = index[groups == g]
                others = (groups != g) & (when <= when[groups == g].max())
            else:
                mine, others = index, np.ones(len(index), dtype=bool)
            if not others.any():
                continue
            newest = when[others].max()
            prior[mine] = np.median(values[others])
            count[mine] = others.sum()
            latest[mine] = np.median(values[others & (when == newest)])
            latest_round[mine] = newest if newest >= 0 else np.nan
    return prior, count, latest, latest_round
