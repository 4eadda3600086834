"""Predict: one configuration, every target with its 90 % interval, why (SHAP), and the runs measured nearest."""

import tempfile
from pathlib import Path

import matplotlib
import streamlit as st

from flexpredict.board import queries, resources
from flexpredict.explain import explain_configuration, waterfall_plot

matplotlib.use("Agg")
st.title("Predict")
ids = resources.catalog_ids()
seen = queries.filter_choices(resources.records())  # precisions and engines MLPerf submissions use
with st.sidebar:
    st.header("Configuration")
    accelerator = st.selectbox(
        "Accelerator", ids["accelerators"], index=ids["accelerators"].index("nvidia-h100-sxm-80gb")
    )
    count = st.number_input("Accelerators per node", value=8, step=1)
    nodes = st.number_input("Nodes", value=1, step=1)
    model = st.selectbox("Model (catalog)", ids["models"], index=ids["models"].index("llama2-70b"))
    uploaded = st.file_uploader("…or a Hugging Face config.json", type=["json"])
    upload_name = st.text_input("Name of the uploaded model", value="uploaded-model")
    scenario = st.selectbox("Scenario", ["Server", "Interactive", "Offline", "SingleStream", "MultiStream"])
    precision = st.selectbox("Precision", seen["precision"] + ["any"], index=seen["precision"].index("fp8"))
    engine = st.selectbox("Engine", ["any"] + seen["engine"])
    st.text_input("Input / output tokens (ISL/OSL)", disabled=True, placeholder="not yet available in the predictor")
    st.text_input("Load", disabled=True, placeholder="not yet available in the predictor")

try:
    with tempfile.TemporaryDirectory() as folder:
        name = queries.model_argument(model, uploaded.getvalue() if uploaded else None, upload_name, Path(folder))
        record = queries.configuration(
            accelerator,
            int(count),
            int(nodes),
            name,
            scenario,
            None if precision == "any" else precision,
            None if engine == "any" else engine,
        )
except queries.BoardInputError as exc:
    st.error(str(exc))
    st.stop()

bundle = resources.bundle(resources.model_dir())
row = record.iloc[0]
st.caption(
    f"{row['accelerators_total']}x {row['accelerator']} · {row['model']} · {row['scenario']} · "
    f"{precision if precision != 'any' else 'any precision'} · {engine if engine != 'any' else 'any engine'}"
)
predictions = queries.prediction_rows(bundle, record)
st.subheader("Predictions (90 % interval)")
st.dataframe(
    predictions,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="%.4g") for c in ("prediction", "low", "high")},
)

st.subheader("Why: SHAP waterfall")
targets = list(predictions["target"])
target = st.selectbox(
    "Target",
    targets,
    index=targets.index("throughput_per_accelerator") if "throughput_per_accelerator" in targets else 0,
)
explanations = explain_configuration(bundle, record, target)
if explanations:
    st.pyplot(waterfall_plot(explanations[0]), clear_figure=True)
    st.markdown("\n".join(f"- {line}" for line in explanations[0].reasons()))
else:
    st.info(f"{target} is not explained by this model (no SHAP for its predictor)")

st.subheader("Measured runs nearest to it")
nearest = queries.nearest_runs(resources.records(), record)
if nearest.empty:
    st.info(f"no MLPerf run of {row['model']} in the {row['scenario']} scenario")
else:
    st.dataframe(nearest, hide_index=True, width="stretch")
