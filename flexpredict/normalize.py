"""Turn free-text MLPerf metadata into clean values: units, scenarios, benchmarks, engines, precisions.

Each function maps one kind of string and returns None for what it cannot read: unknown values stay explicit
instead of being silently mapped to something else.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "b": 1e-9,
    "kb": 1e-6,
    "mb": 1e-3,
    "gb": 1.0,
    "tb": 1e3,
    "pb": 1e6,
    "kib": 1024 / 1e9,
    "mib": 1024**2 / 1e9,
    "gib": 1024**3 / 1e9,
    "tib": 1024**4 / 1e9,
    "pib": 1024**5 / 1e9,
    "k": 1e-6,
    "m": 1e-3,
    "g": 1.0,
    "t": 1e3,
}
_SIZE = re.compile(r"(\d+(?:[.,]\d+)?)\s*([kmgtp]i?b?|b)\b", re.IGNORECASE)
_SIZE_TIMES = re.compile(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b)\b", re.IGNORECASE)


def memory_gb(text) -> float | None:
    """'81559 MiB' -> 85.5, '1.5TiB' -> 1649.3, '141 GB' -> 141.0, '16x 64GB' -> 1024.0, 'N/A' -> None.

    A bare number is taken as GB. GB means 10^9 bytes; the binary units are converted.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text) if text == text and text > 0 else None
    s = str(text).strip()
    if not s:
        return None
    times = _SIZE_TIMES.search(s)
    if times and not _SIZE.match(s):
        return round(int(times.group(1)) * float(times.group(2)) * _SIZE_UNITS[times.group(3).lower()], 3)
    match = _SIZE.search(s)
    if match:
        value = float(match.group(1).replace(",", "."))
        unit = match.group(2).lower()
        if unit not in _SIZE_UNITS:
            return None
        return round(value * _SIZE_UNITS[unit], 3) if value > 0 else None
    try:
        value = float(s)
    except ValueError:
        return None
    return value if value > 0 else None


_SCENARIOS = {
    "offline": "Offline",
    "server": "Server",
    "interactive": "Interactive",
    "singlestream": "SingleStream",
    "single-stream": "SingleStream",
    "single_stream": "SingleStream",
    "multistream": "MultiStream",
    "multi-stream": "MultiStream",
    "multi_stream": "MultiStream",
    "closedloop": "ClosedLoop",
    "closed-loop": "ClosedLoop",
    "closed_loop": "ClosedLoop",
}


def scenario(text) -> str | None:
    """Canonical MLPerf scenario name from any casing ('offline', 'singlestream', 'Server')."""
    if text is None:
        return None
    return _SCENARIOS.get(str(text).strip().lower().replace(" ", ""))


_BENCHMARK_ALIASES = {
    "resnet50": "resnet",
    "resnet": "resnet",
    "llama3_1-405b": "llama3.1-405b",
    "llama3.1-405b": "llama3.1-405b",
    "stable-diffusion-xl": "stable-diffusion-xl",
    "sdxl": "stable-diffusion-xl",
    "gpt-j-99": "gptj-99",
    "gpt-j-99.9": "gptj-99.9",
}


_VERSION_UNDERSCORE = re.compile(r"(?<=[a-z])(\d)_(\d)(?=-|$)")


def benchmark(text) -> str | None:
    """Canonical MLPerf benchmark name ('resnet50' -> 'resnet', 'llama3_1-405b' -> 'llama3.1-405b')."""
    if text is None:
        return None
    s = str(text).strip().lower()
    if not s:
        return None
    s = _VERSION_UNDERSCORE.sub(r"\1.\2", s)  # llama3_1-8b (a folder name) is llama3.1-8b
    return _BENCHMARK_ALIASES.get(s, s)


_ACCURACY_SUFFIX = re.compile(r"-(99(?:\.9)?)$")


def benchmark_base(name: str) -> str:
    """'llama2-70b-interactive-99.9' -> 'llama2-70b' : the model part of a benchmark name."""
    base = _ACCURACY_SUFFIX.sub("", name)
    return base.replace("-interactive", "")


def is_llm_benchmark(name: str | None) -> bool:
    """LLM benchmarks report tokens: GPT-J, Llama 2/3.1, Mixtral and later generative text benchmarks."""
    if not name:
        return False
    return bool(re.match(r"(gptj|gpt-j|llama|mixtral|deepseek|qwen|mistral|gpt-oss|falcon)", name))


_TOKENS_PER_SAMPLE = re.compile(r"TOKENS_PER_SAMPLE['\"]?\s*[:=]\s*([0-9.]+)", re.IGNORECASE)


