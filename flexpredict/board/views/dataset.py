"""Dataset: filter the MLPerf records, compare accelerators, download the rows with their source files."""

import altair as alt
import streamlit as st

from flexpredict.board import queries, resources

st.title("Dataset")
records = resources.records()
choices = queries.filter_choices(records)
with st.sidebar:
    st.header("Filters")
    selection = {
        column: st.multiselect(label, choices[column], key=f"filter_{column}")
        for column, label in queries.FILTERS.items()
    }
chosen = queries.filter_records(records, selection)
st.caption(
    f"{len(chosen):,} of {len(records):,} records · throughput is comparable across accelerators within one "
    "model and scenario: pick them in the filters"
)
if chosen.empty:
    st.warning("no record matches these filters: remove one")
    st.stop()

for tab, (metric, label) in zip(st.tabs(list(queries.METRICS.values())), queries.METRICS.items()):
    with tab:
        summary = queries.per_accelerator(chosen, metric)
        if summary.empty:
            st.info(f"no {label} in the selected records")
            continue
        # median and quartiles per accelerator on a log axis (bars cannot start at zero on one)
        accelerators = alt.Y(
            "accelerator:N",
            sort=alt.EncodingSortField("median", order="descending"),
            title=None,
            axis=alt.Axis(labelLimit=320),
        )
        medians = (
            alt.Chart(summary)
            .mark_point(filled=True, size=70)
            .encode(
                x=alt.X(
                    "median:Q", title=f"median {label} (line: first to third quartile)", scale=alt.Scale(type="log")
                ),
                y=accelerators,
                tooltip=[
                    "accelerator",
                    alt.Tooltip("median:Q", format=",.4g"),
                    alt.Tooltip("q1:Q", format=",.4g"),
                    alt.Tooltip("q3:Q", format=",.4g"),
                    "runs",
                ],
            )
        )
        quartiles = alt.Chart(summary).mark_rule(strokeWidth=2).encode(x="q1:Q", x2="q3:Q", y=accelerators)
        st.altair_chart(quartiles + medians, width="stretch")

table = queries.records_table(chosen)
st.subheader("Records")
st.dataframe(table, hide_index=True, width="stretch")
st.download_button("Download CSV", table.to_csv(index=False), file_name="flexpredict-records.csv", mime="text/csv")
