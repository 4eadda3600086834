"""Acquisition `uncertainty`: measure what most reduces the predictor's uncertainty over all free configurations.

Uncertainty alone measures outliers first (the one edge box nobody else resembles has the widest interval and
teaches nothing about the rest); we measured it doing worse than random on the MLPerf replay. So the score of a
candidate c is the uncertainty it removes from every free configuration j, sum_j K(c, j) * u_j, where u_j is j's
90 % interval width in log space and K the parameters' similarity (`space.<name>.similarity`). Pending
configurations have already removed their share (Context.discount), so a batch spreads out.
"""

from __future__ import annotations

import numpy as np

from .base import MAX_SCORED, CandidateSampler, register


@register
class UncertaintySampler(CandidateSampler):
    name = "uncertainty"

    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        widths = self.uncertainty()
        u = widths[free] * self.context.discount(pending, free)
        scored = free if len(free) <= MAX_SCORED else np.sort(self.rng.choice(free, MAX_SCORED, replace=False))
        score = self.context.candidates.similarity(scored, free) @ u
        return self._best(scored, score)

    def uncertainty(self) -> np.ndarray:
        """Log interval width of the objective metric per candidate: 1 everywhere before a predictor exists, twice
        the widest finite width where the interval is not calibrated yet, 0 where the metric is not defined."""
        predicted = self.context.predicted(self.context.objective.metric)
        if predicted is None:
            return np.ones(len(self.context.candidates))
        _, lo, hi = predicted
        with np.errstate(divide="ignore", invalid="ignore"):
            width = np.log(hi) - np.log(lo)
        finite = np.isfinite(width)
        widest = 2 * width[finite].max() if finite.any() else 1.0
        return np.where(np.isnan(lo), 0.0, np.where(finite, width, widest))
