"""Backend `replay`: a held dataset answers each "measurement" with its record of that configuration.

The whole loop (propose, measure, append, refit) then runs on real measurements without hardware, which is how
acquisitions are compared (experiments/active_learning.py). A configuration is the campaign's parameters, which
must be record columns; where the held data has several runs of one, the newest round's run closest to their median
answers, always the same one. `base` is what the predictor knows beforehand: records matching a filter, or
`rest`, every record outside the pool (a new accelerator: everything measured on other parts). `holdout` keeps a
share of the configurations out of reach: never measured, they give the honest prediction error.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ... import dataset
from ...io import plain
from ...predictors.targets import TARGETS
from ...schema import BY_NAME, METRIC_COLUMNS, conform
from ..candidates import config_key, plain_frame
from ..definition import CampaignError
from .base import Measurement, MeasurementBackend, register

WORKLOAD = (
    "target_qps",
    "tensor_parallel",
    "max_num_seqs",
    "max_num_batched_tokens",
    "input_tokens_mean",
    "output_tokens_mean",
)
"""Record columns only a measurement knows (the QPS a submitter ran at is close to the result): blank before."""


@register
class ReplayBackend(MeasurementBackend):
    name = "replay"
    options = frozenset({"dataset", "pool", "base", "holdout", "seconds_per_run", "delay_s"})

    def __init__(self, campaign, workdir: Path):
        super().__init__(campaign, workdir)
        opts = campaign.backend_options
        source = opts.get("dataset", "shipped")
        try:
            records = dataset.load(None if source == "shipped" else Path(source))
        except ValueError as exc:
            raise CampaignError(f"backend.dataset: {exc}") from None
        for name in campaign.parameter_names:
            if name not in BY_NAME:
                raise CampaignError(
                    f"space.{name}: the replay backend matches parameters to record columns; '{name}' is not one"
                )
        in_pool = _where(records, opts.get("pool") or {}, "backend.pool")
        metric = campaign.objective.metric
        values = pd.to_numeric(records[metric], errors="coerce")
        scenarios = TARGETS[metric].scenarios if metric in TARGETS else None  # where the metric is defined
        pool = records[in_pool & (values > 0) & (records["scenario"].isin(scenarios) if scenarios else True)]
        for p in campaign.space:
            if p.values:
                pool = pool[pool[p.name].astype("object").map(plain).isin(list(p.values))]
        if pool.empty:
            raise CampaignError(f"backend.pool: no record with a {metric} value matches")
        pool = _representatives(pool, campaign.parameter_names, metric)
        holdout = float(opts.get("holdout", 0.0))
        if not 0 <= holdout < 1:
            raise CampaignError(f"backend.holdout: expected a fraction from 0 to below 1, got {holdout}")
        held = np.random.default_rng(campaign.seed).random(len(pool)) < holdout
        self.pool, self.held = pool[~held].reset_index(drop=True), pool[held].reset_index(drop=True)
        self.keys = {
            config_key(row): i
            for i, row in enumerate(plain_frame(self.pool[list(campaign.parameter_names)]).to_dict("records"))
        }
        base = opts.get("base")
        if base == "rest":  # a new part: everything measured anywhere else
            self.base = records[~in_pool]
        else:
            self.base = records[_where(records, base, "backend.base") & ~in_pool] if base else records.iloc[:0]
        self.seconds_per_run = float(opts.get("seconds_per_run", 1200))
        self.delay_s = float(opts.get("delay_s", 0))

    def candidates(self) -> pd.DataFrame:
        return plain_frame(self.pool[list(self.campaign.parameter_names)])

    def describe(self, candidates: pd.DataFrame) -> pd.DataFrame:
        rows = [self.keys[config_key(row)] for row in candidates.to_dict("records")]
        known = self.pool.iloc[rows].copy()
        blank = [c for c in (*METRIC_COLUMNS, *WORKLOAD) if c not in self.campaign.parameter_names]
        for column in blank + ["round"]:
            known[column] = None
        return conform(known)

    def measure(self, params: dict, run_dir: Path) -> Measurement:
        time.sleep(self.delay_s)
        row = self.keys.get(config_key(params))
        if row is None:
            return Measurement(None, failure=f"the held dataset has no record of {params}")
        record = {k: plain(v) for k, v in self.pool.iloc[row].items()}
        return Measurement(record, seconds=self.seconds_per_run, accelerators=int(record["accelerators_total"] or 1))

    def base_records(self) -> pd.DataFrame:
        return conform(self.base)

    def evaluation_records(self) -> pd.DataFrame | None:
        return conform(self.held) if len(self.held) else None


def _where(records: pd.DataFrame, filters, where: str) -> pd.Series:
    """Rows matching every `column: value` (or list of values) of a filter mapping."""
    if not isinstance(filters, dict):
        raise CampaignError(f"{where}: expected a mapping of record column -> value or list of values")
    mask = pd.Series(True, index=records.index)
    for column, wanted in filters.items():
        if column not in records.columns:
            raise CampaignError(f"{where}.{column}: not a record column")
        wanted = wanted if isinstance(wanted, list) else [wanted]
        mask &= records[str(column)].astype("object").map(plain).isin(wanted)
    return mask


def _representatives(pool: pd.DataFrame, parameters: tuple[str, ...], metric: str) -> pd.DataFrame:
    """One run per configuration: the newest round's run closest to that round's median (ties: record id)."""
    frame = pool.assign(
        _key=[config_key(row) for row in plain_frame(pool[list(parameters)]).to_dict("records")],
        _log=np.log(pd.to_numeric(pool[metric], errors="coerce")),
    )
    newest = frame.groupby("_key")["round"].transform("max")
    frame = frame[frame["round"] == newest]
    frame = frame.assign(_gap=(frame["_log"] - frame.groupby("_key")["_log"].transform("median")).abs())
    frame = frame.sort_values(["_key", "_gap", "record_id"]).drop_duplicates("_key")
    return frame.drop(columns=["_key", "_log", "_gap"]).sort_values("record_id").reset_index(drop=True)
