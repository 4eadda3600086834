"""Free-text MLPerf metadata into clean values; unknowns stay None."""

from __future__ import annotations

import pytest

from flexpredict import normalize as norm


@pytest.mark.parametrize(
    "text, gb",
    [
        ("81559 MiB", 85.521),
        ("1.5TiB", 1649.267),
        ("141 GB", 141.0),
        ("180GB", 180.0),
        ("96 GB HBM3", 96.0),
        ("16x 64GB", 1024.0),
        ("2 TB", 2000.0),
        ("512", 512.0),
        ("N/A", None),
        ("", None),
        (None, None),
        ("unknown", None),
        ("0 GB", None),
        (80, 80.0),
    ],
)
def test_memory_strings(text, gb):
    assert norm.memory_gb(text) == (pytest.approx(gb, rel=1e-4) if gb else None)


@pytest.mark.parametrize(
    "framework, bench, expected",
    [
        ("TensorRT 10.2.0, CUDA 12.4", "llama2-70b-99", ("tensorrt-llm", "10.2.0")),
        ("TensorRT 10.2.0, CUDA 12.4", "resnet", ("tensorrt", "10.2.0")),
        ("vLLM v0.7.3", "llama2-70b-99", ("vllm", "0.7.3")),
        ("vLLM 0.4.3+rocm614, PyTorch 2.3.0, ROCm 6.1.2", "llama2-70b-99", ("vllm", "0.4.3")),
        ("TensorRT-LLM 0.12, CUDA 12.6", "gptj-99", ("tensorrt-llm", "0.12")),
        ("SGLang 0.4.3", "llama3.1-405b", ("sglang", "0.4.3")),
        ("onnxruntime v1.16.3", "bert-99", ("onnxruntime", "1.16.3")),
        ("OpenVINO 2023.1", "resnet", ("openvino", "2023.1")),
        ("PyTorch 2.1, IPEX 2.1", "resnet", ("ipex", "2.1")),
        ("N/A", "resnet", (None, None)),
        ("some in-house runtime", "resnet", (None, None)),
    ],
)
def test_engines(framework, bench, expected):
    assert norm.engine(framework, bench) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fp8", "fp8"),
        ("INT8", "int8"),
        ("float8", "fp8"),
        ("bfloat16", "bf16"),
        ("fp8,fp16,int8", "fp8"),
        ("fp4", "fp4"),
        ("int4, fp16", "int4"),
        ("Dummy", None),
        ("UNSET", None),
        (None, None),
    ],
)
def test_precision(text, expected):
    assert norm.precision(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("offline", "Offline"),
        ("server", "Server"),
        ("singlestream", "SingleStream"),
        ("MultiStream", "MultiStream"),
        ("Interactive", "Interactive"),
        ("bogus", None),
    ],
)
def test_scenarios(text, expected):
    assert norm.scenario(text) == expected


def test_benchmarks_and_tokens_per_sample():
    assert norm.benchmark("resnet50") == "resnet"
    assert norm.benchmark("llama3_1-405b") == "llama3.1-405b"
    assert norm.benchmark_base("llama2-70b-interactive-99.9") == "llama2-70b"
    assert norm.tokens_per_sample("ROUGE1: 44.5  ROUGEL: 28.7  TOKENS_PER_SAMPLE: 293.7") == 293.7
    assert norm.tokens_per_sample("{'tokens_per_sample': 289.4}") == 289.4
    assert norm.tokens_per_sample("mAP: 37.3") is None
