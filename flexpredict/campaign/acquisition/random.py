"""Acquisition `random`: any free candidate, uniformly. The baseline every other acquisition must beat."""

from __future__ import annotations

import numpy as np

from .base import CandidateSampler, register


@register
class RandomCandidateSampler(CandidateSampler):
    name = "random"

    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        return int(self.rng.choice(free))
