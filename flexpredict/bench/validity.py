"""Why a run is (in)valid: which LoadGen constraint failed, with the measured value and the bound.

LoadGen prints `Result is : INVALID` and a Yes/NO per constraint; the user needs the number that broke it (TTFT p99
335 ms against a 100 ms bound) and where the bound came from (a preset, their flag, or LoadGen's default).
"""

from __future__ import annotations

import re

from flexpredict.bench.slo import Slo
from flexpredict.ingest.loadgen_log import LoadGenResult

_MORE_QUERIES = re.compile(r"at least (\d+) more queries")
LOADGEN_DEFAULT_TOKEN_BOUND_MS = 100.0
"""LoadGen's ttft_latency and tpot_latency when nothing sets them (a model without an MLPerf preset)."""


def bounds_note(slo: Slo, scenario: str) -> str | None:
    """Where the latency bounds of a run come from, stated in the output; None where none apply (Offline)."""
    if scenario != "Server":
        return None
    if slo.source:
        return f"latency bounds from {slo.source}: TTFT p99 <= {_fmt(slo.ttft_ms)}, TPOT p99 <= {_fmt(slo.tpot_ms)}"
    return (
        f"latency bounds: LoadGen's defaults, TTFT p99 <= {LOADGEN_DEFAULT_TOKEN_BOUND_MS:g} ms and TPOT p99 <= "
        f"{LOADGEN_DEFAULT_TOKEN_BOUND_MS:g} ms (no --slo-preset, --ttft-slo or --tpot-slo)"
    )


def explain(result: LoadGenResult, detail: dict, request_errors: int) -> list[str]:
    """One short reason per failed constraint; empty when the run is valid."""
    reasons = []
    if detail.get("result_perf_constraints_met") is False:
        reasons += _latency_reasons(result) or ["latency constraint not met"]
    if detail.get("result_min_duration_met") is False:
        reasons.append(
            f"min duration not met (ran {_ran_s(result, detail)}, needs "
            f"{float(detail.get('effective_min_duration_ms') or 0) / 1e3:g} s)"
        )
    if detail.get("result_min_queries_met") is False:
        reasons.append(
            f"min queries not met ({detail.get('result_query_count')} of {detail.get('effective_min_query_count')})"
        )
    if detail.get("early_stopping_met") is False:
        text = " ".join(
            str(detail.get(key) or "")
            for key in ("early_stopping_ttft_result", "early_stopping_tpot_result", "early_stopping_result")
        )
        more = [int(n) for n in _MORE_QUERIES.findall(text)]
        reasons.append(
            "early stopping not met" + (f" (needs {max(more)} more queries: a longer --min-duration)" if more else "")
        )
    errors = max(result.errors, request_errors)
    if errors:
        reasons.append(f"{errors} request error(s)")
    if not reasons and not result.result_valid:
        reasons.append(f"LoadGen says INVALID: {detail.get('result_invalid_reason') or 'no reason logged'}")
    return reasons


def _latency_reasons(result: LoadGenResult) -> list[str]:
    bounds = result.bounds()
    checks = (
        ("TTFT p99", "ttft_p99_ms", "ttft_bound_ms"),
        ("TPOT p99", "tpot_p99_ms", "tpot_bound_ms"),
        ("latency p99", "latency_p99_ms", "latency_bound_ms"),
    )
    return [
        f"{label} {result.values[value]:.4g} ms > bound {bounds[bound]:g} ms"
        for label, value, bound in checks
        if bound in bounds and result.values.get(value) is not None and result.values[value] > bounds[bound]
    ]


def _ran_s(result: LoadGenResult, detail: dict) -> str:
    queries, rate = detail.get("result_query_count"), result.values.get("samples_per_s")
    return f"{queries / rate:.3g} s" if isinstance(queries, (int, float)) and rate else "too short"


def _fmt(ms: float | None) -> str:
    return f"{ms:g} ms" if ms is not None else f"{LOADGEN_DEFAULT_TOKEN_BOUND_MS:g} ms (LoadGen default)"
