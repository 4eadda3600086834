"""One campaign worker: propose -> measure -> append -> refit, until the budget is spent.

Any number of workers (processes, machines) may run one campaign against one storage: each asks the study for its
next trial under the proposal lock (so the budget holds and no configuration is taken twice), measures it while
beating its heartbeat, stores the record in the trial (the storage is the source of truth every worker learns from)
and appends it to its local dataset file. A worker refits its surrogate whenever `batch_size` more measurements
have finished since its last fit; until then its acquisition treats the configurations taken meanwhile as pending.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from .. import dataset
from ..io import plain
from .acquisition import Context, create_sampler
from .backends import Measurement, create_backend
from .candidates import CandidateSet
from .definition import Campaign
from .study import (
    Heartbeat,
    constraint_values,
    default_storage,
    fail_stale_trials,
    file_lock,
    measured_records,
    open_storage,
    open_study,
    proposal_lock,
    spending,
    with_parameters,
)

RECORDS_FILE = "records.parquet"
TRANSFER_CACHE = "transfer-predictors"
"""Beside the campaign folders: fitted transfer predictors, shared by every campaign over the same base records."""
MAX_WAIT_S = 5.0


def campaign_dir(campaign: Campaign, root: Path | None = None) -> Path:
    """Where a campaign keeps its SQLite study, dataset and run folders: runs/campaigns/<name>."""
    return Path(root or Path("runs") / "campaigns") / campaign.name


@dataclass
class Outcome:
    trials: int
    reason: str


class Worker:
    """Runs trials of one campaign; construct once per process."""

    def __init__(
        self,
        campaign: Campaign,
        *,
        storage: str | None = None,
        workdir: Path | None = None,
        seed: int | None = None,
        refit_at: tuple[int, ...] | None = None,
    ):
        """`refit_at`: refit when that many measurements are done (e.g. 1, 2, 4, 8: a batch that doubles), instead of
        every `batch_size`."""
        self.campaign = campaign
        self.refit_at = refit_at
        self.workdir = Path(workdir or campaign_dir(campaign))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.url = storage or campaign.storage or default_storage(self.workdir)
        self.storage = open_storage(self.url, campaign)
        self.backend = create_backend(campaign, self.workdir)
        frame = self.backend.candidates()
        self.candidates = CandidateSet(campaign.space, frame, self.backend.describe(frame))
        self.context = Context(self.candidates, campaign.objective)
        self.sampler = create_sampler(campaign, self.context, seed)
        self.study = open_study(campaign, self.storage, self.sampler)
        from .surrogate import make_surrogate  # the predictors (scikit-learn): not for `campaign status`

        self.surrogate = make_surrogate(campaign, self.workdir.parent / TRANSFER_CACHE)
        self.held_out = self.backend.evaluation_records()
        self.evaluation: dict | None = None
        """The latest fit's held-out error (`held_out_error` and the measurements it learned from)."""
        self.base = with_parameters(self.backend.base_records(), campaign.parameter_names)
        self.dataset = self.workdir / RECORDS_FILE
        self.fitted_on = -1
        with proposal_lock(self.storage, campaign.name):
            self._queue_initial()

    def run(
        self,
        max_trials: int | None = None,
        *,
        on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
        on_fit: Callable[[Worker], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> Outcome:
        """Work until the budget is spent, every candidate is taken, or `max_trials` trials ran here."""
        done = 0
        try:
            while max_trials is None or done < max_trials:
                fail_stale_trials(self.study)  # a dead worker's trial: failed now, queued once more by the callback
                trials = self.study.get_trials(deepcopy=False)
                if self._blocked(trials) is None and self._refit_due(trials):
                    self.refit(trials)
                    if on_fit:
                        on_fit(self)
                with proposal_lock(self.storage, self.campaign.name):
                    why = self._blocked(self.study.get_trials(deepcopy=False))
                    trial = None if why else self._ask()
                if trial is not None:
                    frozen = self._measure(trial)
                    done += 1
                    if on_trial:
                        on_trial(frozen)
                elif why and why.startswith("wait"):
                    if on_wait:
                        on_wait(why)
                    time.sleep(min(self.campaign.heartbeat_interval, MAX_WAIT_S))
                else:
                    return Outcome(done, str(why))
            return Outcome(done, f"ran the {max_trials} trial(s) asked for")
        finally:
            self.backend.close()

    def refit(self, trials=None) -> None:
        """Fit the surrogate on the base records and every measurement in the storage; predict every candidate."""
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        self.surrogate.fit(self.base, measured_records(trials, self.campaign.parameter_names))
        self.context.predictions = self.surrogate.predict(self.candidate_records())
        self.context.fitted = frozenset(t.number for t in trials if t.state == TrialState.COMPLETE)
        self.fitted_on = len(self.context.fitted)
        if self.held_out is not None:  # `campaign status` shows it without fitting anything itself
            self.evaluation = {"measurements": self.fitted_on, **self.held_out_error()}
            self.study.set_user_attr("held_out", self.evaluation)

    def held_out_error(self) -> dict:
        """MdAPE and 90 % interval coverage of the objective metric on the backend's held-out records, from the
        latest fit."""
        metric = self.campaign.objective.metric
        if self.held_out is None:
            return {"mdape": None, "coverage": None, "records": 0}
        predicted = self.surrogate.predict(with_parameters(self.held_out, self.campaign.parameter_names))
        truth = pd.to_numeric(self.held_out[metric], errors="coerce").to_numpy(dtype="float64")
        pred, lo, hi = (predicted[c].to_numpy(dtype="float64") for c in (metric, f"{metric}_lo", f"{metric}_hi"))
        ok = np.isfinite(pred) & np.isfinite(truth)
        if not ok.any():
            return {"mdape": None, "coverage": None, "records": 0}
        return {
            "mdape": float(np.median(np.abs(pred[ok] / truth[ok] - 1))),
            "coverage": float(np.mean((lo[ok] <= truth[ok]) & (truth[ok] <= hi[ok]))),
            "records": int(ok.sum()),
        }

    def candidate_records(self) -> pd.DataFrame:
        return with_parameters(self.candidates.records, self.campaign.parameter_names, self.candidates.frame)

    # -- one trial -------------------------------------------------------------------------------------------------

    def _refit_due(self, trials) -> bool:
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        if self.fitted_on < 0:
            return True
        if self.refit_at is not None:
            return any(self.fitted_on < n <= complete for n in self.refit_at)
        return complete >= self.fitted_on + self.campaign.batch_size

    def _blocked(self, trials) -> str | None:
        """Why no trial can start now ('wait: ...' while running trials may still free one), None when one can."""
        running = sum(t.state == TrialState.RUNNING for t in trials)
        spent = spending(trials).exhausted(self.campaign)
        queued = any(t.state == TrialState.WAITING for t in trials)
        if spent or (not queued and self.context.holdings(trials)[0].all()):
            if running:  # they may finish, or be found dead and queued again
                return f"wait: {running} trial(s) running elsewhere"
            return spent or "every candidate configuration is measured"
        return None

    def _ask(self) -> optuna.Trial:
        """Under the proposal lock: the next trial (queued first, else the acquisition's choice), its parameters
        written, labelled with where it came from and what the predictor expected of it."""
        with warnings.catch_warnings():  # "heartbeat is meant for optimize()": this worker beats itself
            warnings.simplefilter("ignore", UserWarning)
            trial = self.study.ask(dict(self.candidates.distributions))
        # beating from its first moment: a worker killed before it measures leaves a trial that goes stale and is
        # retried, not one with no heartbeat that Optuna never finds dead (every other worker would wait forever)
        self.storage.record_heartbeat(trial._trial_id)
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        # RetryHeartbeatStaleTrialCallback marks the copy it queues with the number of the trial that died
        label = "retry" if "failed_trial" in frozen.system_attrs else trial.user_attrs.get("acquisition")
        trial.set_user_attr("acquisition", label or self.sampler.name)
        position = self.candidates.position(trial.params)
        if self.context.predictions is not None and position is not None:
            row = self.context.predictions.iloc[position]
            predicted = {
                m: [plain(row[m]), plain(row[f"{m}_lo"]), plain(row[f"{m}_hi"])]
                for m in self.campaign.metrics()
                if plain(row[m]) is not None
            }
            if predicted:
                trial.set_user_attr("predicted", predicted)
        return trial

    def _measure(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        run_dir = self.workdir / f"trial-{trial.number:04d}"
        with Heartbeat(self.storage, trial._trial_id):
            try:
                measurement = self.backend.measure(dict(trial.params), run_dir)
            except Exception as exc:  # a bug, not a failed run: recorded, then raised (an interrupt is not caught:
                # the trial stays running, is found dead after the grace period and retried)
                trial.set_user_attr("failure", f"internal error: {type(exc).__name__}: {exc}")
                self.study.tell(trial, state=TrialState.FAIL)
                raise
        hours = measurement.seconds * measurement.accelerators / 3600
        trial.set_user_attr("seconds", round(measurement.seconds, 3))
        trial.set_user_attr("gpu_hours", hours)
        trial.set_user_attr("usd", hours * (self.campaign.budget.usd_per_accelerator_hour or 0.0))
        value = self._value(measurement)
        if value is None:
            trial.set_user_attr(
                "failure", measurement.failure or f"the run reported no {self.campaign.objective.metric}"
            )
            return self.study.tell(trial, state=TrialState.FAIL)
        record = {k: plain(v) for k, v in (measurement.record or {}).items()}
        trial.set_user_attr("record", record)
        for metric, excess in constraint_values(record, self.campaign.objective.slo).items():
            trial.set_constraint(metric, excess)
        with file_lock(self.dataset.with_suffix(".lock")):
            dataset.append(pd.DataFrame([record]), self.dataset)
        return self.study.tell(trial, value)

    def _value(self, measurement: Measurement) -> float | None:
        if measurement.failure or measurement.record is None:
            return None
        value = plain(measurement.record.get(self.campaign.objective.metric))
        return float(value) if value is not None and np.isfinite(value) and value > 0 else None

    def _queue_initial(self) -> None:
        """A new study starts with `initial_trials` random candidates (seeded: the same for every acquisition)."""
        if self.study.get_trials(deepcopy=False):
            return
        rng = np.random.default_rng(self.campaign.seed)
        count = min(self.campaign.initial_trials, len(self.candidates))
        for position in rng.choice(len(self.candidates), count, replace=False):
            self.study.enqueue_trial(self.candidates.params(position), user_attrs={"acquisition": "initial"})
