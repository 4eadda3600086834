"""The board's entry point (`streamlit run`): four pages in the sidebar."""

import streamlit as st

st.set_page_config(page_title="flexpredict board", layout="wide")
st.navigation(
    [
        st.Page("views/dataset.py", title="Dataset", url_path="dataset", default=True),
        st.Page("views/predict.py", title="Predict", url_path="predict"),
        st.Page("views/recommend.py", title="Recommend", url_path="recommend"),
        st.Page("views/campaigns.py", title="Campaigns", url_path="campaigns"),
    ]
).run()