def tokens_per_sample(accuracy) -> float | None:
    """The TOKENS_PER_SAMPLE value of an MLPerf LLM accuracy string."""
    if accuracy is None:
        return None
    match = _TOKENS_PER_SAMPLE.search(str(accuracy))
    return float(match.group(1)) if match else None


# (pattern, engine): first match wins, so specific names come before general ones
_ENGINES: tuple[tuple[str, str], ...] = (
    (r"tensorrt[- ]?llm|trt[- ]?llm", "tensorrt-llm"),
    (r"\bvllm\b", "vllm"),
    (r"sglang", "sglang"),
    (r"deepsparse", "deepsparse"),
    (r"openvino", "openvino"),
    (r"onnx ?runtime|\bort\b", "onnxruntime"),
    (r"migraphx", "migraphx"),
    (r"intel extension for pytorch|\bipex\b", "ipex"),
    (r"synapse ?ai|habana|gaudi", "synapseai"),
    (r"qaic|qualcomm|cloud ai 100|aic ?sdk|apps sdk|platform sdk", "qaic"),
    (r"imaigine|untether", "imaigine"),
    (r"saxml|\bjax\b", "jax"),
    (r"tensorrt|\btrt\b", "tensorrt"),
    (r"tflite|tensorflow ?lite", "tflite"),
    (r"tensorflow|\btf\b", "tensorflow"),
    (r"kilt", "kilt"),
    (r"llama\.cpp|llamacpp", "llama.cpp"),
    (r"triton", "triton"),
    (r"mxnet", "mxnet"),
    (r"pytorch|\btorch\b", "pytorch"),
    (r"onnx", "onnxruntime"),
)
_VERSION_AFTER = r"[^\d,;]{0,12}?v?(\d+(?:\.\d+)+|\d+)"


def engine(framework, benchmark_name: str | None = None) -> tuple[str | None, str | None]:
    """('TensorRT 10.2.0, CUDA 12.4', 'llama2-70b-99') -> ('tensorrt-llm', '10.2.0');
    ('vLLM v0.7.3') -> ('vllm', '0.7.3').

    NVIDIA writes 'TensorRT x.y' for its LLM submissions, which run TensorRT-LLM: for LLM benchmarks the TensorRT
    entry is read as tensorrt-llm (with the TensorRT version, the only one published).
    """
    if framework is None:
        return None, None
    text = str(framework).strip()
    if not text or text.lower() in {"n/a", "na", "none", "-"}:
        return None, None
    lowered = text.lower()
    for pattern, name in _ENGINES:
        match = re.search(pattern, lowered)
        if not match:
            continue
        version = re.match(_VERSION_AFTER, lowered[match.end() :])
        if name == "tensorrt" and is_llm_benchmark(benchmark_name):
            name = "tensorrt-llm"
        return name, version.group(1) if version else None
    return None, None


_PRECISIONS = {
    "fp4": "fp4",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "float4": "fp4",
    "fp6": "fp6",
    "int4": "int4",
    "uint4": "int4",
    "w4a16": "int4",
    "w4a8": "int4",
    "fp8": "fp8",
    "float8": "fp8",
    "e4m3": "fp8",
    "fp8_e4m3": "fp8",
    "w8a8": "int8",
    "int8": "int8",
    "uint8": "int8",
    "i8": "int8",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "tf32": "fp32",
}
_BITS = {"fp4": 4, "int4": 4, "fp6": 6, "fp8": 8, "int8": 8, "bf16": 16, "fp16": 16, "fp32": 32}


def precision(text) -> str | None:
    """Weight precision from weight_data_types ('INT8', 'float8', 'fp8,fp16,int8').

    Several types: the narrowest wins (most weights are stored in it); floating point before integer on a tie.
    """
    if text is None:
        return None
    tokens = re.split(r"[\s,;/+|]+", str(text).strip().lower())
    found = [_PRECISIONS[t] for t in tokens if t in _PRECISIONS]
    if not found:
        return None
    return min(found, key=lambda p: (_BITS[p], not p.startswith("fp") and p != "bf16"))


def to_int(value) -> int | None:
    """Integer from JSON numbers or strings like '8', '8.0', '2x'; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value == value else None
    match = re.match(r"\s*(\d+(?:\.0+)?)\b", str(value))
    return int(float(match.group(1))) if match else None


def to_float(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def clean_text(value) -> str | None:
    """Strip; empty, 'N/A' and friends become None."""
    if value is None:
        return None
    s = str(value).strip()
    return None if s.lower() in {"", "n/a", "na", "none", "null", "nan", "-", "unknown"} else s
