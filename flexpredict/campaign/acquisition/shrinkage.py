"""Acquisition `shrinkage`: measure what shrinks the other configurations' intervals the most, given what the
batch already in flight will teach.

Each candidate's uncertainty is its own interval from the surrogate (for `predictor: transfer`, the transfer
predictor's interval per configuration, narrowed by what was measured), as a log-normal sd s_j. Errors of
configurations that share a model, precision, count or scenario move together: cov(i, j) = s_i s_j K(i, j), K the
parameters' `similarity`. Measuring c (with the noise of one run, NOISE_SD) removes cov(c, j)^2 / (var_c + noise^2)
of j's variance; the score is that sum over every free configuration. Pending configurations (taken since the last
fit, by any worker) are conditioned on first: their outcome is unknown, but the variance they will remove is not,
so parallel workers spread out exactly rather than by a discount.
"""

from __future__ import annotations

import numpy as np

from .base import MAX_SCORED, NOISE_SD, CandidateSampler, log_sd, register


@register
class ShrinkageSampler(CandidateSampler):
    name = "shrinkage"

    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        scored = free if len(free) <= MAX_SCORED else np.sort(self.rng.choice(free, MAX_SCORED, replace=False))
        sd = self.sd()
        similarity = self.context.candidates.similarity
        covariance = np.outer(sd[scored], sd[scored]) * similarity(scored, scored)
        if len(pending):
            cross = np.outer(sd[scored], sd[pending]) * similarity(scored, pending)
            pending_cov = np.outer(sd[pending], sd[pending]) * similarity(pending, pending)
            covariance -= cross @ np.linalg.solve(pending_cov + NOISE_SD**2 * np.eye(len(pending)), cross.T)
        variance = np.clip(np.diag(covariance), 0.0, None)
        gain = (covariance**2).sum(axis=1) / (variance + NOISE_SD**2)
        return self._best(scored, gain)

    def sd(self) -> np.ndarray:
        """Log-normal sd of the objective metric per candidate: 1 before a predictor exists, MAX_SIGMA where the
        interval is not calibrated, 0 where the metric is not defined (nothing to learn there)."""
        predicted = self.context.predicted(self.context.objective.metric)
        if predicted is None:
            return np.ones(len(self.context.candidates))
        pred, _, hi = predicted
        return np.where(np.isnan(pred), 0.0, log_sd(pred, hi))
