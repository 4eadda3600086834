"""`RecordFeaturizer`: records in, model matrix out, as a scikit-learn transformer.

Numeric physics features (from the catalogs) let the predictor say something about hardware it never saw;
categorical identity features (accelerator, model, engine, precision, scenario) let it be precise where it has.
Categoricals are pandas `category` columns with the levels seen in `fit`, for XGBoost's native categorical support
(one feature per concept, so SHAP explains "engine" rather than a dozen one-hot columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .. import normalize as norm
from ..ingest.records import finalize_partial
from ..schema import BY_NAME, COLUMNS
from .physics import HOST_W_PER_NODE, physics

CATEGORICAL = (
    "accelerator",
    "accelerator_vendor",
    "acc_kind",
    "acc_family",
    "model",
    "model_kind",
    "scenario",
    "precision",
    "engine",
    "system_type",
)
# target_qps is left out on purpose: MLPerf Server runs set it to about the result they report (a leak)
NUMERIC_FROM_RECORD = (
    "accelerators_total",
    "accelerators_per_node",
    "nodes",
    "host_cpu_cores",
    "host_memory_gb",
    "tensor_parallel",
    "max_num_seqs",
    "max_num_batched_tokens",
    "input_tokens_mean",
    "output_tokens_mean",
)
NUMERIC_PHYSICS = (
    "acc_release_year",
    "acc_memory_gb",
    "acc_bandwidth_tbs",
    "acc_tflops",
    "acc_tdp_w",
    "acc_interconnect_gbs",
    "model_params_total_b",
    "model_params_active_b",
    "model_layers",
    "model_hidden",
    "model_kv_heads",
    "model_head_dim",
    "model_moe",
    "model_gflops_per_sample",
    "bytes_per_param",
    "total_memory_gb",
    "total_bandwidth_tbs",
    "total_tflops",
    "weights_gb",
    "memory_headroom",
    "fits_in_memory",
    "kv_bytes_per_token",
    "flops_per_byte",
)
# completion stores, per row, a hash of the record fields it read: a frame is reused only while they are unchanged
COMPLETION_KEY = "completed_from"
_INPUT_COLUMNS = tuple(c.name for c in COLUMNS if c.group != "metrics")
DERIVED = ("is_llm", "cpu_only", "engine_major", "round_index", "log_roofline", "log_work_bound", "log_power_ceiling")


class RecordFeaturizer(BaseEstimator, TransformerMixin):
    """Turn schema records (as `data build` or `bench` writes them) into the feature matrix.

    Parameters
    ----------
    use_identity : keep categorical identity columns (accelerator id, model id, ...). Without them the model can
        only use physics, which is what a leave-one-accelerator-out evaluation probes.
    """

    def __init__(self, use_identity: bool = True):
        self.use_identity = use_identity

    def fit(self, records: pd.DataFrame, y=None):
        return self.fit_frame(self.complete(records))

    def transform(self, records: pd.DataFrame) -> pd.DataFrame:
        return self.matrix(self.complete(records))

    def fit_frame(self, frame: pd.DataFrame):
        """`fit` on records already passed through `complete` (predictors reuse that work)."""
        # a column with no value in training still needs one level for XGBoost's categorical support
        self.categories_ = {c: sorted(frame[c].dropna().astype(str).unique()) or ["?"] for c in self._categorical()}
        self.feature_names_out_ = np.array(
            list(self._categorical()) + list(NUMERIC_FROM_RECORD) + list(NUMERIC_PHYSICS) + list(DERIVED), dtype=object
        )
        return self

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`transform` on records already passed through `complete`."""
        out = pd.DataFrame(index=frame.index)
        for column in self._categorical():
            values = frame[column].astype("object")
            known = values.isin(self.categories_[column])  # an unseen level is missing, as XGBoost expects
            out[column] = pd.Categorical(values.where(known, None), categories=self.categories_[column])
        for column in NUMERIC_FROM_RECORD + NUMERIC_PHYSICS + DERIVED:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        return out[list(self.feature_names_out_)]

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_out_

    def _categorical(self) -> tuple[str, ...]:
        return (
            CATEGORICAL
            if self.use_identity
            else ("accelerator_vendor", "acc_kind", "model_kind", "scenario", "precision", "engine", "system_type")
        )

    @staticmethod
    def complete(records: pd.DataFrame) -> pd.DataFrame:
        """Records completed (catalog ids, engine, ...) and joined with their physics features, as a new frame.

        A frame this returned (or a row subset of one) is returned as it is while its record fields are unchanged;
        after an edit (another accelerator, count, model...) it is completed afresh from the edited fields.
        """
        if is_complete(records):
            return records
        frame = finalize_partial(records)
        phys = physics(frame)
        stale = [c for c in (*phys.columns, *DERIVED, COMPLETION_KEY) if c in frame.columns and c not in BY_NAME]
        frame = pd.concat([frame.drop(columns=stale), phys], axis=1)
        frame["is_llm"] = frame["benchmark"].map(
            lambda b: float(norm.is_llm_benchmark(b) if isinstance(b, str) else False)
        )
        frame["cpu_only"] = frame["cpu_only"].astype("float64")
        frame["engine_major"] = frame["engine_version"].map(_major)
        frame["round_index"] = frame["round"].map(round_index)
        frame["log_roofline"] = np.log(pd.to_numeric(frame["roofline_per_accelerator"], errors="coerce"))
        frame["log_work_bound"] = np.log(pd.to_numeric(frame["work_bound_per_accelerator"], errors="coerce"))
        frame["log_power_ceiling"] = np.log(power_ceiling_per_accelerator(frame))
        frame[COMPLETION_KEY] = _input_hash(frame)
        return frame


def is_complete(records: pd.DataFrame) -> bool:
    """True when every row was completed from exactly the record fields it holds now."""
    if COMPLETION_KEY not in records.columns:
        return False
    return bool((records[COMPLETION_KEY].to_numpy() == _input_hash(records).to_numpy()).all())


def _input_hash(frame: pd.DataFrame) -> pd.Series:
    return pd.util.hash_pandas_object(frame[[c for c in _INPUT_COLUMNS if c in frame.columns]], index=False)


def _major(version) -> float:
    try:
        return float(str(version).split(".")[0]) if isinstance(version, str) else np.nan
    except ValueError:
        return np.nan


def round_index(value) -> float:
    """Half-years since MLPerf began: rounds come as X.0 and X.1 each year ('v4.1' -> 9, 'v5.0' -> 10);
    own benchmark runs and unknown rounds -> NaN."""
    try:
        major, minor = str(value).lstrip("v").split(".")[:2]
        return float(int(major) * 2 + min(int(minor), 1))
    except ValueError:
        return np.nan


def power_ceiling_per_accelerator(frame: pd.DataFrame) -> pd.Series:
    """W per accelerator a system can draw at most: the part's TDP plus its share of a node's host allowance (what
    power scales with: a new part draws a similar share of it, not similar watts)."""
    tdp = pd.to_numeric(frame["acc_tdp_w"], errors="coerce").where(lambda w: w > 0)
    total = pd.to_numeric(frame["accelerators_total"], errors="coerce").where(lambda n: n > 0)
    nodes = pd.to_numeric(frame["nodes"], errors="coerce").fillna(1)
    return tdp + HOST_W_PER_NODE * nodes / total
