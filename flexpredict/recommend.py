"""Recommendations: which hardware, how many, which engine and precision, for an SLO and a budget.

Candidates are catalog accelerators x counts x engines seen on that vendor x precisions the part supports, minus
those whose model does not fit. Each is predicted (throughput, TTFT/TPOT or latency, power, with 90 % intervals),
priced, checked against the SLO (probability from the interval) and the budget, and ranked by the objective.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalogs, scores
from .configs import accelerator_row, config_records, resolve_model
from .costs import HOURS_PER, PriceBook, usd_per_million
from .features.physics import BYTES_PER_PARAM
from .normalize import is_llm_benchmark

DEFAULT_MODEL = "llama2-70b"
COUNTS = (1, 2, 4, 8)
MEMORY_FOR_WEIGHTS = 0.9
Z90 = 1.6448536269514722  # the 90 % interval is +-1.645 sigma of a log-normal
LLM_PRECISIONS = ("fp4", "fp8", "int8", "fp16")
OTHER_PRECISIONS = ("int8", "fp8", "fp16")
TARGETS_USED = ("throughput_per_accelerator", "ttft_p99_ms", "tpot_p99_ms", "latency_p99_ms", "latency_p90_ms",
                "power_w", "energy_j_per_token", "energy_j_per_sample")


class RequestError(ValueError):
    """A request that cannot be served as given (unknown model, bad unit, ...): one line for the user."""


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|sec|seconds?|milliseconds?)?\s*$", re.IGNORECASE)


def parse_duration_ms(text: str | float | None, option: str = "--latency-slo") -> float | None:
    """'200ms' -> 200, '0.2s' -> 200, '200' -> 200 (ms); anything else raises RequestError."""
    if text is None:
        return None
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise RequestError(f"{option}: expected a duration like 200ms, 0.2s or 200 (ms), got '{text}'")
    value = float(match.group(1))
    unit = (match.group(2) or "ms").lower()
    return value * 1000.0 if unit.startswith("s") else value


_LOAD = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(k)?\s*(tok(?:ens)?/s|samples?/s|q(?:ueries)?/s|qps|req(?:uests)?/s|rps"
                   r"|users?|concurrent(?: users)?|concurrency)?\s*$", re.IGNORECASE)
LOAD_KINDS = ("tokens_per_s", "qps", "concurrency")


@dataclass(frozen=True)
class Load:
    """A load as the user says it: generated tokens/s, requests (samples) per s, or concurrent users; `kind` None
    (a bare number) is the model's own throughput unit (tokens/s for LLMs, samples/s otherwise)."""

    value: float
    kind: str | None = None

    def resolved(self, llm: bool) -> Load:
        return self if self.kind else Load(self.value, "tokens_per_s" if llm else "qps")

    def __str__(self) -> str:
        unit = {"tokens_per_s": "tok/s", "qps": "requests/s", "concurrency": "concurrent users", None: ""}[self.kind]
        value = f"{self.value:,.0f}" if self.value >= 100 else f"{self.value:.3g}"
        return f"{value} {unit}".strip()


def parse_load(text: str | None, option: str = "--load") -> Load | None:
    """'5000tok/s', '5k tok/s' (tokens/s); '20 samples/s', '3 req/s', '3qps' (requests/s); '64 users' (requests in
    flight); '300' (the model's unit)."""
    if text is None:
        return None
    match = _LOAD.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise RequestError(f"{option}: expected a load like 5000tok/s, 5k tok/s, 3req/s, 20samples/s or 64users, "
                           f"got '{text}'")
    unit = (match.group(3) or "").lower()
    kind = None if not unit else "tokens_per_s" if unit.startswith("tok") else \
        "concurrency" if unit.startswith(("user", "concurren")) else "qps"
    return Load(float(match.group(1)) * (1000.0 if match.group(2) else 1.0), kind)


@dataclass
class Request:
    model: str | None = None  # None: DEFAULT_MODEL, named in the output header
    budget: float | None = None
    budget_period: str = "month"
    pricing: str = "cloud"
    amortize_years: float = 3.0
    electricity_usd_per_kwh: float = 0.15
    prices_file: Path | None = None
    latency_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    tpot_slo_ms: float | None = None
    slo_preset: str | None = None
    scenario: str | None = None
    load: Load | float | None = None  # a bare number: the model's unit (tokens/s for LLMs)
    isl: int | None = None  # mean prompt tokens (None: the model's MLPerf workload, else 1024)
    osl: int | None = None  # mean output tokens (None: the model's MLPerf workload, else 256)
    objective: str = "throughput"
    vendor: str | None = None
    accelerator: str | None = None
    max_accelerators: int = 16
    top: int = 10
    confidence: float = 0.8


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


