"""The configurations a campaign may measure: one row per configuration, with what Optuna and the acquisitions need.

Candidates are finite (the backend lists them: a grid of engine knobs, or the configurations a held dataset holds),
so a configuration has a stable key, "already taken" is a set lookup, and any proposal (TPE's, GP's) is snapped to
the nearest candidate nobody holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..io import plain
from .definition import CampaignError, Parameter


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with Python values (None for missing) in object columns: what Optuna stores and keys compare."""
    rows = [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return pd.DataFrame(rows, columns=frame.columns, dtype=object)


def param_column(name: str) -> str:
    """The record column holding a search-space parameter's value (records may also have a column of that name)."""
    return f"param_{name}"


def config_key(params: dict) -> str:
    """A configuration's identity: the same for 8 and 8.0, whatever the order of the parameters."""
    return json.dumps(
        {
            k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
            for k, v in sorted(params.items())
        },
        sort_keys=True,
    )


class CandidateSet:
    """Candidate configurations (`frame`: one column per parameter) and their schema records as known before
    measuring (`records`, same order)."""

    def __init__(self, space: tuple[Parameter, ...], frame: pd.DataFrame, records: pd.DataFrame):
        if frame.empty:
            raise CampaignError("space: the backend offers no candidate configuration")
        self.space = space
        self.frame = plain_frame(frame[[p.name for p in space]])
        self.records = records.reset_index(drop=True)
        self.keys = [config_key(row) for row in self.frame.to_dict("records")]
        self.index = {key: i for i, key in enumerate(self.keys)}
        if len(self.index) != len(self.keys):
            raise CampaignError("space: the backend lists a configuration twice")
        self.distributions: dict[str, BaseDistribution] = {}
        self._positions: list[np.ndarray] = []
        self._log_similarity: list[float] = []
        self._span: list[tuple[Callable | None, float, float, bool]] = []  # (scale, low, width, ordered)
        for p in space:
            column = self.frame[p.name]
            values = sorted(set(column), key=_order)
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                log = p.log and values[0] > 0
                integer = all(float(v).is_integer() and isinstance(v, int) for v in values)
                low, high = values[0], values[-1]
                if low == high:
                    self.distributions[p.name] = CategoricalDistribution([low])
                elif integer:
                    self.distributions[p.name] = IntDistribution(int(low), int(high), log=log)
                else:
                    self.distributions[p.name] = FloatDistribution(float(low), float(high), log=log)
                rank = {v: i for i, v in enumerate(values)}
                self._positions.append(column.map(rank).to_numpy(dtype="float64"))
                scale = np.log if log else (lambda x: x)
                self._span.append((scale, float(scale(low)), float(scale(high) - scale(low)) or 1.0, True))
            else:
                self.distributions[p.name] = CategoricalDistribution(values)
                rank = {repr(v): i for i, v in enumerate(values)}
                self._positions.append(np.array([rank[repr(v)] for v in column], dtype="float64"))
                self._span.append((None, 0.0, 1.0, False))
            self._log_similarity.append(math.log(p.similarity) if p.similarity > 0 else -math.inf)

    def __len__(self) -> int:
        return len(self.keys)

    def params(self, i: int) -> dict:
        return self.frame.iloc[[int(i)]].to_dict("records")[0]

    def position(self, params: dict) -> int | None:
        return self.index.get(config_key(params))

    def nearest(self, params: dict, allowed: np.ndarray) -> int:
        """The allowed candidate closest to `params` (numbers by their normalised, log where set, distance;
        categories by mismatch): where a proposal from TPE or GP lands when it is not a free candidate."""
        distance = np.zeros(len(allowed))
        for p, (scale, low, width, numeric) in zip(self.space, self._span):
            column = self.frame[p.name].to_numpy()[allowed]
            value = params.get(p.name)
            if numeric and scale is not None and isinstance(value, (int, float)):
                mine = (float(scale(value)) - low) / width
                theirs = (np.array([scale(v) for v in column], dtype="float64") - low) / width
                distance += np.abs(theirs - mine)
            else:
                distance += np.array([repr(v) != repr(value) for v in column], dtype="float64")
        return int(allowed[int(np.argmin(distance))])

    def similarity(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """K[i, j] = product over parameters of similarity ** steps between candidates rows[i] and cols[j] (steps:
        1 for another category, the number of values apart for ordered numbers)."""
        log_k = np.zeros((len(rows), len(cols)))
        for positions, log_s, (_, _, _, numeric) in zip(self._positions, self._log_similarity, self._span):
            steps = positions[rows][:, None] - positions[cols][None, :]
            steps = np.abs(steps) if numeric else (steps != 0).astype("float64")
            if np.isinf(log_s):
                log_k = np.where(steps > 0, -np.inf, log_k)
            else:
                log_k += steps * log_s
        return np.exp(log_k)


def similarity_between(space: tuple[Parameter, ...], rows: pd.DataFrame, cols: pd.DataFrame) -> np.ndarray:
    """K[i, j] = product over parameters of similarity ** steps between configurations rows[i] and cols[j], for any
    configurations (held-out ones too, not only candidates): steps are the number of doublings apart for a `log`
    number, the difference for another number, 1 for another category."""
    log_k = np.zeros((len(rows), len(cols)))
    for p in space:
        a, b = ([plain(v) for v in frame[p.name]] for frame in (rows, cols))
        x, y = (pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy(dtype="float64") for v in (a, b))
        if np.isfinite(x).all() and np.isfinite(y).all() and (not p.log or (min(x.min(), y.min()) > 0)):
            scale = np.log2 if p.log else (lambda v: v)
            steps = np.abs(scale(x)[:, None] - scale(y)[None, :])
        else:
            steps = (np.array(a, dtype=str)[:, None] != np.array(b, dtype=str)[None, :]).astype("float64")  # None alike
        if p.similarity == 0:
            log_k = np.where(steps > 0, -np.inf, log_k)
        else:
            log_k += steps * math.log(p.similarity)
    return np.exp(log_k)


def grid(space: tuple[Parameter, ...]) -> pd.DataFrame:
    """Every combination of the parameters' values (a backend whose candidates are the whole space)."""
    for p in space:
        if not p.values:
            raise CampaignError(f"space.{p.name}.values: this backend needs the values listed")
    index = pd.MultiIndex.from_product([list(p.values) for p in space], names=[p.name for p in space])
    return index.to_frame(index=False)


def _order(value):
    """Sort numbers by value, everything else by text, None first."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))
