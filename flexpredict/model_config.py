"""A model catalog row from a Hugging Face `config.json`: parameter counts, KV-cache size, attention kind.

Any model a user deploys (a fine-tune, a new release) has a config.json; its architecture fields are enough for the
physics features, so `--model path/to/config.json` needs no catalog edit and no network. The shipped catalog keeps
the configs its rows were built from under `features/hf_configs/<org>/<name>/config.json`.

Parameter counts follow the modules the Transformers implementations build: embeddings, attention (grouped-query or
DeepSeek-style multi-head latent attention), gated MLPs (dense, routed experts, shared experts, router) and norms.
`active` is what one token runs through: attention, dense MLPs, the routed experts it picks, shared experts and the
output projection; the input embedding is a lookup, so it is left out (as OpenAI and DeepSeek count active).
Vision towers of multimodal configs are not counted (the text model is what serves the tokens).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from . import catalogs

KV_CACHE_BYTES = 2  # bf16/fp16 cache, what `kv_bytes_per_token_bf16` assumes
_PRECISION_OF_QUANTIZATION = {"fp8": "fp8", "mxfp4": "fp4", "nvfp4": "fp4", "awq": "int4", "gptq": "int4"}
_PRECISION_OF_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


class ModelConfigError(ValueError):
    """A config.json that cannot describe a model; the message names the file and the field."""


def read_config(path: Path) -> dict:
    """The JSON object of a config.json (or of the config.json inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path}: expected a JSON object of config fields")
    return config


class _Fields:
    """Typed reads of one config's fields; an error names the file and the field."""

    def __init__(self, config: dict, origin: str):
        self.config, self.origin = config, origin

    def positive(self, *names: str, default: int | None = None) -> int:
        """The first of `names` present (configs of different families spell one field differently), else
        `default`; an error when neither is there."""
        value = self.optional_positive(*names)
        if value is not None:
            return value
        if default is not None:
            return default
        raise ModelConfigError(f"{self.origin}: field '{names[0]}': missing (expected a positive integer)")

    def optional_positive(self, *names: str) -> int | None:
        """The first of `names` present, or None when no config spells the field."""
        name = next((n for n in names if self.config.get(n) is not None), None)
        if name is None:
            return None
        value = self.config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelConfigError(f"{self.origin}: field '{name}': expected a positive integer, got {value!r}")
        return value

    def count(self, name: str, default: int = 0) -> int:
        """A non-negative integer (e.g. first_k_dense_replace, n_shared_experts)."""
        value = self.config.get(name, default)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelConfigError(f"{self.origin}: field '{name}': expected a non-negative integer, got {value!r}")
        return value


def text_config(config: dict) -> dict:
    """The language model's fields: multimodal configs (Llama 4, Qwen3-VL, Kimi-K2.5) nest them in text_config."""
    nested = config.get("text_config")
    return {**config, **nested} if isinstance(nested, dict) else config


