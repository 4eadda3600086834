"""The catalogs in `features/`: accelerators, models, prices (and the SLO presets in `bench/`).

YAML files, one row per part/model/price, each with its source and date. Loaded once per process; `resource_dir`
finds them in a source checkout and in an installed wheel alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

_PACKAGE = Path(__file__).resolve().parent
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: catalogs load in milliseconds


def resource_dir(name: str) -> Path:
    """`features`, `models` or `bench`: inside the wheel, or at the root of a source checkout."""
    for candidate in (_PACKAGE / "_resources" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"flexpredict resource folder '{name}' not found next to the package")


def default_model_dir() -> Path:
    """The shipped trained model (`models/default`)."""
    return resource_dir("models") / "default"


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the row."""


def load_yaml(path: Path, key: str) -> list | dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or key not in data:
        raise CatalogError(f"{path}: expected a top-level '{key}:' entry")
    return data[key]


@dataclass(frozen=True)
class AcceleratorCatalog:
    rows: tuple[dict, ...]
    by_id: dict
    patterns: tuple[tuple[re.Pattern, str], ...]

    def match(self, name: str | None) -> dict | None:
        """The catalog row whose alias matches a submitted name (first in file order), or None. A heterogeneous
        system ("A (x32), B (x16)") is named by the part holding the most accelerators."""
        if not name:
            return None
        text = _majority_part(" ".join(str(name).lower().replace("®", "").replace("™", "").split()))
        for pattern, ident in self.patterns:
            if pattern.search(text):
                return self.by_id[ident]
        return None


_PART_COUNT = re.compile(r"\(x\s*(\d+)\)")


def _majority_part(text: str) -> str:
    """The listed part with the largest "(xN)" count (first on a tie); the whole text unless several are listed."""
    parts = [part for part in text.split(",") if _PART_COUNT.search(part)]
    if len(parts) < 2:
        return text
    return max(parts, key=_part_count).strip()


def _part_count(part: str) -> int:
    """The count a part of a system description states ("H100 (x8)" -> 8); 0 when it states none."""
    match = _PART_COUNT.search(part)
    return int(match.group(1)) if match else 0


@lru_cache(maxsize=None)
def accelerators(path: Path | None = None) -> AcceleratorCatalog:
    path = path or resource_dir("features") / "accelerators.yaml"
    rows = tuple(load_yaml(path, "accelerators"))
    patterns = []
    for row in rows:
        for alias in [re.escape(row["id"])] + list(row.get("aliases") or []):
            try:
                patterns.append((re.compile(alias, re.IGNORECASE), row["id"]))
            except re.error as exc:
                raise CatalogError(f"{path}: accelerator '{row['id']}': bad alias regex {alias!r} ({exc})") from exc
    return AcceleratorCatalog(rows, {row["id"]: row for row in rows}, tuple(patterns))


_MODEL_NOISE = re.compile(
    r"[-_](instruct|chat|hf|base|it|fp8|fp4|int8|int4|w4a16|w8a8|dyn|dynamic|pre|nim|awq|gptq)"
    r"(?=$|[-_])",
    re.IGNORECASE,
)


def model_key(name: str) -> str:
    """A spelling-insensitive key: 'Llama-3.3-70B-Instruct-FP8-dynamic' and 'llama3.3-70b' both give 'llama3370b'."""
    text = str(name).strip().lower()
    text = text.rsplit("/", 1)[-1]  # hub-style org/name
    previous = None
    while previous != text:
        previous, text = text, _MODEL_NOISE.sub("", text)
    return re.sub(r"[^a-z0-9]", "", text)


@dataclass(frozen=True)
class ModelCatalog:
    rows: tuple[dict, ...]
    by_id: dict
    by_benchmark: dict
    by_key: dict
    by_hf_config: dict

    def resolve(self, name: str | None) -> dict | None:
        """Row for a canonical id, an MLPerf benchmark name, a Hugging Face id, or a loose spelling of these."""
        if not name:
            return None
        text = str(name).strip().lower()
        return (
            self.by_id.get(text)
            or self.by_benchmark.get(text)
            or self.by_hf_config.get(text)
            or self.by_key.get(model_key(text))
        )


_registered_models: list[dict] = []  # rows built from user config.json files in this process


