"""The record schema: the one contract every layer shares.

A *record* is one measured configuration: one (round, division, submitter, system, benchmark, scenario) result of an
MLPerf round, or one run of flexpredict's own benchmark. Ingest writes records, features read them, predictors learn
from them, `bench` produces them. Columns are defined once here, with type, unit and meaning; `docs_markdown()`
renders the table that README.md points to.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas extension dtype: "string", "Int64", "float64", "boolean"
    unit: str
    meaning: str
    group: str


def _cols(group: str, rows: list[tuple[str, str, str, str]]) -> list[Column]:
    return [Column(name, dtype, unit, meaning, group) for name, dtype, unit, meaning in rows]


COLUMNS: tuple[Column, ...] = tuple(
    _cols(
        "identity",
        [
            (
                "record_id",
                "string",
                "",
                "Stable id: hash of (round, division, submitter, system_id, benchmark, scenario)"
                " for MLPerf rows; of the run folder and start time for flexpredict-bench rows.",
            ),
            (
                "run_group",
                "string",
                "",
                "Same id for records of one physical run family: the -99/-99.9 accuracy twins of"
                " a (round, division, submitter, system, model, scenario). Group splits on it so twins never leak.",
            ),
            ("round", "string", "", "MLPerf Inference round, e.g. v4.1; 'bench' for flexpredict's own runs."),
            ("division", "string", "", "closed / open / network (MLPerf division); 'bench' for own runs."),
            ("submitter", "string", "", "Submitting organisation."),
            ("system_id", "string", "", "MLPerf Platform (the systems-JSON basename) or the bench host name."),
            ("system_name", "string", "", "Human-readable system description as submitted."),
            ("system_type", "string", "", "datacenter / edge / datacenter,edge."),
            ("availability", "string", "", "available / preview / rdi (research, development, internal)."),
            ("benchmark", "string", "", "MLPerf benchmark name as in the rules, e.g. llama2-70b-99.9, resnet."),
            ("model", "string", "", "Canonical model id, e.g. llama2-70b, resnet50 (features/models.yaml)."),
            (
                "model_config",
                "string",
                "",
                "Absolute path of the Hugging Face config.json of a model served from a local folder (own runs):"
                " the physics reads an uncatalogued model's size from it.",
            ),
            (
                "scenario",
                "string",
                "",
                "Offline / Server / Interactive / SingleStream / MultiStream (the scenario folder"
                " and published table, never the log's Scenario line: Interactive logs say Server) / ClosedLoop.",
            ),
            ("valid", "boolean", "", "Result valid (LoadGen VALID, no errors, compliance passed where known)."),
            ("source", "string", "", "Path of the file the record came from, relative to the source root."),
            (
                "source_kind",
                "string",
                "",
                "results-tree / summary-results / cmx-summary / cm-result / openmlperf /"
                " aic-silicon / flexpredict-bench.",
            ),
            (
                "published",
                "boolean",
                "",
                "True when the result is a row of its round's published table"
                " (summary_results.json, cmx/cm summaries); False for a log found in a results tree without a published"
                " row; null for sources without a published table (own runs, latency-under-load samples).",
            ),
        ],
    )
    + _cols(
        "hardware",
        [
            ("accelerator_raw", "string", "", "Accelerator name as submitted (host CPU name for CPU-only systems)."),
            ("accelerator", "string", "", "Catalog id from features/accelerators.yaml; null when the name is unknown."),
            ("accelerator_vendor", "string", "", "nvidia / amd / intel / google / qualcomm / ...; null when unknown."),
            ("accelerators_per_node", "Int64", "count", "Accelerators per node (CPU sockets for CPU-only systems)."),
            ("nodes", "Int64", "count", "Number of nodes."),
            ("accelerators_total", "Int64", "count", "accelerators_per_node x nodes."),
            ("accelerator_memory_gb", "float64", "GB", "Memory per accelerator as submitted (10^9 bytes)."),
            ("cpu_only", "boolean", "", "True when no accelerator was used (the host CPU ran the model)."),
            ("host_cpu", "string", "", "Host processor model name as submitted."),
            ("host_cpus_per_node", "Int64", "count", "Host processor sockets per node."),
            ("host_cpu_cores", "Int64", "count", "Cores per host processor as submitted."),
            ("host_memory_gb", "float64", "GB", "Host memory per node."),
        ],
    )
    + _cols(
        "software",
        [
            ("framework_raw", "string", "", "Software stack as submitted, e.g. 'TensorRT 10.2.0, CUDA 12.4'."),
            (
                "engine",
                "string",
                "",
                "Inference engine: tensorrt-llm / tensorrt / vllm / sglang / pytorch /"
                " onnxruntime / openvino / ... ; null when unknown.",
            ),
            ("engine_version", "string", "", "Engine version parsed from framework_raw."),
            ("precision", "string", "", "Weight precision: fp4 / fp8 / int8 / int4 / bf16 / fp16 / fp32 / mixed."),
            ("operating_system", "string", "", "Operating system as submitted."),
        ],
    )
    + _cols(
        "workload",
        [
            (
                "target_qps",
                "float64",
                "queries/s",
                "LoadGen target QPS (Server) or expected QPS (Offline). Not a"
                " predictor feature: the submitter picks it from the measured result (it leaks).",
            ),
            (
                "concurrency",
                "Int64",
                "count",
                "Requests kept in flight by a closed-loop load generator (concurrency"
                " sweeps, bench --concurrency); null for MLPerf's open-loop scenarios.",
            ),
            (
                "ttft_bound_ms",
                "float64",
                "ms",
                "The run's TTFT p99 bound (LoadGen ttft_latency, or the benchmark's"
                " published bound for rounds without logs); LLM Server/Interactive only.",
            ),
            (
                "tpot_bound_ms",
                "float64",
                "ms",
                "The run's TPOT p99 bound (LoadGen tpot_latency, or the published bound); LLM Server/Interactive only.",
            ),
            (
                "latency_bound_ms",
                "float64",
                "ms",
                "The run's query-latency bound (LoadGen target_latency) for non-LLM Server results.",
            ),
            (
                "serving_mode",
                "string",
                "",
                "aggregated (prefill and decode on the same workers) / disaggregated"
                " (separate prefill and decode workers); null when not stated.",
            ),
            (
                "tensor_parallel",
                "Int64",
                "count",
                "Tensor-parallel degree of one replica (decode workers when"
                " disaggregated); own runs and latency-under-load samples.",
            ),
            ("pipeline_parallel", "Int64", "count", "Pipeline-parallel degree of one replica."),
            ("expert_parallel", "Int64", "count", "Expert-parallel degree of the MoE layers of one replica."),
            (
                "attention_dp",
                "Int64",
                "count",
                "Attention data-parallel degree of one replica (GPUs per replica = tensor x pipeline x attention-DP).",
            ),
            ("max_num_seqs", "Int64", "count", "Engine max concurrent sequences (own benchmark runs)."),
            ("max_num_batched_tokens", "Int64", "tokens", "Engine max batched tokens per step (own benchmark runs)."),
            ("input_tokens_mean", "float64", "tokens", "Mean prompt length (own runs, latency-under-load samples)."),
            (
                "output_tokens_mean",
                "float64",
                "tokens",
                "Mean generated length (own runs, latency-under-load samples).",
            ),
        ],
    )
    + _cols(
        "metrics",
        [
            ("throughput", "float64", "throughput_unit", "Headline result as published (per whole system)."),
            ("throughput_unit", "string", "", "Tokens/s, Samples/s, Queries/s or Latency (ms), as published."),
            (
                "tokens_per_s",
                "float64",
                "tokens/s",
                "Generated tokens per second, whole system (LLMs). For a"
                " closed-loop run without a measured rate (latency-under-load samples) it is Little's law:"
                " concurrency x output_tokens_mean / (ttft + (output_tokens_mean - 1) x tpot).",
            ),
            (
                "tokens_derived",
                "boolean",
                "",
                "True when tokens_per_s = samples_per_s x tokens_per_sample (older rounds"
                " published LLM results in samples/s); where the row gives no TOKENS_PER_SAMPLE, the median of the same"
                " benchmark in the other rounds is used.",
            ),
            ("samples_per_s", "float64", "samples/s", "Samples (queries for Server) per second, whole system."),
            (
                "throughput_per_accelerator",
                "float64",
                "tokens/s or samples/s",
                "tokens_per_s (LLMs) or samples_per_s (others) divided by accelerators_total.",
            ),
            ("latency_p50_ms", "float64", "ms", "Median query latency."),
            ("latency_p90_ms", "float64", "ms", "90th percentile query latency (MLPerf SingleStream metric)."),
            ("latency_p99_ms", "float64", "ms", "99th percentile query latency (MLPerf MultiStream/Server metric)."),
            (
                "ttft_p50_ms",
                "float64",
                "ms",
                "Median time to first token (LLM Server/Interactive); for"
                " latency-under-load samples the run's central statistic (the source does not say mean or median).",
            ),
            ("ttft_p90_ms", "float64", "ms", "90th percentile time to first token."),
            ("ttft_p99_ms", "float64", "ms", "99th percentile time to first token."),
            (
                "tpot_p50_ms",
                "float64",
                "ms",
                "Median time per output token (central statistic for latency-under-load samples, as ttft_p50_ms).",
            ),
            ("tpot_p90_ms", "float64", "ms", "90th percentile time per output token."),
            ("tpot_p99_ms", "float64", "ms", "99th percentile time per output token."),
            ("power_w", "float64", "W", "Average system power during the run (MLPerf power measurement)."),
            ("energy_j_per_token", "float64", "J/token", "power_w / tokens_per_s (LLMs)."),
            (
                "energy_j_per_sample",
                "float64",
                "J/sample",
                "power_w / samples_per_s, or the published energy per"
                " query for SingleStream/MultiStream (millijoules / 1000 / samples per query).",
            ),
            ("tokens_per_sample", "float64", "tokens", "Mean generated tokens per sample (TOKENS_PER_SAMPLE)."),
            ("accuracy_raw", "string", "", "Accuracy string or value as published."),
        ],
    )
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
METRIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.group == "metrics")
KEY_COLUMNS: tuple[str, ...] = ("round", "division", "submitter", "system_id", "benchmark", "scenario")
SCENARIOS: tuple[str, ...] = ("Offline", "Server", "Interactive", "SingleStream", "MultiStream", "ClosedLoop")
"""MLPerf's five scenarios, plus ClosedLoop: a fixed number of requests in flight (`concurrency`), as latency-under-load
sweeps run them; not an MLPerf scenario."""


class SchemaError(ValueError):
    """Input that does not fit the record schema; the message names the column and what was expected."""


def conform(frame: pd.DataFrame, *, extra: bool = False) -> pd.DataFrame:
    """Return `frame` with every schema column, in schema order and with schema dtypes.

    Missing columns are added as nulls. Values that cannot be converted raise SchemaError naming the column.
    With extra=True, columns outside the schema are kept (after the schema columns).
    """
    out = {}
    n = len(frame)
    for col in COLUMNS:
        if col.name not in frame.columns:
            out[col.name] = pd.array([None] * n, dtype=col.dtype)  # type: ignore[call-overload]  # stubs: dtype str
            continue
        out[col.name] = _convert(frame[col.name], col)
    result = pd.DataFrame(out, index=frame.index)
    if extra:
        others = [c for c in frame.columns if c not in BY_NAME]
        result = pd.concat([result, frame[others]], axis=1)
    return result.reset_index(drop=True)


def _convert(series: pd.Series, col: Column) -> pd.Series:
    try:
        if col.dtype == "string":
            return series.astype("string")
        if col.dtype == "boolean":
            if series.dtype == object or str(series.dtype) == "string":
                mapped = series.map(_to_bool, na_action="ignore")
                return mapped.astype("boolean")
            return series.astype("boolean")
        numeric = pd.to_numeric(series, errors="raise")
        if col.dtype == "Int64":
            return numeric.round().astype("Int64")
        return numeric.astype("float64")
    except (ValueError, TypeError) as exc:
        bad = _first_bad_value(series, col)
        raise SchemaError(f"column '{col.name}': expected {_describe(col)}, got {bad!r}") from exc


def _to_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "valid"}:
        return True
    if text in {"false", "0", "no", "invalid"}:
        return False
    raise ValueError(value)


def _first_bad_value(series: pd.Series, col: Column):
    for value in series.dropna():
        try:
            if col.dtype == "boolean":
                _to_bool(value)
            elif col.dtype != "string":
                float(value)
        except (ValueError, TypeError):
            return value
    return None


def _describe(col: Column) -> str:
    return {"string": "text", "Int64": "an integer", "float64": "a number", "boolean": "true/false"}[col.dtype] + (
        f" in {col.unit}" if col.unit and col.unit != "count" else ""
    )


def docs_markdown() -> str:
    """The schema as a Markdown table (column, type, unit, meaning), grouped as defined."""
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    group = None
    for col in COLUMNS:
        if col.group != group:
            group = col.group
            lines.append(f"| **{group}** | | | |")
        lines.append(f"| `{col.name}` | {col.dtype} | {col.unit} | {col.meaning} |")
    return "\n".join(lines)
