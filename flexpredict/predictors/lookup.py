"""Baseline: the median of measured records of the same model, accelerator and scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Predictor, register

_LEVELS = (
    ("model", "accelerator", "scenario", "precision"),
    ("model", "accelerator", "scenario"),
    ("model", "scenario"),
    ("model",),
)


@register
class LookupMedianPredictor(Predictor):
    """What an analyst does by hand with MLPerf tables: look up the same model on the same accelerator in the same
    scenario and take the median. Unseen combinations fall back to coarser groups (model + scenario, then model)
    so every row gets a number; the interval says how much that is worth."""

    name = "lookup-median"

    def _fit_log(self, records: pd.DataFrame, log_y: np.ndarray) -> None:
        frame = self._keys(records).assign(y=log_y)
        self.tables_ = [
            {_key(k): float(v) for k, v in frame.groupby(list(level))["y"].median().items()} for level in _LEVELS
        ]
        self.global_ = float(np.median(log_y))

    def _predict_log(self, records: pd.DataFrame) -> np.ndarray:
        frame = self._keys(records)
        out = np.full(len(frame), self.global_)
        found = np.zeros(len(frame), dtype=bool)
        for level, table in zip(_LEVELS, self.tables_):
            keys = [_key(k) for k in frame[list(level)].itertuples(index=False, name=None)]
            values = np.array([table.get(k, np.nan) for k in keys])
            take = ~found & np.isfinite(values)
            out[take] = values[take]
            found |= take
        return out

    @staticmethod
    def _keys(records: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                c: records[c].astype("object").where(records[c].notna(), "?").astype(str)
                for c in ("model", "accelerator", "scenario", "precision")
            },
            index=records.index,
        )

    def _state(self, folder) -> dict:
        return {"tables": self.tables_, "global": self.global_}

    def _restore(self, state: dict, folder) -> None:
        self.tables_, self.global_ = state["tables"], state["global"]


def _key(parts) -> str:
    return "|".join(parts) if isinstance(parts, tuple) else str(parts)