def recommend(request: Request, *, bundle=None, model_dir: Path | None = None, records: pd.DataFrame | None = None,
              capacity_model=None) -> Recommendation:
    """Score every candidate configuration and rank those that meet the SLO within the budget. Without `bundle`,
    the model in `model_dir` (default: the shipped one) is used, through its remembered score tables. With a
    capacity function (`capacity_model`, else the model folder's) an LLM request with an SLO, a workload shape or a
    load in requests/s or users is sized by each candidate's throughput at the SLO."""
    if request.pricing not in ("cloud", "own"):
        raise RequestError(f"--pricing: expected cloud or own, got '{request.pricing}'")
    if request.budget_period not in HOURS_PER:
        raise RequestError(f"--budget-period: expected hour, month or year, got '{request.budget_period}'")
    if request.objective not in ("throughput", "cost", "energy"):
        raise RequestError(f"--objective: expected throughput, cost or energy, got '{request.objective}'")
    if not 0 < request.confidence < 1:
        raise RequestError(f"--confidence: expected a probability between 0 and 1, got {request.confidence}")
    for option, value in (("--isl", request.isl), ("--osl", request.osl)):
        if value is not None and not value >= 1:
            raise RequestError(f"{option}: expected a whole number of tokens >= 1, got {value}")
    try:
        model = resolve_model(request.model or DEFAULT_MODEL)
    except ValueError as exc:
        raise RequestError(str(exc)) from exc
    llm = model.get("kind") == "llm" or is_llm_benchmark(model["id"])
    slo, scenario = _slo(request, model, llm)
    load = _as_load(request.load, llm)
    workload = workload_of(model, request)
    if _wants_capacity(request, load, slo, llm) and capacity_model is None and bundle is None:
        capacity_model = _capacity_beside(model_dir, required=_needs_capacity(request, load))
    if capacity_model is None and _needs_capacity(request, load):
        raise RequestError("--isl/--osl and a --load in requests/s or users need the capacity function: pass a "
                           "model trained with it (`flexpredict train`)")
    prices = PriceBook.load(request.prices_file)
    if records is None:
        from . import dataset

        records = dataset.load()

    frame, funnel = _candidates(request, model, llm, scenario, prices, records)
    bounds = capacity_bounds(model, slo, scenario) if capacity_model is not None and llm else None
    if len(frame):
        frame = frame.join(_predictions(frame, model["id"], scenario, bundle, model_dir))
        if bounds is not None:
            frame = with_capacity(frame, capacity_model, bounds, workload, request.confidence, records)
        if "pred_throughput_per_accelerator" not in frame:
            raise RequestError(f"{model_dir or 'the model'}: predicts no throughput_per_accelerator (trained on too "
                               "few records); retrain it or pass another --model-dir")
        _score(frame, request, load, workload, slo, llm, prices)
        if bounds is not None:
            frame = at_sized_load(frame, capacity_model, load, workload, request.confidence)
    ranked, funnel = _filter(frame, request, funnel)
    rec = Recommendation(request, model, scenario, slo, "tokens/s" if llm else "samples/s", ranked, frame, funnel,
                         workload=workload, capacity_bounds=bounds)
    if ranked.empty:
        rec.explanation = _explain(frame, request, funnel, slo)
    else:
        rec.reasons = reasons(ranked.head(min(3, request.top)))
    return rec


def _as_load(load: Load | float | None, llm: bool) -> Load | None:
    if load is None:
        return None
    return (load if isinstance(load, Load) else Load(float(load))).resolved(llm)


def _wants_capacity(request: Request, load: Load | None, slo: dict, llm: bool) -> bool:
    return llm and (bool(slo) or _needs_capacity(request, load))


def _needs_capacity(request: Request, load: Load | None) -> bool:
    """A workload shape or a load in users/requests has no answer without the capacity function."""
    return request.isl is not None or request.osl is not None or (load is not None and load.kind != "tokens_per_s")


def _capacity_beside(model_dir: Path | None, required: bool):
    """The model folder's capacity function; None (the MLPerf operating-point predictions are used) when the folder
    has none and the request can do without."""
    from . import capacity

    folder = Path(model_dir) if model_dir else catalogs.default_model_dir()
    try:
        return capacity.load_beside(folder)
    except FileNotFoundError as exc:
        if required:
            raise RequestError(str(exc)) from exc
        return None
    except ValueError as exc:
        raise RequestError(str(exc)) from exc


def workload_of(model: dict, request: Request) -> dict:
    """ISL/OSL: as requested, else the model's MLPerf workload (features/workloads.yaml), else the default."""
    isl, osl = catalogs.workload_sequence(None, model)
    source = f"{model['id']}'s MLPerf workload" if model["id"] in catalogs.workloads() else "default workload"
    if request.isl is not None or request.osl is not None:
        source = "requested" if request.isl is not None and request.osl is not None else f"requested / {source}"
    return {"isl": float(request.isl or isl), "osl": float(request.osl or osl), "source": source}


