"""Campaigns: each study's progress, prediction error against what was measured, best configurations, failures.
Read-only: the storage is opened without creating tables, and nothing is written to it."""

import altair as alt
import pandas as pd
import streamlit as st

from flexpredict.board import queries, resources

st.title("Campaigns")
url = st.text_input(
    "Storage URL",
    value=resources.storage(),
    placeholder="sqlite:///runs/campaigns/<name>/study.db or postgresql://user@host/db",
)
if not url:
    st.info("give the campaign storage URL (flexpredict board --storage URL, or type it above)")
    st.stop()
try:
    reports = queries.campaign_reports(url)
except queries.BoardInputError as exc:
    st.error(str(exc))
    st.stop()
if not reports:
    st.warning("the storage holds no flexpredict campaign study")
    st.stop()

for report in reports:
    st.header(report["campaign"])
    spent, budget = report["spent"], report["budget"]
    st.progress(
        queries.progress(report),
        text=", ".join(f"{spent[k]:g} of {v:g} {k.replace('_', '-')}" for k, v in budget.items()) + " spent",
    )
    states = st.columns(len(report["states"]))
    for column, (state, count) in zip(states, report["states"].items()):
        column.metric(state, count)
    if report["exhausted"]:
        st.caption(report["exhausted"])

    error, metric = report["prediction_error"], report["metric"]
    st.subheader(f"Prediction error of {metric} vs measurements")
    overall = "-" if error["mdape_all"] is None else f"{error['mdape_all']:.1%}"
    last = "-" if error["mdape_last_batch"] is None else f"{error['mdape_last_batch']:.1%}"
    st.caption(
        f"{error['measured_with_prediction']} measurement(s) predicted before measuring: MdAPE {overall} "
        f"overall, {last} last batch" + (f"; target {error['target']:.1%}" if error["target"] else "")
    )
    if report["errors"].empty:
        st.info("no trial was measured after a prediction yet")
    else:
        st.altair_chart(
            alt.Chart(report["errors"])
            .mark_line(point=True)
            .encode(
                x=alt.X("trial:Q", title="trial"),
                y=alt.Y("error:Q", title="|predicted / measured - 1|", axis=alt.Axis(format="%")),
                tooltip=["trial", alt.Tooltip("error:Q", format=".1%")],
            ),
            width="stretch",
        )

    st.subheader("Best SLO-feasible configurations")
    if report["best"]:
        st.dataframe(pd.json_normalize(report["best"]), hide_index=True, width="stretch")
    else:
        st.info("no SLO-feasible configuration measured yet")
    st.subheader("Failed trials")
    if report["failures"]:
        st.dataframe(pd.json_normalize(report["failures"]), hide_index=True, width="stretch")
    else:
        st.caption("none")