def register_model(row: dict) -> dict:
    """Add a config-built row to the default model catalog for the rest of the process (same id: kept once)."""
    known = models().by_id.get(row["id"])
    if known is not None:
        return known
    _registered_models.append(row)
    models.cache_clear()
    return row


@lru_cache(maxsize=None)
def models(path: Path | None = None) -> ModelCatalog:
    """The model catalog; a row naming `hf_config: org/name` takes its architecture from the bundled config
    (the row's own fields win), so the catalog stays the one place the physics reads."""
    from .model_config import architecture, hf_config_dir, read_config

    path = path or resource_dir("features") / "models.yaml"
    rows = []
    for row in load_yaml(path, "models"):
        if row.get("hf_config"):
            config = hf_config_dir() / row["hf_config"] / "config.json"
            row = {**architecture(read_config(config), str(config)), **row}
        rows.append(_with_kv_bytes(row))
    if path == resource_dir("features") / "models.yaml":
        rows += _registered_models
    by_benchmark: dict[str, dict] = {}
    by_key: dict[str, dict] = {}
    by_hf_config: dict[str, dict] = {}
    for row in rows:
        for bench in row.get("mlperf_benchmarks") or []:
            by_benchmark[str(bench).lower()] = row
        for alias in [row["id"]] + list(row.get("aliases") or []):
            by_key.setdefault(model_key(alias), row)
        if row.get("hf_config"):
            by_hf_config[str(row["hf_config"]).lower()] = row
    return ModelCatalog(tuple(rows), {row["id"]: row for row in rows}, by_benchmark, by_key, by_hf_config)


def _with_kv_bytes(row: dict) -> dict:
    """A row without a config still gets its 16-bit KV bytes per token: 2 (K and V) x layers x KV heads x head dim
    x 2 bytes, and its attention kind (GQA when it has fewer KV heads than heads)."""
    sizes: list[Any] = [row.get(key) for key in ("layers", "kv_heads", "head_dim")]
    if row.get("kind") != "llm" or "kv_bytes_per_token_bf16" in row or not all(isinstance(v, int) for v in sizes):
        return row
    layers, kv_heads, head_dim = sizes
    return {
        "attention": "GQA" if kv_heads < (row.get("attention_heads") or kv_heads) else "MHA",
        **row,
        "kv_bytes_per_token_bf16": 2 * layers * kv_heads * head_dim * 2,
    }


@lru_cache(maxsize=None)
def workloads() -> dict:
    """Token lengths of each MLPerf LLM benchmark's dataset, plus `default` (features/workloads.yaml)."""
    return dict(load_yaml(resource_dir("features") / "workloads.yaml", "workloads"))


def workload_sequence(benchmark: str | None, model: dict | None) -> tuple[float, float]:
    """(input, output) tokens per sample: the dataset of the record's benchmark, else of the model's own MLPerf
    benchmark, else the default; a missing mean falls back to the cap of a capped length, then to the default."""
    table = workloads()
    owner = models().by_benchmark.get(str(benchmark).lower()) if benchmark else None
    keys = [owner["id"] if owner else None, model["id"] if model else None, "default"]
    entry = next(table[key] for key in keys if key in table)
    default = table["default"]

    def tokens(side: str) -> float:
        stats = entry.get(side) or {}
        return float(stats.get("mean") or (stats.get("capped") and stats.get("max")) or default[side]["mean"])

    return tokens("input_tokens"), tokens("output_tokens")


def prices(path: Path | None = None) -> list[dict]:
    """Price rows; a user file (`--prices FILE`) has the same format and replaces matching rows."""
    return list(load_yaml(path or resource_dir("features") / "prices.yaml", "prices"))


@lru_cache(maxsize=None)
def slo_presets() -> dict:
    """MLPerf per-benchmark latency bounds (bench/slo_presets.yaml)."""
    return dict(load_yaml(resource_dir("bench") / "slo_presets.yaml", "presets"))


def find_slo_preset(name: str, presets: dict | None = None) -> tuple[str, dict] | None:
    """(benchmark, entry) of a preset named by its benchmark or one of its aliases (resnet50, llama2-70b-99)."""
    presets = slo_presets() if presets is None else presets
    if name in presets:
        return name, presets[name]
    return next(((key, entry) for key, entry in presets.items() if name in (entry.get("aliases") or ())), None)