def capacity_bounds(model: dict, slo: dict[str, float], scenario: str) -> dict[str, float]:
    """TTFT and TPOT p99 bounds to size for. A bound not given comes from the MLPerf scenario whose other bound is
    the closest at or above the given one (a 100 ms TPOT for llama2-70b: Server's 2 s TTFT), else the loosest; no
    bound at all: the scenario's (Offline: none)."""
    presets = [bounds for bounds in (preset_bounds(model, kind) for kind in ("interactive", "server")) if bounds]
    if not slo:
        kind = {"Server": "server", "Interactive": "interactive"}.get(scenario)
        chosen = preset_bounds(model, kind) if kind else None
        return {key: float(chosen[key]) if chosen and chosen.get(key) else math.inf for key in ("ttft_ms", "tpot_ms")}
    out = {key: float(slo[key]) for key in ("ttft_ms", "tpot_ms") if key in slo}
    for missing, given in (("ttft_ms", "tpot_ms"), ("tpot_ms", "ttft_ms")):
        if missing in out:
            continue
        candidates = sorted((float(b[given]), float(b[missing])) for b in presets if b.get(given) and b.get(missing))
        at_or_above = [bound for limit, bound in candidates if limit >= out.get(given, math.inf)]
        out[missing] = at_or_above[0] if at_or_above else candidates[-1][1] if candidates else math.inf
    return out


