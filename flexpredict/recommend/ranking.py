"""Which candidates pass (a throughput, the SLO at the confidence, the budget), best first by the objective; and,
when none does, which constraint removed them and what would relax it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..costs import HOURS_PER
from .request import Request


def rank(frame: pd.DataFrame, request: Request, funnel: list) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(every candidate with why it was `dropped`, those that passed best first, the funnel): new frames."""
    if frame.empty:
        return frame, frame, funnel
    predicted = (frame["throughput"].notna() & (frame["throughput"] > 0)).to_numpy()
    dropped = np.full(len(predicted), None, dtype=object)
    dropped[~predicted] = "no throughput prediction"
    funnel = funnel + [("with a throughput prediction", int(predicted.sum()))]
    meets = predicted & (frame["p_slo"].to_numpy() >= request.confidence - 1e-9)  # sized at the confidence: P = it
    dropped[predicted & ~meets] = f"P(SLO met) < {request.confidence:.0%}"
    funnel.append((f"meeting the SLO with P >= {request.confidence:.0%}", int(meets.sum())))
    live = meets
    if request.budget is not None:
        affordable = (
            live & (frame["replicas"].to_numpy() >= 1) & (frame["period_cost"].to_numpy() <= request.budget + 1e-9)
        )
        dropped[live & ~affordable] = "over budget"
        funnel.append((f"within ${request.budget:,.0f} per {request.budget_period}", int(affordable.sum())))
        live = affordable
    frame = frame.assign(dropped=dropped)
    if request.load is not None or request.objective == "cost":
        key, ascending = ("period_cost" if request.load is not None else "usd_per_million"), True
    elif request.objective == "energy":
        key, ascending = "energy_j_per_unit", True
    else:
        key, ascending = "total_throughput", False
    ranked = frame[live].sort_values(
        [key, "usd_per_hour", "measured_runs"], ascending=[ascending, True, False], kind="stable"
    )
    # an engine or precision never measured on this hardware gets the same prediction as a measured one: show the
    # measured (else the most used) variant once
    ranked = ranked.drop_duplicates(["accelerator", "count", "nodes", "throughput"], keep="first")
    return frame, ranked, funnel


def explain(frame: pd.DataFrame, request: Request, funnel: list, slo: dict[str, float]) -> str:
    """Which constraint removed everything, and what would relax it."""
    if frame.empty:
        stage = next((name.strip() for name, n in funnel if n and name.startswith("  ")), "the catalog")
        return (
            f"no candidate configuration: every one was removed by '{stage}' (try --max-accelerators, another "
            "--vendor/--accelerator, or --pricing cloud/own; --prices FILE adds prices)"
        )
    live = frame[frame["throughput"].notna()]
    if live.empty:
        return "no candidate has a throughput prediction for this model and scenario (try another --scenario)"
    slo_ok = live[live["p_slo"] >= request.confidence]
    if slo_ok.empty:
        best = live.sort_values("p_slo", ascending=False).iloc[0]
        parts = []
        for bound, target in (("ttft_ms", "ttft_p99_ms"), ("tpot_ms", "tpot_p99_ms"), ("latency_ms", "latency_p99_ms")):
            if bound in slo and f"pred_{target}" in best and best[f"pred_{target}"] == best[f"pred_{target}"]:
                parts.append(
                    f"{bound.replace('_ms', '').upper()} p99 {best[f'pred_{target}']:.0f} ms "
                    f"(bound {slo[bound]:.0f} ms)"
                )
        return (
            f"the SLO removed every candidate: the most likely one ({best['accelerators_total']}x "
            f"{best['accelerator']}, {best['precision']}, {best['engine']}) meets it with P = {best['p_slo']:.0%} "
            f"< --confidence {request.confidence:.0%}; predicted {', '.join(parts) or 'latency unknown'}. Relax "
            "the latency bound, lower --confidence, or choose --scenario Offline"
        )
    if request.budget is not None:
        cheapest = slo_ok.sort_values("usd_per_hour").iloc[0]
        need = cheapest["usd_per_hour"] * HOURS_PER[request.budget_period]
        if request.load is not None:
            cheapest = slo_ok.sort_values("period_cost").iloc[0]
            need = cheapest["period_cost"]
        return (
            f"the budget removed every candidate: the cheapest SLO-feasible one ({cheapest['accelerators_total']}x "
            f"{cheapest['accelerator']}, {cheapest['precision']}) costs ${need:,.0f} per {request.budget_period}"
            f"{' at the requested load' if request.load is not None else ''}; raise --budget to at least "
            f"${math.ceil(need):,} or use --pricing {'own' if request.pricing == 'cloud' else 'cloud'}"
        )
    return "no candidate is left"
