"""Acquisitions `tpe` and `gp`: Optuna's own samplers, for comparison.

They model the objective from the study's trials as usual (TPE: multivariate Parzen estimators; GP: a Gaussian
process, which needs PyTorch) and propose a point of the search space; the point lands on the nearest free candidate,
since only candidates can be measured and none twice. Both start after the same random initial trials as every other
acquisition and see the SLO as Optuna constraints (`Trial.set_constraint`: value - bound, <= 0 when met), which
Optuna 5's TPE and GP samplers read from the trials themselves.
"""

from __future__ import annotations

import importlib.util
from abc import abstractmethod

import numpy as np
import optuna

from ..definition import Campaign, CampaignError
from .base import CandidateSampler, Context, register


class OptunaSampler(CandidateSampler):
    """Wraps an Optuna sampler: its proposal, snapped to the nearest free candidate."""

    def __init__(self, context: Context, seed: int | None = None, startup: int = 0):
        super().__init__(context, seed)
        self.inner = self.optuna_sampler(seed, startup)

    @staticmethod
    @abstractmethod
    def optuna_sampler(seed: int | None, startup: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler, starting after `startup` trials (the campaign's random initial ones)."""

    @classmethod
    def create(cls, context: Context, seed: int | None, campaign: Campaign) -> CandidateSampler:
        return cls(context, seed, campaign.initial_trials)

    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        space = self.context.candidates.distributions
        proposal = self.inner.sample_relative(study, trial, space)
        for name, distribution in space.items():  # its start-up trials, or a parameter it samples on its own
            if name not in proposal:
                proposal[name] = self.inner.sample_independent(study, trial, name, distribution)
        return self.context.candidates.nearest(proposal, free)

    def before_trial(self, study, trial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)


@register
class TpeSampler(OptunaSampler):
    name = "tpe"

    @staticmethod
    def optuna_sampler(seed: int | None, startup: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)


@register
class GpSampler(OptunaSampler):
    name = "gp"

    @staticmethod
    def optuna_sampler(seed: int | None, startup: int) -> optuna.samplers.BaseSampler:
        if importlib.util.find_spec("torch") is None:
            raise CampaignError("acquisition: gp is Optuna's GPSampler, which needs PyTorch (pip install torch)")
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
