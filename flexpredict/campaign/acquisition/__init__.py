"""Acquisitions: each one an Optuna sampler over the campaign's candidate configurations, one module each.

uncertainty  -- what most reduces the predictor's uncertainty (toward a target prediction error)
shrinkage    -- what shrinks the others' intervals most, given the batch in flight (a new part)
improvement  -- expected improvement under the SLO (toward the best configuration)
random       -- the baseline
tpe, gp      -- Optuna's own samplers, snapped to free candidates
"""

from __future__ import annotations

from ..definition import Campaign
from .base import ACQUISITIONS, CandidateSampler, Context, trial_params
from .improvement import ImprovementSampler
from .optuna_samplers import GpSampler, TpeSampler
from .random import RandomCandidateSampler
from .shrinkage import ShrinkageSampler
from .uncertainty import UncertaintySampler


def create_sampler(campaign: Campaign, context: Context, seed: int | None = None) -> CandidateSampler:
    """The campaign's acquisition as a sampler; `seed` defaults to the campaign's."""
    seed = campaign.seed if seed is None else seed
    return ACQUISITIONS[campaign.acquisition].create(context, seed, campaign)


__all__ = [
    "ACQUISITIONS",
    "CandidateSampler",
    "Context",
    "GpSampler",
    "ImprovementSampler",
    "RandomCandidateSampler",
    "ShrinkageSampler",
    "TpeSampler",
    "UncertaintySampler",
    "create_sampler",
    "trial_params",
]
