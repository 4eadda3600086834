"""Records for configurations nobody measured: what `predict --accelerator ...` and `recommend` score."""

from __future__ import annotations

import difflib

import pandas as pd

from . import catalogs, model_config
from .features import resolve_accelerator
from .schema import conform


class ConfigError(ValueError):
    """A configuration that names an unknown accelerator, model or value; the message suggests the right one."""


def resolve_model(name: str) -> dict:
    """Catalog row of a model id, MLPerf benchmark name, loose spelling, Hugging Face id or config.json path;
    'did you mean' when unknown."""
    try:
        row = model_config.resolve(name)
    except model_config.ModelConfigError as exc:
        raise ConfigError(str(exc)) from exc
    if row is None:
        ids = [r["id"] for r in catalogs.models().rows]
        close = difflib.get_close_matches(str(name).lower(), ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (known: {', '.join(ids[:12])}, ...)"
        raise ConfigError(f"unknown model '{name}'{hint}")
    return row


def accelerator_row(name: str) -> dict:
    row = resolve_accelerator(name)
    if row is None:
        ids = [r["id"] for r in catalogs.accelerators().rows]
        close = difflib.get_close_matches(str(name).lower(), ids, n=3, cutoff=0.4) or difflib.get_close_matches(
            "nvidia-" + str(name).lower(), ids, n=3, cutoff=0.4
        )
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown accelerator '{name}'{hint}")
    return row


def benchmark_for(model: dict, scenario: str) -> str:
    """The MLPerf benchmark name a configuration of this model is measured under (or the model id)."""
    names = [str(b) for b in model.get("mlperf_benchmarks") or []]
    if scenario == "Interactive":
        names = [b for b in names if "interactive" in b] or names
    else:
        names = [b for b in names if "interactive" not in b] or names
    return names[0] if names else model["id"]


def config_records(rows: list[dict]) -> pd.DataFrame:
    """Schema records from dicts with accelerator, count (per node), nodes, model, scenario, precision, engine."""
    records = []
    for i, cfg in enumerate(rows):
        acc = cfg["accelerator_row"] if "accelerator_row" in cfg else accelerator_row(cfg["accelerator"])
        model = cfg["model_row"] if "model_row" in cfg else resolve_model(cfg["model"])
        per_node, nodes = int(cfg.get("count", 1)), int(cfg.get("nodes", 1))
        cpu = acc.get("kind") == "cpu"
        records.append(
            {
                "record_id": f"config-{i}",
                "run_group": f"config-{i}",
                "division": "closed",
                "system_id": f"{per_node * nodes}x{acc['id']}",
                "system_type": "datacenter",
                "benchmark": benchmark_for(model, cfg["scenario"]),
                "model": model["id"],
                "scenario": cfg["scenario"],
                "accelerator": acc["id"],
                "accelerator_raw": acc.get("name", acc["id"]),
                "accelerator_vendor": acc.get("vendor"),
                "accelerators_per_node": per_node,
                "nodes": nodes,
                "accelerators_total": per_node * nodes,
                "accelerator_memory_gb": acc.get("memory_gb"),
                "cpu_only": cpu,
                "host_cpu": acc.get("name") if cpu else None,
                "host_cpus_per_node": per_node if cpu else None,
                "precision": cfg.get("precision"),
                "engine": cfg.get("engine"),
                "engine_version": cfg.get("engine_version"),
            }
        )
    return conform(pd.DataFrame(records))
