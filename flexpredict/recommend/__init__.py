"""Recommendations: which hardware, how many, which engine and precision, for an SLO, a workload, a load and a budget.

Candidates are catalog accelerators x counts x engines seen on that vendor x precisions the part supports, minus
those whose model does not fit (`candidates`). Each is predicted (throughput, TTFT/TPOT or latency, power, with 90 %
intervals; remembered in score tables: `scoring`), for LLMs with a capacity function sized for the SLO and the load
(`sizing`), priced (`pricing`), checked against the SLO (probability from the interval) and the budget, and ranked
by the objective (`ranking`). `request` parses what the user asks; `core.recommend` runs the steps.
"""

from ..configs import resolve_model
from .candidates import COUNTS, LLM_PRECISIONS, OTHER_PRECISIONS, catalog_candidates
from .core import Recommendation, recommend
from .reasons import FEATURE_WORDS, feature_phrase, reasons
from .request import (
    DEFAULT_MODEL,
    Load,
    Request,
    RequestError,
    capacity_bounds,
    parse_duration_ms,
    parse_load,
    preset_bounds,
    workload_of,
)
from .scoring import TARGETS_USED, Z90, prescore, probability_below, score_candidates

__all__ = [
    "COUNTS",
    "DEFAULT_MODEL",
    "FEATURE_WORDS",
    "LLM_PRECISIONS",
    "OTHER_PRECISIONS",
    "TARGETS_USED",
    "Z90",
    "Load",
    "Recommendation",
    "Request",
    "RequestError",
    "capacity_bounds",
    "catalog_candidates",
    "feature_phrase",
    "parse_duration_ms",
    "parse_load",
    "prescore",
    "preset_bounds",
    "probability_below",
    "reasons",
    "recommend",
    "resolve_model",
    "score_candidates",
    "workload_of",
]
