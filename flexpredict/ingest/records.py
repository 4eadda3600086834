"""From raw reader output to schema records: canonical names, derived metrics, ids, de-duplication."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .. import catalogs
from .. import normalize as norm
from ..schema import COLUMN_NAMES, KEY_COLUMNS, conform

# lower wins when two sources hold the same result: raw logs beat published tables beat re-exports
SOURCE_PRIORITY = {
    "results-tree": 0,
    "flexpredict-bench": 0,
    "aic-silicon": 0,
    "summary-results": 1,
    "cmx-summary": 1,
    "cm-result": 1,
    "openmlperf": 2,
}
# sources whose every row is its own run (no MLPerf result key): unique by record_id
RUN_SOURCES = ("flexpredict-bench", "aic-silicon")
_SAMPLES_PER_QUERY = {"MultiStream": 8}


def finalize(raw: list[dict]) -> pd.DataFrame:
    """Schema records from raw dicts (any mix of readers), de-duplicated and sorted."""
    if not raw:
        return conform(pd.DataFrame())
    frame = _complete(pd.DataFrame(raw))
    frame["record_id"] = [
        rid if rid else record_hash(*key) for rid, *key in zip(frame["record_id"], *(frame[c] for c in KEY_COLUMNS))
    ]
    frame["run_group"] = [
        grp if grp else record_hash(r, d, s, p, m, sc)
        for grp, r, d, s, p, m, sc in zip(
            frame["run_group"],
            frame["round"],
            frame["division"],
            frame["submitter"],
            frame["system_id"],
            frame["model"],
            frame["scenario"],
        )
    ]
    return _deduplicate(conform(frame))


def finalize_partial(records: pd.DataFrame) -> pd.DataFrame:
    """Fill what ingest derives (catalog ids, counts, engine, precision, model, metrics) into user-made records
    that carry only raw MLPerf-style fields; idempotent on records that are complete already."""
    return conform(_complete(records.copy()), extra=True)


def derive_metrics(records: pd.DataFrame) -> pd.DataFrame:
    """Raw records (LoadGen's values as measured) with what ingest derives from them: tokens/s from samples/s,
    throughput per accelerator, energy per token and per sample, the headline. The one place these are computed, for
    every reader and for `flexpredict bench`."""
    frame = _raw_frame(records)
    _metrics(frame)
    return frame


def _raw_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Every column ingest reads present, missing values as None."""
    frame = records.copy()
    for column in COLUMN_NAMES + ("used_model", "weight_data_types", "energy_j_per_query", "location"):
        if column not in frame.columns:
            frame[column] = None
    return frame.astype(object).where(frame.notna(), None)


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    frame = _raw_frame(frame)
    frame["scenario"] = [_scenario(b, s) for b, s in zip(frame["benchmark"], frame["scenario"])]
    models: dict[tuple[str, str], str | None] = {}
    frame["model"] = [
        m if m else models.setdefault((b, u), _model(b, u))
        for m, b, u in zip(frame["model"], frame["benchmark"], frame["used_model"])
    ]
    _hardware(frame)
    _software(frame)
    _metrics(frame)
    _bounds(frame)
    return frame


def _scenario(benchmark, scenario):
    # MLPerf v5.0 runs the interactive LLM benchmarks in the Server scenario with tighter bounds
    if scenario == "Server" and benchmark and "-interactive" in benchmark:
        return "Interactive"
    return scenario


def _model(benchmark, used_model):
    """Canonical model: the model actually run (open division may swap it), else the benchmark's model."""
    catalog = catalogs.models()
    if used_model and norm.benchmark(used_model) != benchmark:
        row = catalog.resolve(used_model)
        if row:
            return row["id"]
        if norm.benchmark(used_model) not in {benchmark, norm.benchmark_base(benchmark or "")}:
            return str(used_model).lower()  # a model we do not know: explicit, not folded into the benchmark's
    if not benchmark:
        return None
    row = catalog.resolve(benchmark)
    return row["id"] if row else norm.benchmark_base(benchmark)


def _hardware(frame: pd.DataFrame) -> None:
    catalog = catalogs.accelerators()
    cpu_only, raw_names, per_node, ids, vendors, guesses = [], [], [], [], [], []
    for name, count, cpu, sockets, given_cpu_only, given_id in zip(
        frame["accelerator_raw"],
        frame["accelerators_per_node"],
        frame["host_cpu"],
        frame["host_cpus_per_node"],
        frame["cpu_only"],
        frame["accelerator"],
    ):
        no_accelerator = given_cpu_only is True or norm.clean_text(name) is None or count == 0
        if no_accelerator and cpu:
            name, count = cpu, sockets or 1
        cpu_only.append(bool(no_accelerator))
        raw_names.append(name)
        per_node.append(count)
        # a given catalog id wins over the name; its catalog row (not an older vendor value) names the vendor
        row = catalog.by_id.get(given_id) if given_id else _match(catalog, name)
        ids.append(given_id or (row["id"] if row else None))
        vendors.append(row.get("vendor") if row else None)
        guesses.append(_vendor_guess(name))
    frame["cpu_only"], frame["accelerator_raw"], frame["accelerators_per_node"] = cpu_only, raw_names, per_node
    frame["accelerator"] = ids
    frame["accelerator_vendor"] = [
        v or given or g for v, given, g in zip(vendors, frame["accelerator_vendor"], guesses)
    ]
    frame["nodes"] = [n if n else 1 for n in frame["nodes"]]
    # a total stated outright (newer tables, heterogeneous systems) beats per-node x nodes
    frame["accelerators_total"] = [
        t if t else (a * n if a else None)
        for t, a, n in zip(frame["accelerators_total"], frame["accelerators_per_node"], frame["nodes"])
    ]


_MATCHES: dict = {}


def _match(catalog, name):
    """Catalog row for a submitted name, cached: datasets repeat a few dozen names thousands of times."""
    key = (id(catalog), name)
    if key not in _MATCHES:
        _MATCHES[key] = catalog.match(name)
    return _MATCHES[key]


_VENDORS = ("nvidia", "amd", "intel", "qualcomm", "google", "untether", "huawei", "moffett", "ampere", "arm")


def _vendor_guess(name) -> str | None:
    text = str(name or "").lower()
    for vendor in _VENDORS:
        if vendor in text:
            return vendor
    if "habana" in text or "gaudi" in text or "xeon" in text:
        return "intel"
    if "epyc" in text or "instinct" in text:
        return "amd"
    if "tpu" in text:
        return "google"
    return None


def _software(frame: pd.DataFrame) -> None:
    parsed = [
        norm.engine(f, b) if not e else (e, v)
        for f, b, e, v in zip(frame["framework_raw"], frame["benchmark"], frame["engine"], frame["engine_version"])
    ]
    frame["engine"] = [p[0] for p in parsed]
    frame["engine_version"] = [p[1] for p in parsed]
    frame["precision"] = [p if p else norm.precision(w) for p, w in zip(frame["precision"], frame["weight_data_types"])]


def _bounds(frame: pd.DataFrame) -> None:
    """Latency bounds of Server/Interactive results whose log is not at hand (tables-only rounds such as v5.0):
    the benchmark's published bounds, which every valid result met by the rules."""
    presets: dict = {}
    for i, (bench, scen) in enumerate(zip(frame["benchmark"], frame["scenario"])):
        if scen not in ("Server", "Interactive") or not bench:
            continue
        base = norm.benchmark_base(bench)
        if base not in presets:
            found = catalogs.find_slo_preset(base)
            presets[base] = found[1] if found else {}
        bounds = presets[base].get("interactive" if scen == "Interactive" else "server") or {}
        for column, key in (
            ("ttft_bound_ms", "ttft_ms"),
            ("tpot_bound_ms", "tpot_ms"),
            ("latency_bound_ms", "latency_ms"),
        ):
            if frame.at[frame.index[i], column] is None and bounds.get(key):
                frame.at[frame.index[i], column] = float(bounds[key])


def _metrics(frame: pd.DataFrame) -> None:
    # LLMs count tokens: by benchmark name, or (sources without an MLPerf benchmark) by a token rate alone
    # (or, for own runs of any model, a throughput stated in tokens)
    llm = (
        np.array([norm.is_llm_benchmark(b) for b in frame["benchmark"]], dtype=bool)
        | (frame["tokens_per_s"].notna() & frame["samples_per_s"].isna()).to_numpy()
        | (frame["throughput_unit"] == "Tokens/s").to_numpy()
    )
    tps = pd.to_numeric(frame["tokens_per_s"], errors="coerce")
    sps = pd.to_numeric(frame["samples_per_s"], errors="coerce")
    per_sample = pd.to_numeric(frame["tokens_per_sample"], errors="coerce")
    per_sample = per_sample.fillna(
        pd.Series([norm.tokens_per_sample(a) for a in frame["accuracy_raw"]], index=frame.index, dtype="float64")
    )
    # rounds that publish no TOKENS_PER_SAMPLE (the v3.1/v4.0 imports) borrow the benchmark's median from others
    # (or the tokens/samples ratio of runs that logged both)
    family = frame["benchmark"].map(lambda b: norm.benchmark_base(b) if b else b)
    typical = per_sample.fillna(tps / sps).groupby(family).transform("median")
    factor = per_sample.fillna(typical)
    derive = llm & tps.isna().to_numpy() & sps.notna().to_numpy() & factor.notna().to_numpy()
    given = frame["tokens_derived"].map(lambda v: v is True)
    tps = tps.where(~derive, sps * factor)
    frame["tokens_per_sample"] = per_sample
    frame["tokens_per_s"] = tps
    frame["tokens_derived"] = np.where(llm, derive | given.to_numpy(), None)  # type: ignore[assignment]  # numpy stubs: y=None

    total = pd.to_numeric(frame["accelerators_total"], errors="coerce")
    work = tps.where(llm, sps)
    frame["throughput_per_accelerator"] = (work / total).where(total > 0)

    missing = frame["throughput"].isna()
    headline = [
        _headline(is_llm, t, s, row)
        for is_llm, t, s, row in zip(
            llm, tps, sps, frame[["scenario", "latency_p90_ms", "latency_p99_ms"]].to_dict("records")
        )
    ]
    frame.loc[missing, "throughput"] = [h[0] for h, m in zip(headline, missing) if m]
    frame.loc[missing, "throughput_unit"] = [h[1] for h, m in zip(headline, missing) if m]

    power = pd.to_numeric(frame["power_w"], errors="coerce")
    frame["energy_j_per_token"] = (power / tps).where(llm & (tps > 0))
    per_query = pd.to_numeric(frame["energy_j_per_query"], errors="coerce")
    spq = frame["scenario"].map(lambda s: _SAMPLES_PER_QUERY.get(s, 1))
    frame["energy_j_per_sample"] = (power / sps).where(sps > 0).fillna(per_query / spq)


def _headline(is_llm, tokens, samples, row) -> tuple[float | None, str | None]:
    """The published-style headline from log values, for records that came without one."""
    scenario = row.get("scenario")
    if scenario in ("SingleStream", "MultiStream"):
        value = row.get("latency_p90_ms") if scenario == "SingleStream" else row.get("latency_p99_ms")
        return value, "Latency (ms)"
    if is_llm and tokens == tokens:
        return tokens, "Tokens/s"
    if samples == samples:
        return samples, "Queries/s" if scenario == "Server" else "Samples/s"
    return None, None


def record_hash(*parts) -> str:
    """A short stable id from the parts of a key."""
    return hashlib.sha1("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:16]


def _deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """One record per result: the best source wins. Runs without an MLPerf key (own runs, samples) are each unique."""
    frame = frame.assign(_rank=frame["source_kind"].map(SOURCE_PRIORITY).fillna(3))
    frame = frame.sort_values(["_rank", "source"], kind="stable")
    bench = frame["source_kind"].isin(RUN_SOURCES)
    mlperf = frame[~bench].drop_duplicates(list(KEY_COLUMNS), keep="first")
    # OpenMLPerf rows carry no Platform: match them on the system name instead
    named = mlperf["source_kind"] != "openmlperf"
    alt_key = ["round", "division", "submitter", "system_name", "benchmark", "scenario"]
    taken = set(map(tuple, mlperf.loc[named, alt_key].astype(str).to_numpy()))
    duplicate = ~named & mlperf[alt_key].astype(str).apply(tuple, axis=1).isin(taken)
    mlperf = mlperf[~duplicate]
    result = pd.concat([mlperf, frame[bench].drop_duplicates("record_id")])
    return (
        result.sort_values(list(KEY_COLUMNS) + ["record_id"], kind="stable", na_position="last")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
