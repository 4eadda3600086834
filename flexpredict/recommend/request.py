"""What the user asks: durations, loads, the request, its SLO (and the MLPerf scenario it implies), the workload shape
and the bounds candidates are sized for. One-line `RequestError`s for anything that cannot be served as given."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .. import catalogs
from ..costs import HOURS_PER

DEFAULT_MODEL = "llama2-70b"


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


_LOAD = re.compile(
    r"^\s*([0-9]*\.?[0-9]+)\s*(k)?\s*(tok(?:ens)?/s|samples?/s|q(?:ueries)?/s|qps|req(?:uests)?/s|rps"
    r"|users?|concurrent(?: users)?|concurrency)?\s*$",
    re.IGNORECASE,
)

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
        raise RequestError(
            f"{option}: expected a load like 5000tok/s, 5k tok/s, 3req/s, 20samples/s or 64users, got '{text}'"
        )
    unit = (match.group(3) or "").lower()
    kind = (
        None
        if not unit
        else "tokens_per_s"
        if unit.startswith("tok")
        else "concurrency"
        if unit.startswith(("user", "concurren"))
        else "qps"
    )
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


def validate(request: Request) -> None:
    """Options that are wrong whatever the model: one line naming the option."""
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


def slo_and_scenario(request: Request, model: dict, llm: bool) -> tuple[dict[str, float], str]:
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


def as_load(load: Load | float | None, llm: bool) -> Load | None:
    if load is None:
        return None
    return (load if isinstance(load, Load) else Load(float(load))).resolved(llm)


def wants_capacity(request: Request, load: Load | None, slo: dict, llm: bool) -> bool:
    return llm and (bool(slo) or needs_capacity(request, load))


def needs_capacity(request: Request, load: Load | None) -> bool:
    """A workload shape or a load in users/requests has no answer without the capacity function."""
    return request.isl is not None or request.osl is not None or (load is not None and load.kind != "tokens_per_s")


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
    out: dict[str, float] = {key: float(slo[key]) for key in ("ttft_ms", "tpot_ms") if key in slo}
    for missing, given in (("ttft_ms", "tpot_ms"), ("tpot_ms", "ttft_ms")):
        if missing in out:
            continue
        candidates = sorted((float(b[given]), float(b[missing])) for b in presets if b.get(given) and b.get(missing))
        at_or_above = [bound for limit, bound in candidates if limit >= out.get(given, math.inf)]
        out[missing] = at_or_above[0] if at_or_above else candidates[-1][1] if candidates else math.inf
    return out
