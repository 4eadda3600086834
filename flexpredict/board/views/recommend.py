"""Recommend: the ranked deployments `flexpredict recommend` gives, their cost-throughput Pareto front, and the
funnel of what was removed and why."""

from collections.abc import Callable
from typing import Any

import altair as alt
import streamlit as st
import typer

from flexpredict.board import queries, resources
from flexpredict.catalogs import CatalogError
from flexpredict.commands.common import non_negative_number, positive_count, positive_number
from flexpredict.recommend import Request, RequestError, parse_duration_ms, parse_load, recommend

st.title("Recommend")
ids = resources.catalog_ids()
with st.sidebar:
    st.header("Request")
    model = st.selectbox("Model", ids["models"], index=ids["models"].index("llama2-70b"))
    budget = st.number_input("Budget (USD)", value=2000.0, step=100.0)
    budget_period = st.selectbox("Budget period", ["month", "hour", "year"])
    latency_slo = st.text_input("Latency SLO (p99; TPOT for LLMs)", value="200ms")
    ttft_slo = st.text_input("TTFT SLO (p99, LLMs)", value="")
    tpot_slo = st.text_input("TPOT SLO (p99, LLMs)", value="")
    slo_preset = st.selectbox("SLO preset (MLPerf bounds)", ["none", "server", "interactive"])
    scenario = st.selectbox("Scenario", ["default", "Server", "Interactive", "Offline"])
    load = st.text_input("Load (required throughput, e.g. 5000tok/s)", value="")
    pricing = st.selectbox("Pricing", ["cloud", "own"])
    amortize_years = st.number_input("Amortise over (years, own)", value=3.0, step=0.5)
    electricity = st.number_input("Electricity (USD/kWh, own)", value=0.15, step=0.01)
    objective = st.selectbox("Objective", ["throughput", "cost", "energy"])
    vendor = st.text_input("Vendor (optional)", value="")
    max_accelerators = st.number_input("Most accelerators per replica", value=16, step=1)
    confidence = st.slider("Minimum P(SLO met)", 0.05, 0.95, 0.8)
    top = st.number_input("Show", value=10, step=1)

try:
    # the CLI's own option checks, with the form's labels
    checks: list[tuple[str, Callable[[Any], object], object]] = [
        ("budget", positive_number, budget),
        ("amortise over", positive_number, amortize_years),
        ("electricity", non_negative_number, electricity),
        ("most accelerators per replica", positive_count, int(max_accelerators)),
        ("show", positive_count, int(top)),
    ]
    for label, check, value in checks:
        try:
            check(value)
        except typer.BadParameter as exc:
            raise RequestError(f"{label}: {exc}") from None
    request = Request(
        model=model,
        budget=budget,
        budget_period=budget_period,
        pricing=pricing,
        amortize_years=amortize_years,
        electricity_usd_per_kwh=electricity,
        latency_slo_ms=parse_duration_ms(latency_slo or None, "latency SLO"),
        ttft_slo_ms=parse_duration_ms(ttft_slo or None, "TTFT SLO"),
        tpot_slo_ms=parse_duration_ms(tpot_slo or None, "TPOT SLO"),
        slo_preset=None if slo_preset == "none" else slo_preset,
        scenario=None if scenario == "default" else scenario,
        load=parse_load(load or None),
        objective=objective,
        vendor=vendor or None,
        max_accelerators=int(max_accelerators),
        top=int(top),
        confidence=confidence,
    )
    # every candidate, the unaffordable too: the Pareto chart shows what a bigger budget would buy
    result = recommend(request, model_dir=resources.model_dir(), records=resources.records(), score_over_budget=True)
except (RequestError, CatalogError, FileNotFoundError) as exc:
    st.error(str(exc))
    st.stop()

slo = ", ".join(f"{k.replace('_ms', '').upper()} p99 <= {v:g} ms" for k, v in result.slo.items()) or "none"
st.caption(
    f"{result.model['id']} · {result.scenario} · SLO: {slo} · ${budget:,.0f}/{budget_period} · {pricing} "
    f"pricing · objective: {objective}" + (f" at {request.load}" if request.load else "")
)
if result.explanation:
    st.warning(f"no recommendation: {result.explanation}")
else:
    st.subheader("Ranked deployments")
    st.dataframe(queries.ranked_table(result), hide_index=True, width="stretch")
    for position, lines in enumerate(result.reasons.values(), start=1):
        st.markdown(f"**#{position}**: " + "; ".join(lines))

st.subheader("Cost vs throughput")
points = queries.pareto_points(result)
if points.empty:
    st.info("no candidate has both a price and a throughput prediction")
else:
    hover = [
        "configuration",
        alt.Tooltip("usd_per_hour:Q", format=",.2f", title="$/hour"),
        alt.Tooltip("throughput:Q", format=",.0f", title=f"{result.unit} per replica"),
        alt.Tooltip("throughput_lo:Q", format=",.0f", title="90% low"),
        alt.Tooltip("throughput_hi:Q", format=",.0f", title="90% high"),
        alt.Tooltip("p_slo:Q", format=".0%", title="P(SLO)"),
        alt.Tooltip("usd_per_million:Q", format=",.3g", title="$ per million"),
        "origin",
        "qualifies",
        "dropped",
    ]
    base = alt.Chart(points).encode(
        x=alt.X("usd_per_hour:Q", scale=alt.Scale(type="log"), title="$ per hour per replica"),
        y=alt.Y("throughput:Q", scale=alt.Scale(type="log"), title=f"predicted {result.unit} per replica"),
    )
    dots = base.mark_point(filled=True).encode(
        color=alt.Color(
            "origin:N",
            title="prediction",
            scale=alt.Scale(domain=["measured", "transferred"], range=["#e45756", "#4c78a8"]),
        ),
        tooltip=hover,
        opacity=alt.condition(alt.datum.qualifies == "meets SLO within budget", alt.value(0.9), alt.value(0.25)),
        shape=alt.Shape("qualifies:N", title=None),
    )
    front = base.transform_filter(alt.datum.front).mark_line(color="black")
    st.altair_chart((dots + front).interactive(), width="stretch")
    st.caption(
        "measured: a matching MLPerf run exists; transferred: predicted from related runs. Faded points fail "
        "the SLO or the budget; the black line is the Pareto front of those that qualify."
    )

st.subheader("What was removed, and why")
st.dataframe(queries.funnel_table(result), hide_index=True)
