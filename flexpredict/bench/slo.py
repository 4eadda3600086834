"""Latency bounds (SLOs) a Server run is judged against: given in ms, or an MLPerf preset from
`bench/slo_presets.yaml` (`--slo-preset llama2-70b` for its Server bounds, `llama2-70b:interactive` for Interactive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flexpredict import catalogs
from flexpredict.bench.base import BenchError


@dataclass(frozen=True)
class Slo:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    latency_ms: float | None = None
    source: str | None = None
    """Where the bounds came from: 'user' or the preset's cited source."""


def resolve_slo(
    preset: str | None = None,
    ttft_ms: float | None = None,
    tpot_ms: float | None = None,
    presets_file: Path | None = None,
) -> Slo:
    """Explicit --ttft-slo / --tpot-slo win over the preset's values; no preset and no value: LoadGen's defaults."""
    base = load_preset(preset, presets_file) if preset else Slo()
    if ttft_ms is None and tpot_ms is None:
        return base
    return Slo(
        ttft_ms=ttft_ms if ttft_ms is not None else base.ttft_ms,
        tpot_ms=tpot_ms if tpot_ms is not None else base.tpot_ms,
        latency_ms=base.latency_ms,
        source="user" if preset is None else f"user + {base.source}",
    )


def load_preset(spec: str, presets_file: Path | None = None) -> Slo:
    """`BENCHMARK` (its Server bounds; an interactive-only benchmark's Interactive ones) or `BENCHMARK:interactive`;
    a benchmark's aliases (resnet50, llama2-70b-99) find it too."""
    try:
        presets = catalogs.load_yaml(presets_file, "presets") if presets_file else catalogs.slo_presets()
    except (catalogs.CatalogError, FileNotFoundError) as exc:
        raise BenchError(str(exc)) from exc
    if not isinstance(presets, dict):
        raise BenchError(f"{presets_file}: presets: expected a mapping of benchmark to SLO entries")
    benchmark, _, kind = spec.partition(":")
    found = catalogs.find_slo_preset(benchmark, presets)
    if found is None:
        raise BenchError(f"no SLO preset '{benchmark}' (known: {', '.join(sorted(presets)) or 'none'})")
    entry = found[1]
    # no kind named: Server bounds, or the Interactive ones of a benchmark that only has those
    kind = kind.lower() or ("interactive" if not entry.get("server") and entry.get("interactive") else "server")
    bounds = entry.get(kind)
    if not bounds:
        kinds = [k for k, v in entry.items() if isinstance(v, dict)]
        if not kinds:
            raise BenchError(f"SLO preset '{benchmark}' has no latency bounds (an Offline-only benchmark)")
        raise BenchError(f"SLO preset '{benchmark}' has no '{kind}' bounds (it has: {', '.join(kinds)})")
    source = entry.get("source")
    label = f"MLPerf {benchmark} {kind}" + (
        f" ({source}" + (f", {entry['as_of']}" if entry.get("as_of") else "") + ")" if source else ""
    )
    return Slo(
        ttft_ms=bounds.get("ttft_ms"), tpot_ms=bounds.get("tpot_ms"), latency_ms=bounds.get("latency_ms"), source=label
    )
