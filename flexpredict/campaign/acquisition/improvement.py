"""Acquisition `improvement`: measure what is most likely to change the recommendation.

The score of a candidate is its expected improvement over the best SLO-feasible configuration measured so far
(log-normal from the predicted median and 90 % interval, in closed form), times the probability that it meets every
SLO bound: a candidate that could only beat the incumbent by breaking the SLO, or that surely cannot beat it, is not
worth a run. Pending configurations discount their neighbours (Context.discount), so a batch does not pile onto one
promising region.
"""

from __future__ import annotations

import numpy as np
from optuna.trial import TrialState

from .base import CandidateSampler, log_sd, register


@register
class ImprovementSampler(CandidateSampler):
    name = "improvement"

    def choose(self, study, trial, free: np.ndarray, pending: np.ndarray) -> int:
        objective = self.context.objective
        predicted = self.context.predicted(objective.metric)
        if predicted is None:
            return int(self.rng.choice(free))
        pred, _, hi = (a[free] for a in predicted)
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = np.log(pred)
        gain = expected_improvement(mu, log_sd(pred, hi), incumbent(study), objective.direction == "maximize")
        predictions = self.context.predictions
        assert predictions is not None  # `predicted` found the metric in them
        feasible = predictions["p_feasible"].to_numpy(dtype="float64")[free]
        score = np.nan_to_num(gain, nan=0.0) * feasible * self.context.discount(pending, free)
        return self._best(free, score)


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float | None, maximize: bool) -> np.ndarray:
    """E[max(Y - best, 0)] (maximize) or E[max(best - Y, 0)] for Y = exp(N(mu, sigma^2)); with nothing feasible
    measured yet, E[Y] (maximize) or E[1/Y]."""
    from scipy.special import ndtr  # scipy.stats-sized import: not for `campaign status`

    if best is None:
        return np.exp((mu if maximize else -mu) + sigma**2 / 2)
    d2 = (mu - np.log(best)) / sigma
    d1 = d2 + sigma
    mean = np.exp(mu + sigma**2 / 2)
    if maximize:
        return mean * ndtr(d1) - best * ndtr(d2)
    return best * ndtr(-d2) - mean * ndtr(-d1)


def incumbent(study) -> float | None:
    """The best objective value among measured configurations that met every SLO bound."""
    values = [
        t.value
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if all(c <= 0 for c in t.constraints.values())
    ]
    if not values:
        return None
    return max(values) if study.direction.name == "MAXIMIZE" else min(values)
