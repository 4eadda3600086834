"""The one base class every acquisition is: an Optuna sampler that proposes a free candidate configuration.

A candidate is free while no trial of the study holds it (queued, running, measured or failed), so no configuration
is measured twice; the loop asks for a trial under the campaign's proposal lock, so two workers never take the same
one. Between refits, configurations taken since the last fit are *pending*: their outcome is not in the predictions
yet, so the acquisitions discount what they would have taught (`Context.discount`), which keeps a batch diverse.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

from ...registry import Registry
from ..candidates import CandidateSet
from ..definition import Campaign, Objective

Z90 = 1.6448536269514722
"""The 90 % interval is +-1.645 sigma of a log-normal."""
MAX_SIGMA = 3.0
"""An uncalibrated interval (too few measurements) counts as a factor e^3 = 20 either way, not as infinite."""
NOISE_SD = 0.1
"""Log-scale spread of one configuration's repeated runs (submitters, rounds, system set-up): what a measurement
leaves unknown about the configuration itself."""
MAX_SCORED = 2000
"""Most candidates scored against each other per proposal (the kernel is quadratic); a random subset beyond."""


def log_sd(pred: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The log-normal sd a 90 % interval's upper half says, capped at MAX_SIGMA where it is infinite or missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = (np.log(hi) - np.log(pred)) / Z90
    return np.clip(np.nan_to_num(sigma, nan=MAX_SIGMA, posinf=MAX_SIGMA), 1e-6, MAX_SIGMA)


def trial_params(trial) -> dict:
    """A trial's configuration: its parameters, or those it was queued with (enqueue_trial) before it ran."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


@dataclass
class Context:
    """What every sampler of one worker shares: the candidates and the latest predictions for them."""

    candidates: CandidateSet
    objective: Objective
    predictions: pd.DataFrame | None = None
    """Surrogate.predict of every candidate (same order); None before the first fit."""
    fitted: frozenset[int] = field(default_factory=frozenset)
    """Numbers of the trials whose measurements the predictions learned from."""

    def holdings(self, trials) -> tuple[np.ndarray, np.ndarray]:
        """(taken: one flag per candidate, pending: candidates whose outcome the predictions do not know yet)."""
        taken = np.zeros(len(self.candidates), dtype=bool)
        pending = []
        for trial in trials:
            position = self.candidates.position(trial_params(trial))
            if position is None:
                continue
            taken[position] = True
            if trial.state in (TrialState.RUNNING, TrialState.WAITING) or (
                trial.state == TrialState.COMPLETE and trial.number not in self.fitted
            ):
                pending.append(position)
        return taken, np.array(pending, dtype=int)

    def discount(self, pending: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Per candidate in `cols`, the share of its value left once the pending measurements are known:
        prod over pending p of (1 - K[p, j])."""
        if len(pending) == 0:
            return np.ones(len(cols))
        return np.prod(1.0 - self.candidates.similarity(pending, cols), axis=0)

    def predicted(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(prediction, low, high) of a metric for every candidate; None before a predictor of it exists."""
        if self.predictions is None or self.predictions[metric].isna().all():
            return None
        p = self.predictions
        return (
            p[metric].to_numpy(dtype="float64"),
            p[f"{metric}_lo"].to_numpy(dtype="float64"),
            p[f"{metric}_hi"].to_numpy(dtype="float64"),
        )


class CandidateSampler(BaseSampler):
    """An Optuna sampler over the campaign's candidates: `choose` picks one of the free ones."""

    name: ClassVar[str]

    def __init__(self, context: Context, seed: int | None = None):
        self.context = context
        self.rng = np.random.default_rng(seed)
        self._independent = RandomSampler(seed=seed)

    @classmethod
    def create(cls, context: Context, seed: int | None, campaign: Campaign) -> CandidateSampler:
        """The sampler for a campaign; one that needs more of the campaign than the seed takes it here."""
        return cls(context, seed)

    def infer_relative_search_space(self, study, trial) -> dict:
        return dict(self.context.candidates.distributions)

    def sample_relative(self, study, trial, search_space) -> dict:
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False)
        taken, pending = self.context.holdings(trials)
        free = np.flatnonzero(~taken)
        if len(free) == 0:
            raise RuntimeError("no free candidate left (the loop checks before asking)")
        return self.context.candidates.params(self.choose(study, trial, free, pending))

    def sample_independent(self, study, trial, param_name, param_distribution):
        """Only for a parameter outside the campaign's space, which the loop never suggests."""
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    @abstractmethod
    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        """The candidate (an index into the candidate set, one of `free`) to measure next."""

    def _best(self, free: np.ndarray, score: np.ndarray) -> int:
        """The highest score; ties broken at random (early on, many candidates score alike)."""
        score = np.nan_to_num(np.asarray(score, dtype="float64"), nan=-np.inf)
        best = np.flatnonzero(score >= score.max() - 1e-12 * max(abs(score.max()), 1.0))
        return int(free[self.rng.choice(best)])


ACQUISITIONS: Registry[type[CandidateSampler]] = Registry(
    "acquisitions", "flexpredict.campaign.acquisition", "acquisition"
)
register = ACQUISITIONS.register
