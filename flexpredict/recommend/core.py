"""`recommend`: candidates -> predictions (remembered) -> sizing by the capacity function -> prices -> ranking."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..configs import resolve_model
from ..costs import HOURS_PER, PriceBook
from ..normalize import is_llm_benchmark
from .candidates import candidate_frame
from .pricing import priced
from .ranking import explain, rank
from .reasons import reasons
from .request import (
    DEFAULT_MODEL,
    Request,
    RequestError,
    as_load,
    capacity_bounds,
    needs_capacity,
    slo_and_scenario,
    validate,
    wants_capacity,
    workload_of,
)
from .scoring import predictions
from .sizing import capacity_beside, sized


@dataclass
class Recommendation:
    request: Request
    model: dict
    scenario: str
    slo: dict[str, float]
    unit: str
    ranked: pd.DataFrame  # every candidate that passed, best first
    candidates: pd.DataFrame  # every candidate scored, with why it was dropped
    funnel: list[tuple[str, int]] = field(default_factory=list)
    explanation: str | None = None  # why nothing is left, and what would relax it
    reasons: dict[int, list[str]] = field(default_factory=dict)  # candidate index -> plain-word reasons
    workload: dict = field(default_factory=dict)  # isl, osl and where they come from
    capacity_bounds: dict | None = None  # the TTFT/TPOT p99 bounds candidates were sized for (capacity function)

    @property
    def top(self) -> pd.DataFrame:
        return self.ranked.head(self.request.top)


def recommend(
    request: Request,
    *,
    bundle=None,
    model_dir: Path | None = None,
    records: pd.DataFrame | None = None,
    capacity_model=None,
    score_over_budget: bool = False,
) -> Recommendation:
    """Score every candidate configuration and rank those that meet the SLO within the budget. Without `bundle`,
    the model in `model_dir` (default: the shipped one) is used, through its remembered score tables. With a
    capacity function (`capacity_model`, else the model folder's) an LLM request with an SLO, a workload shape or a
    load in requests/s or users is sized by each candidate's throughput at the SLO.

    A candidate whose one replica already costs more than the budget cannot be recommended: it is not scored
    (most of a first request's time is scoring) unless `score_over_budget` (the board plots them), or nothing
    within the budget qualifies (the explanation then names the cheapest candidate that meets the SLO)."""
    validate(request)
    try:
        model = resolve_model(request.model or DEFAULT_MODEL)
    except ValueError as exc:
        raise RequestError(str(exc)) from exc
    llm = model.get("kind") == "llm" or is_llm_benchmark(model["id"])
    slo, scenario = slo_and_scenario(request, model, llm)
    load = as_load(request.load, llm)
    workload = workload_of(model, request)
    capacity_dir = None
    if wants_capacity(request, load, slo, llm) and capacity_model is None and bundle is None:
        capacity_dir = capacity_beside(model_dir, required=needs_capacity(request, load))
    if capacity_model is None and capacity_dir is None and needs_capacity(request, load):
        raise RequestError(
            "--isl/--osl and a --load in requests/s or users need the capacity function: pass a "
            "model trained with it (`flexpredict train`)"
        )
    prices = PriceBook.load(request.prices_file)
    if records is None:
        from .. import dataset

        records = dataset.load()

    frame, funnel = candidate_frame(request, model, llm, scenario, prices, records)
    unaffordable = pd.Series(False, index=frame.index)
    if not score_over_budget and len(frame):
        unaffordable = one_replica_over_budget(frame, request)
        if unaffordable.any():
            funnel = funnel + [("  one replica over budget (not scored)", int(unaffordable.sum()))]
    skipped, frame = frame[unaffordable], frame[~unaffordable]
    by_capacity = llm and (capacity_model is not None or capacity_dir is not None)
    bounds = capacity_bounds(model, slo, scenario) if by_capacity else None
    if len(frame):
        frame = frame.join(predictions(frame, model["id"], scenario, bundle, model_dir))
        if "pred_throughput_per_accelerator" not in frame:
            raise RequestError(
                f"{model_dir or 'the model'}: predicts no throughput_per_accelerator (trained on too "
                "few records); retrain it or pass another --model-dir"
            )
        if bounds is not None:
            frame = sized(
                frame,
                bounds,
                workload,
                request.confidence,
                load,
                records,
                capacity_model=capacity_model,
                model_dir=capacity_dir,
            )
        frame = priced(frame, request, load, workload, slo, llm)
    frame, ranked, funnel = rank(frame, request, funnel)
    if ranked.empty and len(skipped):
        return recommend(
            request,
            bundle=bundle,
            model_dir=model_dir,
            records=records,
            capacity_model=capacity_model,
            score_over_budget=True,
        )
    if len(skipped):
        frame = pd.concat([frame, skipped.assign(dropped="over budget")])
    rec = Recommendation(
        request,
        model,
        scenario,
        slo,
        "tokens/s" if llm else "samples/s",
        ranked,
        frame,
        funnel,
        workload=workload,
        capacity_bounds=bounds,
    )
    if ranked.empty:
        rec.explanation = explain(frame, request, funnel, slo)
    else:
        rec.reasons = reasons(ranked.head(min(3, request.top)))
    return rec


def one_replica_over_budget(frame: pd.DataFrame, request: Request) -> pd.Series:
    """Candidates whose single replica costs more than the budget for its period before any prediction: the cloud
    price, or for owned hardware the amortised purchase alone (electricity only adds). All False without a budget."""
    if request.budget is None:
        return pd.Series(False, index=frame.index)
    total = pd.to_numeric(frame["accelerators_total"], errors="coerce")
    if request.pricing == "cloud":
        hourly = pd.to_numeric(frame["usd_per_accelerator_hour"], errors="coerce") * total
    else:
        purchase = pd.to_numeric(frame["purchase_usd"], errors="coerce")
        hourly = purchase * total / (request.amortize_years * HOURS_PER["year"])
    return (hourly * HOURS_PER[request.budget_period] > request.budget * (1 + 1e-9)).fillna(False)
