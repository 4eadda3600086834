"""Size vLLM's KV cache on the CPU from the model and the run, and tell "does not fit" apart from a refused start.

vLLM's CPU backend otherwise reserves `--gpu-memory-utilization` (default 0.92) of the NUMA node's memory and refuses
to start when the page cache holds more than a few percent of it, although a tiny model needs a few hundred MB.
The cache a run needs is known before the engine starts: max model length x sequences in flight x KV bytes per
token (2 tensors x layers x KV heads x head size x element size), with headroom for the engine's own rounding. It
goes to vLLM as `--kv-cache-memory-bytes`, which replaces the utilization share and its start-up check.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from flexpredict.bench.base import BenchError

GIB = 1024**3
KV_HEADROOM = 1.25  # vLLM rounds the cache to whole blocks and keeps some for prefix caching
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt")
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1, "float8": 1}


class ModelDoesNotFit(BenchError):
    """The model's weights plus the smallest useful KV cache (one full-length sequence) exceed the free memory."""


@dataclass(frozen=True)
class KvCachePlan:
    kv_bytes_per_token: int
    max_model_len: int
    sequences: int
    weights_bytes: int
    available_bytes: int
    cache_bytes: int
    """What goes to vLLM's --kv-cache-memory-bytes."""

    def describe(self) -> str:
        return (
            f"KV cache {_size(self.cache_bytes)} for {self.sequences} sequences x {self.max_model_len} tokens x "
            f"{self.kv_bytes_per_token} B/token (weights {_size(self.weights_bytes)}, "
            f"{_size(self.available_bytes)} available)"
        )


def kv_bytes_per_token(config: dict, dtype: str | None) -> int:
    """Bytes of K and V one token occupies across all layers (grouped-query attention counts its KV heads)."""
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    kv_heads = config.get("num_key_value_heads") or heads
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * element_bytes(config, dtype)


def element_bytes(config: dict, dtype: str | None) -> int:
    """Element size of the cache: the --dtype given, else the checkpoint's own (vLLM's `auto`)."""
    name = dtype if dtype and dtype != "auto" else str(config.get("torch_dtype") or config.get("dtype") or "float16")
    if name.lower() not in _DTYPE_BYTES:
        raise BenchError(f"--dtype: cannot size the KV cache for dtype '{name}' (known: {', '.join(_DTYPE_BYTES)})")
    return _DTYPE_BYTES[name.lower()]


def weights_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for pattern in WEIGHT_FILES for p in Path(model_dir).glob(pattern))


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable: free memory plus the page cache the kernel can drop (what vLLM's own check misses)."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"{meminfo}: no MemAvailable line")


def plan_cpu_kv_cache(
    model_dir: Path, dtype: str | None, max_model_len: int | None, sequences: int, available_bytes: int
) -> KvCachePlan:
    """The KV cache for `sequences` full-length sequences, cut to what memory holds beside the weights; raises
    ModelDoesNotFit when not even one full-length sequence fits."""
    config_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        per_token = kv_bytes_per_token(config, dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"{config_path}: cannot size the KV cache ({type(exc).__name__}: {exc})") from None
    length = max_model_len or config.get("max_position_embeddings") or 2048
    weights = weights_bytes(model_dir)
    minimum = length * per_token
    if weights + minimum > available_bytes:
        raise ModelDoesNotFit(
            f"the model does not fit: weights {_size(weights)} + KV cache for one {length}-token sequence "
            f"{_size(minimum)} > {_size(available_bytes)} available memory (lower --max-model-len)"
        )
    wanted = math.ceil(length * sequences * per_token * KV_HEADROOM)
    return KvCachePlan(
        kv_bytes_per_token=per_token,
        max_model_len=length,
        sequences=sequences,
        weights_bytes=weights,
        available_bytes=available_bytes,
        cache_bytes=max(minimum, min(wanted, available_bytes - weights)),
    )


def _size(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.1f} GiB" if n_bytes >= GIB / 10 else f"{n_bytes / 1024**2:.1f} MiB"
