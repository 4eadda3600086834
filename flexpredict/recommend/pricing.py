"""What each candidate delivers and costs: throughput (and what sizing uses), power, $/h (cloud, or owned: amortised
purchase plus electricity), $ per million, energy per unit, P(SLO), replicas for the budget or load."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..costs import HOURS_PER, usd_per_million
from .request import Load, Request
from .scoring import slo_probability


def priced(
    frame: pd.DataFrame, request: Request, load: Load | None, workload: dict, slo: dict[str, float], llm: bool
) -> pd.DataFrame:
    """Candidates with throughput, cost, energy, P(SLO) and replicas (a new frame). Sized by the throughput at the
    requested confidence where the capacity function gave it (and its replicas for the load), else the point."""
    total = frame["accelerators_total"].to_numpy(dtype="float64")
    missing = np.full(len(frame), np.nan)  # a model trained without a target predicts none of it
    throughput = frame["pred_throughput_per_accelerator"].to_numpy(dtype="float64") * total
    power = frame["pred_power_w"].to_numpy(dtype="float64") if "pred_power_w" in frame else missing
    tdp = pd.to_numeric(frame["tdp_w"], errors="coerce").to_numpy(dtype="float64") * total
    power_w = np.where(np.isfinite(power), power, tdp)
    if request.pricing == "cloud":
        usd_per_hour = frame["usd_per_accelerator_hour"].to_numpy(dtype="float64") * total
    else:
        capital = frame["purchase_usd"].to_numpy(dtype="float64") * total / (request.amortize_years * HOURS_PER["year"])
        usd_per_hour = capital + np.nan_to_num(power_w) / 1000 * request.electricity_usd_per_kwh
    energy_column = "pred_energy_j_per_token" if llm else "pred_energy_j_per_sample"
    measured_energy = frame[energy_column].to_numpy(dtype="float64") if energy_column in frame else missing
    with np.errstate(divide="ignore", invalid="ignore"):
        energy = np.where(np.isfinite(measured_energy), measured_energy, power_w / throughput)
    sizing = (
        frame["throughput_at_confidence_per_accelerator"].to_numpy(dtype="float64") * total
        if "throughput_at_confidence_per_accelerator" in frame
        else throughput
    )
    period_hours = HOURS_PER[request.budget_period]
    if load is not None and "replicas_for_load" in frame:
        replicas = frame["replicas_for_load"].to_numpy(dtype="float64")
    elif load is not None:
        needed = load.value * (workload["osl"] if llm and load.kind == "qps" else 1.0)
        replicas = np.ceil(needed / np.where(sizing > 0, sizing, np.nan))
    elif request.budget is not None:
        replicas = np.floor(request.budget / (usd_per_hour * period_hours))
    else:
        replicas = np.ones(len(frame))
    return frame.assign(
        throughput=throughput,
        throughput_lo=frame["pred_throughput_per_accelerator_lo"].to_numpy(dtype="float64") * total,
        throughput_hi=frame["pred_throughput_per_accelerator_hi"].to_numpy(dtype="float64") * total,
        power_w=power_w,
        power_from_tdp=~np.isfinite(power) & np.isfinite(tdp),
        usd_per_hour=usd_per_hour,
        usd_per_month=usd_per_hour * HOURS_PER["month"],
        usd_per_million=[usd_per_million(c, t) for c, t in zip(usd_per_hour, throughput)],
        energy_j_per_unit=energy,
        p_slo=frame["p_slo"].to_numpy() if "p_slo" in frame else slo_probability(frame, slo, llm),
        ood=frame["ood_throughput_per_accelerator"].fillna(False).astype(bool).to_numpy(),
        replicas=replicas,
        throughput_at_confidence=sizing,
        total_throughput=replicas * sizing,
        period_cost=replicas * usd_per_hour * period_hours,
    )