def architecture(config: dict, origin: str = "config.json") -> dict:
    """Catalog fields of a decoder-only language model described by its (Hugging Face) config."""
    cfg = text_config(config)
    get = _Fields(cfg, origin)
    hidden = get.positive("hidden_size", "d_model")
    layers = get.positive("num_hidden_layers", "n_layer", "num_layers")
    heads = get.positive("num_attention_heads", "n_head")
    vocab = get.positive("vocab_size")
    mla = cfg.get("kv_lora_rank") is not None
    kv_heads = heads if mla else get.positive("num_key_value_heads", default=heads)
    head_dim: int | None = None
    if mla:
        attention = _mla_params(get, hidden, heads)
        kv_per_layer = get.positive("kv_lora_rank") + get.positive("qk_rope_head_dim")
    else:
        head_dim = get.positive("head_dim", default=hidden // heads)
        attention = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
        kv_per_layer = 2 * kv_heads * head_dim
    mlp = _mlp_params(get, hidden, layers)
    counts = _counts(
        vocab * hidden, bool(cfg.get("tie_word_embeddings")), layers * attention, mlp, layers * 2 * hidden + hidden
    )
    return {
        "kind": "llm",
        "modality": "vision-language" if "vision_config" in config else "text",
        "params_total_b": _billions(counts["total"]),
        "params_active_b": _billions(counts["active"]),
        "params_embedding_b": _billions(counts["embedding"], decimals=3),
        "layers": layers,
        "hidden_size": hidden,
        "attention_heads": heads,
        "kv_heads": None if mla else kv_heads,
        "head_dim": head_dim,
        "attention": "MLA" if mla else "MHA" if kv_heads == heads else "GQA",
        "moe_experts": mlp["experts"],
        "moe_active_experts": mlp["experts_per_token"],
        "moe_shared_experts": mlp["shared_experts"],
        "vocab_size": vocab,
        "context_length": get.optional_positive("max_position_embeddings", "n_positions"),
        "native_precision": native_precision(config),
        "kv_bytes_per_token_bf16": layers * kv_per_layer * KV_CACHE_BYTES,
        "gflops_per_sample": None,
    }


def _billions(count: int, decimals: int = 2) -> float:
    """A parameter count in billions, to `decimals` places but at least 2 significant digits: a model under 10 M
    parameters (a test model) would otherwise round to 0 and lose its physics."""
    return round(count / 1e9, max(decimals, 1 - math.floor(math.log10(count / 1e9)))) if count > 0 else 0.0


def _counts(embedding: int, tied: bool, attention: int, mlp: dict, norms: int) -> dict:
    """Total, active and input-embedding parameters; active counts the output projection (a vocab x hidden
    matrix, shared with the embedding when tied) but not the input-embedding lookup."""
    output = 0 if tied else embedding
    return {
        "total": embedding + output + attention + mlp["total"] + norms,
        "active": embedding + attention + mlp["active"] + norms,
        "embedding": embedding,
    }


def _mla_params(get: _Fields, hidden: int, heads: int) -> int:
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): low-rank query and joint key-value projections."""
    nope, rope, value = (get.positive("qk_nope_head_dim"), get.positive("qk_rope_head_dim"), get.positive("v_head_dim"))
    kv_rank, q_rank = get.positive("kv_lora_rank"), get.optional_positive("q_lora_rank")
    query = hidden * q_rank + q_rank + q_rank * heads * (nope + rope) if q_rank else hidden * heads * (nope + rope)
    key_value = hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + value)
    return query + key_value + heads * value * hidden


def _mlp_params(get: _Fields, hidden: int, layers: int) -> dict:
    """Gated (SwiGLU) MLPs of every layer: dense layers, and MoE layers with routed and shared experts."""
    cfg = get.config
    experts = get.optional_positive("n_routed_experts", "num_experts", "num_local_experts")
    if not experts or experts == 1:
        dense = 3 * hidden * get.positive("intermediate_size")
        return {
            "total": layers * dense,
            "active": layers * dense,
            "experts": None,
            "experts_per_token": None,
            "shared_experts": None,
        }
    per_token = get.positive("num_experts_per_tok", "experts_per_token")
    expert = 3 * hidden * get.positive("moe_intermediate_size", "intermediate_size")
    shared = get.count("n_shared_experts") * expert
    if cfg.get("shared_expert_intermediate_size"):  # Qwen2-MoE style: one shared expert of its own width
        shared = 3 * hidden * get.positive("shared_expert_intermediate_size")
    if cfg.get("model_type") == "llama4_text":  # Llama 4: one shared expert as wide as a routed one
        shared = expert
    moe_layers = _moe_layer_count(get, layers)
    dense = 3 * hidden * get.positive("intermediate_size_mlp", "intermediate_size")
    router = hidden * experts
    return {
        "total": moe_layers * (experts * expert + shared + router) + (layers - moe_layers) * dense,
        "active": moe_layers * (per_token * expert + shared + router) + (layers - moe_layers) * dense,
        "experts": experts,
        "experts_per_token": per_token,
        "shared_experts": (get.count("n_shared_experts") or (1 if shared else 0)) or None,
    }


def _moe_layer_count(get: _Fields, layers: int) -> int:
    """Layers with experts: DeepSeek's first_k_dense_replace, Llama 4's interleave step, Qwen's mlp_only_layers."""
    cfg = get.config
    if "first_k_dense_replace" in cfg:
        return layers - get.count("first_k_dense_replace")
    if "interleave_moe_layer_step" in cfg:
        return layers // get.positive("interleave_moe_layer_step")
    step = get.positive("decoder_sparse_step", default=1)
    dense_only = cfg.get("mlp_only_layers") or []
    if not isinstance(dense_only, list):
        raise ModelConfigError(f"{get.origin}: field 'mlp_only_layers': expected a list of layer indices")
    return sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)


def native_precision(config: dict) -> str | None:
    """The weights' format as published: the quantization method if any, else the dtype."""
    quantization = config.get("quantization_config") or text_config(config).get("quantization_config")
    if isinstance(quantization, dict) and quantization.get("quant_method") == "compressed-tensors":
        groups = list((quantization.get("config_groups") or {}).values())
        bits = groups[0].get("weights", {}).get("num_bits") if groups and isinstance(groups[0], dict) else None
        return None if bits is None else {4: "int4", 8: "int8"}.get(bits)
    if isinstance(quantization, dict) and quantization.get("quant_method") in _PRECISION_OF_QUANTIZATION:
        return _PRECISION_OF_QUANTIZATION[quantization["quant_method"]]
    dtype = config.get("torch_dtype") or config.get("dtype") or text_config(config).get("torch_dtype")
    return _PRECISION_OF_DTYPE.get(str(dtype))


def hf_config_dir() -> Path:
    """The bundled configs the catalog was built from (`features/hf_configs/<org>/<name>/config.json`)."""
    return catalogs.resource_dir("features") / "hf_configs"


def row_from_config(path: Path) -> dict:
    """A catalog row for the model of a config.json (or a folder holding one), named after its folder."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    config = read_config(file)
    return {
        "id": file.resolve().parent.name.lower(),
        "family": text_config(config).get("model_type"),
        **architecture(config, str(file)),
        "mlperf_benchmarks": [],
        "aliases": [],
        "source": str(file.resolve()),
        "as_of": _modified(file),
        "notes": "built from a user config.json",
    }


def _modified(file: Path) -> str:
    """The config file's date (ISO), the row's as_of: a built row keeps the catalog's provenance rule."""
    import datetime as dt

    return dt.date.fromtimestamp(file.stat().st_mtime).isoformat()


def resolve(name: str) -> dict | None:
    """Catalog row for a catalog id, MLPerf benchmark, loose spelling, Hugging Face id or a config.json path.

    A row built from a path is registered in the model catalog, so the physics features of this process see it.
    """
    text = str(name).strip()
    path = Path(text).expanduser()
    if path.is_dir() and not (path / "config.json").is_file() and ("/" in text or text.startswith(".")):
        raise ModelConfigError(f"{path}: no config.json in this folder (expected a Hugging Face model folder)")
    if not (text.endswith(".json") or (path / "config.json").is_file()):
        return catalogs.models().resolve(text)
    if not path.exists():
        raise ModelConfigError(f"{path}: no such file (expected a Hugging Face config.json or its folder)")
    row = row_from_config(path)
    known = catalogs.models().by_id.get(row["id"])
    if known is not None and known.get("source") != row["source"]:
        row = {**row, "id": f"{row['id']}-config"}
    return catalogs.register_model(row)