def with_capacity(frame: pd.DataFrame, capacity_model, bounds: dict[str, float], workload: dict,
                  confidence: float, records: pd.DataFrame) -> pd.DataFrame:
    """Candidates with the throughput they sustain at the bounds (capacity function, per accelerator, with its
    interval), the value at the requested confidence (the interval's lower side: what sizing and ranking use), the
    concurrency there, and how the evidence stands (measured / interpolated / transferred). A new frame."""
    from scipy.special import ndtri

    sized = capacity_model.throughput_at_slo(_capacity_records(frame, workload), ttft_ms=bounds["ttft_ms"],
                                             tpot_ms=bounds["tpot_ms"])
    point = sized["pred_throughput_per_accelerator"].to_numpy(dtype="float64")
    low = sized["pred_throughput_per_accelerator_lo"].to_numpy(dtype="float64")
    high = sized["pred_throughput_per_accelerator_hi"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        # log-normal spread from the interval's lower side; where that side is 0 (its pessimistic end misses the
        # bound), from the upper side
        sigma = np.where(low > 0, np.log(point / low), np.log(high / point)) / Z90
        sigma = np.where(point > 0, sigma, np.nan)
        at_confidence = np.where(point > 0, point * np.exp(-ndtri(confidence) * np.nan_to_num(sigma)), 0.0)
    return frame.assign(pred_throughput_per_accelerator=point, pred_throughput_per_accelerator_lo=low,
                        pred_throughput_per_accelerator_hi=high,
                        throughput_sigma=sigma, throughput_at_confidence_per_accelerator=at_confidence,
                        concurrency_at_capacity=sized["pred_concurrency"].to_numpy(),
                        evidence=evidence(frame, records, bounds))


def _capacity_records(frame: pd.DataFrame, workload: dict) -> pd.DataFrame:
    return config_records(frame.to_dict("records")).assign(input_tokens_mean=workload["isl"],
                                                          output_tokens_mean=workload["osl"])


def evidence(frame: pd.DataFrame, records: pd.DataFrame, bounds: dict[str, float]) -> np.ndarray:
    """Per candidate: 'measured' where MLPerf has the model on that accelerator in a scenario with exactly these
    bounds, 'interpolated' where it has the model on that accelerator in other scenarios (the curve between them),
    'transferred' where the model never ran on it (the speed of related results carries over)."""
    model_ids = set(frame["model"].astype(str))
    exact = [scenario for scenario, kind in (("Server", "server"), ("Interactive", "interactive"))
             if _same_bounds(preset_bounds(resolve_model(next(iter(model_ids))), kind), bounds)]
    if math.isinf(bounds["ttft_ms"]) and math.isinf(bounds["tpot_ms"]):
        exact.append("Offline")
    ran = records[records["model"].astype(str).isin(model_ids) & records["scenario"].isin(["Offline", "Server",
                                                                                           "Interactive"])
                  & records["valid"].fillna(False).astype(bool) & records["throughput_per_accelerator"].notna()]
    scenarios = {str(accelerator): set(group.astype(str))
                 for accelerator, group in ran.groupby(ran["accelerator"].astype(str))["scenario"]}
    seen = [scenarios.get(str(accelerator), set()) for accelerator in frame["accelerator"]]
    return np.array(["transferred" if not found else "measured" if found & set(exact) else "interpolated"
                     for found in seen], dtype=object)


def _same_bounds(preset: dict | None, bounds: dict[str, float]) -> bool:
    return bool(preset) and all(math.isclose(float(preset.get(key) or math.inf), bounds[key], rel_tol=0.01)
                                for key in ("ttft_ms", "tpot_ms"))


def at_sized_load(frame: pd.DataFrame, capacity_model, load: Load | None, workload: dict,
                  confidence: float) -> pd.DataFrame:
    """TTFT/TPOT p99 (with intervals) of each candidate at the load one replica carries once sized (the request's
    load over the replicas, else its throughput at the requested confidence), and P(SLO): the probability that the
    replica sustains that load within the bounds (log-normal capacity). A new frame."""
    from scipy.special import ndtr

    total = frame["accelerators_total"].to_numpy(dtype="float64")
    replicas = frame["replicas"].to_numpy(dtype="float64")
    point = frame["pred_throughput_per_accelerator"].to_numpy(dtype="float64") * total
    carried = frame["throughput_at_confidence_per_accelerator"].to_numpy(dtype="float64") * total
    if load is not None and load.kind != "concurrency":
        needed = load.value * (workload["osl"] if load.kind == "qps" else 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            carried = np.where(replicas >= 1, np.minimum(needed / replicas, carried), carried)
    live = np.isfinite(carried) & (carried > 0)
    latencies = pd.DataFrame(index=frame.index)
    if live.any():
        rows = frame.loc[live]
        latencies = capacity_model.latency_at_load(_capacity_records(rows, workload), tokens_per_s=carried[live])
        latencies.index = rows.index
    columns = [f"pred_{metric}_p99_ms{end}" for metric in ("ttft", "tpot") for end in ("", "_lo", "_hi")]
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.log(point / carried) / frame["throughput_sigma"].to_numpy(dtype="float64")
    p_slo = np.where(live, ndtr(np.where(np.isfinite(margin), margin, np.inf)), 0.0)
    return frame.drop(columns=[c for c in columns if c in frame]).join(
        latencies.reindex(index=frame.index, columns=columns)).assign(p_slo=p_slo, replica_load=carried)


def _predictions(frame: pd.DataFrame, model_id: str, scenario: str, bundle, model_dir: Path | None) -> pd.DataFrame:
    """Predictions and reasons for every candidate: from the remembered score table where it has them, scored live
    (and remembered) otherwise. An in-memory bundle has nothing to be remembered by: always live."""
    if bundle is not None:
        return score_candidates(bundle, frame)
    folder = Path(model_dir) if model_dir else catalogs.default_model_dir()
    if not (folder / "manifest.json").exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run `flexpredict train --out {folder}`)")
    key = scores.fingerprint(folder)
    keys = scores.row_keys(frame)
    known = scores.read(folder, key, model_id, scenario)
    missing = ~keys.isin(known.index) if known is not None else np.ones(len(frame), dtype=bool)
    if missing.any():
        from .predictors.bundle import ModelBundle

        fresh = score_candidates(ModelBundle.load(folder, targets=TARGETS_USED), frame[missing])
        fresh.index = keys[missing]
        known = fresh if known is None else pd.concat([known, fresh])
        scores.write(known, scores.user_cache_dir() / scores.FOLDER / key, model_id, scenario)
    return known.loc[keys].set_index(frame.index)


def score_candidates(bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Every target's prediction for candidate rows, and whether the throughput was measured or, if not, the
    trees' largest contributions in words (one line each)."""
    from .features import RecordFeaturizer

    records = RecordFeaturizer.complete(config_records(frame.to_dict("records")))  # once, for both
    out = bundle.predict(records)
    out["measured_config"], out["reason_lines"] = _reason_lines(bundle, records)
    out.index = frame.index
    return out


def prescore(bundle, folder: Path, records: pd.DataFrame,
             scenarios: tuple[str, ...] = ("Server", "Interactive", "Offline")) -> list[Path]:
    """Remember the default model's candidates beside a saved bundle (what `train` does), so that the first
    `recommend` on a fresh install need not load the predictors. Older tables there are removed."""
    import shutil

    shutil.rmtree(folder / scores.FOLDER, ignore_errors=True)
    model = resolve_model(DEFAULT_MODEL)
    written = []
    for scenario in scenarios:
        frame = catalog_candidates(model, scenario, records)
        table = score_candidates(bundle, frame)
        table.index = scores.row_keys(frame)
        written.append(scores.write(table, folder / scores.FOLDER / scores.fingerprint(folder), model["id"],
                                    scenario))
    return [path for path in written if path]


# -- candidates --------------------------------------------------------------------------------------------------

def _slo(request: Request, model: dict, llm: bool) -> tuple[dict[str, float], str]:
    """The SLO bounds in ms and the scenario they imply."""
    slo: dict[str, float] = {}
    scenario = request.scenario
    if request.slo_preset:
        kind = request.slo_preset.lower()
        if kind not in ("server", "interactive"):
            raise RequestError(f"--slo-preset: expected server or interactive, got '{request.slo_preset}'")
        bounds = preset_bounds(model, kind)
        if not bounds:
            raise RequestError(f"--slo-preset {kind}: MLPerf defines no {kind} bounds for {model['id']}")
        slo.update({k: float(v) for k, v in bounds.items() if v})
        scenario = scenario or ("Interactive" if kind == "interactive" else "Server")
    if request.latency_slo_ms is not None:
        slo["tpot_ms" if llm else "latency_ms"] = request.latency_slo_ms
    if request.ttft_slo_ms is not None:
        slo["ttft_ms"] = request.ttft_slo_ms
    if request.tpot_slo_ms is not None:
        slo["tpot_ms"] = request.tpot_slo_ms
    if not llm and ("ttft_ms" in slo or "tpot_ms" in slo):
        raise RequestError(f"--ttft-slo/--tpot-slo apply to LLMs; {model['id']} is not one (use --latency-slo)")
    scenario = scenario or (_scenario_within(model, slo) if llm and slo else None)
    scenario = scenario or ("Server" if llm or slo else "Offline")
    return slo, scenario


def _scenario_within(model: dict, slo: dict[str, float]) -> str | None:
    """The loosest MLPerf scenario whose bounds lie within the SLO (Server, else Interactive): its valid results
    met those bounds by the rules, so they are the evidence for this SLO (40 ms TPOT for llama2-70b: Interactive)."""
    for kind, scenario in (("server", "Server"), ("interactive", "Interactive")):
        bounds = preset_bounds(model, kind) or {}
        compared = [key for key in slo if bounds.get(key)]
        if compared and all(float(bounds[key]) <= slo[key] for key in compared):
            return scenario
    return None


def preset_bounds(model: dict, kind: str) -> dict | None:
    """MLPerf's latency bounds for a model's benchmark (bench/slo_presets.yaml)."""
    names = [model["id"]] + [str(b) for b in model.get("mlperf_benchmarks") or []]
    for name in names:
        found = catalogs.find_slo_preset(name)
        if found and isinstance(found[1].get(kind), dict):
            return found[1][kind]
    return None


def _engines(data: pd.DataFrame, llm: bool) -> dict[str, list[str]]:
    """Engines that ran this kind of workload on each vendor in MLPerf (at least 3 results), most used first."""
    kind = data["benchmark"].map(lambda b: is_llm_benchmark(b) if isinstance(b, str) else False) == llm
    seen = data[kind & data["engine"].notna() & data["accelerator_vendor"].notna() & ~data["cpu_only"].fillna(False)]
    counts = seen.groupby(["accelerator_vendor", "engine"]).size()
    engines: dict[str, list[str]] = {}
    for (vendor, engine), n in counts.sort_values(ascending=False).items():
        if n >= 3:
            engines.setdefault(str(vendor), []).append(str(engine))
    return {vendor: names[:3] for vendor, names in engines.items()}


def _candidates(request: Request, model: dict, llm: bool, scenario: str, prices: PriceBook,
                records: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    engines = _engines(records, llm)
    rows = catalogs.accelerators().rows
    if request.accelerator:
        try:
            rows = [accelerator_row(request.accelerator)]
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
    if request.vendor:
        rows = [r for r in rows if str(r.get("vendor", "")).lower() == request.vendor.lower()]
        if not rows:
            vendors = sorted({str(r.get("vendor")) for r in catalogs.accelerators().rows})
            raise RequestError(f"--vendor: no accelerator of vendor '{request.vendor}' (known: {', '.join(vendors)})")
    rows = [r for r in rows if r.get("kind") not in ("cpu", "soc")] if not request.accelerator else rows
    counter = Counter()
    out = []
    for acc in rows:
        counter["accelerator types"] += 1
        price = prices.get(acc["id"])
        hourly = price.usd_per_accelerator_hour if price else None
        purchase = price.purchase_usd if price else None
        if (request.pricing == "cloud" and hourly is None) or (request.pricing == "own" and purchase is None):
            counter["no price"] += 1
            continue
        priced = {"usd_per_accelerator_hour": hourly, "purchase_usd": purchase,
                  "price_source": f"{price.provider} ({price.as_of})" if price else None}
        out.extend({**row, **priced} for row in _configurations(acc, model, llm, scenario, engines,
                                                                  request.max_accelerators, counter))
    frame = pd.DataFrame(out)
    funnel = [("accelerator types considered", counter["accelerator types"]),
              ("  without a price", counter["no price"]),
              ("  configurations whose weights do not fit", counter["candidates that do not fit in memory"]),
              ("candidate configurations", len(frame))]
    if len(frame):
        frame = _with_measured(frame, records, model, scenario)
    return frame, funnel


def _configurations(acc: dict, model: dict, llm: bool, scenario: str, engines: dict[str, list[str]],
                    max_accelerators: int, counter: Counter | None = None) -> list[dict]:
    """Counts x precisions the part supports x engines seen on its vendor, whose weights fit in memory."""
    tflops = acc.get("tflops") or {}
    supported = [p for p in (LLM_PRECISIONS if llm else OTHER_PRECISIONS) if tflops.get(p)]
    vendor_engines = engines.get(str(acc.get("vendor")), [None])
    out = []
    for per_node, nodes in [(c, 1) for c in COUNTS] + [(8, 2)]:
        total = per_node * nodes
        if total > max_accelerators:
            continue
        for precision in supported:
            needed = (model.get("params_total_b") or 0) * BYTES_PER_PARAM[precision]
            if needed > MEMORY_FOR_WEIGHTS * (acc.get("memory_gb") or 0) * total:
                if counter is not None:
                    counter["candidates that do not fit in memory"] += 1
                continue
            out.extend({"accelerator": acc["id"], "vendor": acc.get("vendor"), "count": per_node, "nodes": nodes,
                        "accelerators_total": total, "engine": engine, "precision": precision,
                        "model": model["id"], "scenario": scenario, "tdp_w": acc.get("tdp_w"),
                        "accelerator_row": acc, "model_row": model} for engine in vendor_engines)
    return out


def catalog_candidates(model: dict, scenario: str, records: pd.DataFrame) -> pd.DataFrame:
    """Every datacenter configuration of a model the catalog allows, priced or not (what `prescore` remembers):
    accelerators x counts x precisions x the engines `records` show on each vendor, whose weights fit."""
    llm = model.get("kind") == "llm" or is_llm_benchmark(model["id"])
    engines = _engines(records, llm)
    return pd.DataFrame([row for acc in catalogs.accelerators().rows if acc.get("kind") not in ("cpu", "soc")
                         for row in _configurations(acc, model, llm, scenario, engines, max_accelerators=16)])


def _with_measured(frame: pd.DataFrame, data: pd.DataFrame, model: dict, scenario: str) -> pd.DataFrame:
    """Median measured throughput per accelerator of matching MLPerf records (same model, accelerator, scenario,
    precision and accelerator count), shown beside the prediction."""
    data = data[(data["model"] == model["id"]) & (data["scenario"] == scenario)
                & data["throughput_per_accelerator"].notna()]
    if data.empty:
        return frame.assign(measured_throughput_per_accelerator=np.nan, measured_runs=0)
    on = ["accelerator", "precision", "accelerators_total"]
    stats = data.astype({c: "object" for c in on}).groupby(on)["throughput_per_accelerator"].agg(["median", "count"])
    found = frame[on].astype("object").merge(stats, how="left", left_on=on, right_index=True)
    return frame.assign(measured_throughput_per_accelerator=found["median"].to_numpy(dtype="float64"),
                        measured_runs=found["count"].fillna(0).astype(int).to_numpy())


# -- scoring -----------------------------------------------------------------------------------------------------

def _score(frame: pd.DataFrame, request: Request, load: Load | None, workload: dict, slo: dict[str, float], llm: bool,
           prices: PriceBook) -> None:
    total = frame["accelerators_total"].to_numpy(dtype="float64")
    per_acc = frame["pred_throughput_per_accelerator"].to_numpy(dtype="float64")
    frame["throughput"] = per_acc * total
    frame["throughput_lo"] = frame["pred_throughput_per_accelerator_lo"].to_numpy(dtype="float64") * total
    frame["throughput_hi"] = frame["pred_throughput_per_accelerator_hi"].to_numpy(dtype="float64") * total
    missing = np.full(len(frame), np.nan)  # a model trained without a target predicts none of it
    power = frame["pred_power_w"].to_numpy(dtype="float64") if "pred_power_w" in frame else missing
    tdp = pd.to_numeric(frame["tdp_w"], errors="coerce").to_numpy(dtype="float64") * total
    frame["power_w"] = np.where(np.isfinite(power), power, tdp)
    frame["power_from_tdp"] = ~np.isfinite(power) & np.isfinite(tdp)
    if request.pricing == "cloud":
        frame["usd_per_hour"] = frame["usd_per_accelerator_hour"].to_numpy(dtype="float64") * total
    else:
        hours = request.amortize_years * HOURS_PER["year"]
        capital = frame["purchase_usd"].to_numpy(dtype="float64") * total / hours
        energy = np.nan_to_num(frame["power_w"].to_numpy(dtype="float64")) / 1000 * request.electricity_usd_per_kwh
        frame["usd_per_hour"] = capital + energy
    period_hours = HOURS_PER[request.budget_period]
    frame["usd_per_month"] = frame["usd_per_hour"] * HOURS_PER["month"]
    frame["usd_per_million"] = [usd_per_million(c, t) for c, t in zip(frame["usd_per_hour"], frame["throughput"])]
    energy_column = "pred_energy_j_per_token" if llm else "pred_energy_j_per_sample"
    measured_energy = frame[energy_column].to_numpy(dtype="float64") if energy_column in frame else missing
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["energy_j_per_unit"] = np.where(np.isfinite(measured_energy), measured_energy,
                                              frame["power_w"].to_numpy(dtype="float64") / frame["throughput"])
    frame["p_slo"] = _slo_probability(frame, slo, llm)
    frame["ood"] = frame["ood_throughput_per_accelerator"].fillna(False).astype(bool)
    # sized by the throughput at the requested confidence where the capacity function gives it, else the point
    sizing = frame["throughput_at_confidence_per_accelerator"] * total if "throughput_at_confidence_per_accelerator" \
        in frame else frame["throughput"]
    if load is not None and load.kind == "concurrency":
        users = frame["concurrency_at_capacity"] * sizing / frame["throughput"].where(frame["throughput"] > 0)
        frame["replicas"] = np.ceil(load.value / users.where(users > 0))
    elif load is not None:
        needed = load.value * (workload["osl"] if llm and load.kind == "qps" else 1.0)
        frame["replicas"] = np.ceil(needed / sizing.where(sizing > 0))
    elif request.budget is not None:
        frame["replicas"] = np.floor(request.budget / (frame["usd_per_hour"] * period_hours))
    else:
        frame["replicas"] = 1.0
    frame["throughput_at_confidence"] = sizing
    frame["total_throughput"] = frame["replicas"] * sizing
    frame["period_cost"] = frame["replicas"] * frame["usd_per_hour"] * period_hours


def _slo_probability(frame: pd.DataFrame, slo: dict[str, float], llm: bool) -> np.ndarray:
    """P(every bounded p99 metric <= its bound), each log-normal with the predicted median and 90 % interval."""
    from scipy.special import (
        ndtr,  # the standard normal CDF, without scipy.stats' import cost
    )

    probability = np.ones(len(frame))
    metrics = {"ttft_ms": "ttft_p99_ms", "tpot_ms": "tpot_p99_ms"} if llm else \
        {"latency_ms": "latency_p99_ms" if "pred_latency_p99_ms" in frame else "latency_p90_ms"}
    for bound, target in metrics.items():
        if bound not in slo:
            continue
        column = f"pred_{target}"
        if column not in frame:
            probability[:] = np.nan
            continue
        pred = frame[column].to_numpy(dtype="float64")
        sigma = (np.log(frame[f"{column}_hi"].to_numpy(dtype="float64")) - np.log(pred)) / Z90
        sigma = np.where(sigma > 1e-6, sigma, 1e-6)
        probability = probability * ndtr((np.log(slo[bound]) - np.log(pred)) / sigma)
    return probability


def _filter(frame: pd.DataFrame, request: Request, funnel: list) -> tuple[pd.DataFrame, list]:
    if frame.empty:
        return frame, funnel
    predicted = frame["throughput"].notna() & (frame["throughput"] > 0)
    frame["dropped"] = np.where(~predicted, "no throughput prediction", None)
    live = predicted
    funnel = funnel + [("with a throughput prediction", int(live.sum()))]
    meets = live & (frame["p_slo"] >= request.confidence - 1e-9)  # sized at the confidence: P equals it
    frame.loc[live & ~meets, "dropped"] = f"P(SLO met) < {request.confidence:.0%}"
    funnel.append((f"meeting the SLO with P >= {request.confidence:.0%}", int(meets.sum())))
    live = meets
    if request.budget is not None:
        affordable = live & (frame["replicas"] >= 1) & (frame["period_cost"] <= request.budget + 1e-9)
        frame.loc[live & ~affordable, "dropped"] = "over budget"
        funnel.append((f"within ${request.budget:,.0f} per {request.budget_period}", int(affordable.sum())))
        live = affordable
    ranked = frame[live]
    if request.load is not None or request.objective == "cost":
        key, ascending = ("period_cost" if request.load is not None else "usd_per_million"), True
    elif request.objective == "energy":
        key, ascending = "energy_j_per_unit", True
    else:
        key, ascending = "total_throughput", False
    ranked = ranked.sort_values([key, "usd_per_hour", "measured_runs"], ascending=[ascending, True, False],
                                kind="stable")
    # an engine or precision never measured on this hardware gets the same prediction as a measured one: show the
    # measured (else the most used) variant once
    ranked = ranked.drop_duplicates(["accelerator", "count", "nodes", "throughput"], keep="first")
    return ranked, funnel


def _explain(frame: pd.DataFrame, request: Request, funnel: list, slo: dict[str, float]) -> str:
    """Which constraint removed everything, and what would relax it."""
    if frame.empty:
        stage = next((name.strip() for name, n in funnel if n and name.startswith("  ")), "the catalog")
        return (f"no candidate configuration: every one was removed by '{stage}' (try --max-accelerators, another "
                "--vendor/--accelerator, or --pricing cloud/own; --prices FILE adds prices)")
    live = frame[frame["throughput"].notna()]
    if live.empty:
        return "no candidate has a throughput prediction for this model and scenario (try another --scenario)"
    slo_ok = live[live["p_slo"] >= request.confidence]
    if slo_ok.empty:
        best = live.sort_values("p_slo", ascending=False).iloc[0]
        parts = []
        for bound, target in (("ttft_ms", "ttft_p99_ms"), ("tpot_ms", "tpot_p99_ms"), ("latency_ms", "latency_p99_ms")):
            if bound in slo and f"pred_{target}" in best and best[f"pred_{target}"] == best[f"pred_{target}"]:
                parts.append(f"{bound.replace('_ms', '').upper()} p99 {best[f'pred_{target}']:.0f} ms "
                             f"(bound {slo[bound]:.0f} ms)")
        return (f"the SLO removed every candidate: the most likely one ({best['accelerators_total']}x "
                f"{best['accelerator']}, {best['precision']}, {best['engine']}) meets it with P = {best['p_slo']:.0%} "
                f"< --confidence {request.confidence:.0%}; predicted {', '.join(parts) or 'latency unknown'}. Relax "
                "the latency bound, lower --confidence, or choose --scenario Offline")
    if request.budget is not None:
        cheapest = slo_ok.sort_values("usd_per_hour").iloc[0]
        need = cheapest["usd_per_hour"] * HOURS_PER[request.budget_period]
        if request.load is not None:
            cheapest = slo_ok.sort_values("period_cost").iloc[0]
            need = cheapest["period_cost"]
        return (f"the budget removed every candidate: the cheapest SLO-feasible one ({cheapest['accelerators_total']}x "
                f"{cheapest['accelerator']}, {cheapest['precision']}) costs ${need:,.0f} per {request.budget_period}"
                f"{' at the requested load' if request.load is not None else ''}; raise --budget to at least "
                f"${math.ceil(need):,} or use --pricing {'own' if request.pricing == 'cloud' else 'cloud'}")
    return "no candidate is left"


# -- reasons -----------------------------------------------------------------------------------------------------

FEATURE_WORDS = {
    "accelerator": "accelerator", "accelerator_vendor": "vendor", "acc_kind": "device kind",
    "acc_family": "architecture", "model": "model", "model_kind": "model kind", "scenario": "scenario",
    "precision": "precision", "engine": "engine", "system_type": "system type",
    "accelerators_total": "accelerators", "accelerators_per_node": "accelerators per node", "nodes": "nodes",
    "acc_memory_gb": "memory per accelerator (GB)", "acc_bandwidth_tbs": "memory bandwidth (TB/s)",
    "acc_tflops": "peak TFLOPs at this precision", "acc_tdp_w": "TDP (W)", "acc_release_year": "release year",
    "acc_interconnect_gbs": "interconnect (GB/s)", "total_memory_gb": "total memory (GB)",
    "total_bandwidth_tbs": "total bandwidth (TB/s)", "total_tflops": "total TFLOPs", "weights_gb": "weights (GB)",
    "memory_headroom": "memory / weights", "bytes_per_param": "bytes per parameter",
    "kv_bytes_per_token": "KV-cache bytes per token", "flops_per_byte": "FLOPs per byte",
    "log_roofline": "log roofline (upper bound)", "log_work_bound": "log work bound (prefill-aware roofline)",
    "model_params_active_b": "active parameters (B)", "host_memory_gb": "host memory (GB)",
}


_PRIOR_WORDS = {"prior": "median of runs with the same {}", "latest": "newest-round median with the same {}",
                "count": "number of runs with the same {}", "rounds_since": "rounds since runs with the same {}"}


def feature_phrase(name: str, value) -> str:
    """'acc_bandwidth_tbs', 4.8 -> 'memory bandwidth (TB/s) = 4.8'; prior features in words, without their
    log-scale values."""
    from .predictors.priors import LEVELS, level_name

    for level, _ in LEVELS:
        for prefix, words in _PRIOR_WORDS.items():
            if name == f"{prefix}_{level_name(level)}":
                parts = [p.replace("_", " ") for p in level]
                joined = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
                return words.format(joined)
    label = FEATURE_WORDS.get(name, name.replace("_", " "))
    if isinstance(value, (int, float, np.floating)):
        return f"{label} = {value:.3g}" if value == value else f"{label} unknown"
    return f"{label} = {value}" if value is not None and value == value else f"{label} unknown"


def _reason_lines(bundle, records: pd.DataFrame, limit: int = 3) -> tuple[np.ndarray, list[str]]:
    """(measured?, the largest SHAP contributions to the throughput in words, one per line) per record."""
    predictor = bundle.predictors.get("throughput_per_accelerator")
    if predictor is None or not hasattr(predictor, "explained"):
        return np.zeros(len(records), dtype=bool), [""] * len(records)
    contributions, matrix = predictor.explained(records)
    features = contributions.drop(columns=["bias", "prior", "measured"]).astype("float64")
    names, values = list(features.columns), features.to_numpy()
    shown = matrix[names].astype("object").to_numpy()
    order = np.argsort(-np.abs(values), axis=1)[:, :limit]
    measured = contributions["measured"].to_numpy(dtype=bool)
    lines = []
    for position in range(len(records)):
        words = [] if measured[position] else [
            f"{feature_phrase(names[j], shown[position, j])}: {math.expm1(values[position, j]):+.0%}"
            for j in order[position] if abs(values[position, j]) >= 0.01]
        lines.append("\n".join(words))
    return measured, lines


def reasons(top: pd.DataFrame) -> dict[int, list[str]]:
    """Plain-word reasons for the throughput prediction of scored candidates (from `score_candidates`)."""
    if "measured_config" not in top:
        return {}
    out: dict[int, list[str]] = {}
    for index, candidate in top.iterrows():
        if bool(candidate["measured_config"]):
            runs = int(candidate.get("measured_runs") or 0)
            lines = [f"measured: MLPerf runs of {candidate['model']} on {candidate['accelerator']} "
                     f"({candidate['scenario']}) set the starting point"
                     + (f"; {runs} at exactly this count and precision" if runs else "")]
        else:
            lines = ["never measured: starts from the efficiency of related measurements scaled by the roofline"]
            lines += [line for line in str(candidate["reason_lines"] or "").split("\n") if line]
        out[index] = lines
    return out
