"""Models from Hugging Face config.json files: parameter counts, KV-cache bytes, resolution, the CLI, workloads."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
from typer.testing import CliRunner

from flexpredict import catalogs, model_config
from flexpredict.cli import app
from flexpredict.features.physics import attention_flops_per_token, physics, roofline

runner = CliRunner()
BUNDLED = model_config.hf_config_dir()


@pytest.fixture(autouse=True)
def fresh_model_registry(monkeypatch):
    """Config-built rows registered by a test stay out of the other tests' catalog."""
    monkeypatch.setattr(catalogs, "_registered_models", [])
    catalogs.models.cache_clear()
    yield
    catalogs.models.cache_clear()


def bundled(hf_id: str) -> dict:
    return model_config.read_config(BUNDLED / hf_id / "config.json")


# -- parameter counts and KV bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hf_id, total_b, active_b",
    [
        ("Qwen/Qwen3-32B", 32.8, 32.8),  # dense; Qwen counts the input embedding in "activated"
        ("Qwen/Qwen3-8B", 8.2, 8.2),
        ("Qwen/Qwen3-30B-A3B", 30.5, 3.3),
        ("Qwen/Qwen3-235B-A22B", 235, 22),
        ("deepseek-ai/DeepSeek-V3", 671, 37),  # MLA, 1 shared expert, first 3 layers dense
        ("openai/gpt-oss-120b", 116.83, 5.13),  # OpenAI's model card table (no input embedding in active)
        ("openai/gpt-oss-20b", 20.91, 3.61),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 46.7, 12.9),
        ("meta-llama/Llama-3.1-405B-Instruct", 405, 405),
        ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", 400, 17),  # text_config nesting, MoE every 2nd layer
    ],
)
def test_parameter_counts_match_published_totals(hf_id, total_b, active_b):
    row = model_config.architecture(bundled(hf_id))
    assert row["params_total_b"] == pytest.approx(total_b, rel=0.03)
    assert _closest_active(row, active_b) == pytest.approx(active_b, rel=0.05)


def _closest_active(row: dict, published: float) -> float:
    """Publishers differ on counting the input-embedding lookup in "active": compare with the nearer reading."""
    readings = (row["params_active_b"], row["params_active_b"] + row["params_embedding_b"])
    return min(readings, key=lambda value: abs(value - published))


def test_every_bundled_catalog_row_matches_its_published_totals():
    """Each `hf_config` row's counts, built from the bundled config, agree with the model card's totals (the
    row's published_* fields, or its own params where it states them)."""
    rows = [row for row in catalogs.models().rows if row.get("hf_config")]
    assert len(rows) >= 25
    for row in rows:
        built = model_config.architecture(bundled(row["hf_config"]))
        published = row.get("published_total_b") or row["params_total_b"]
        assert built["params_total_b"] == pytest.approx(published, rel=0.03), row["id"]
        active = row.get("published_active_b") or row["params_active_b"]
        assert _closest_active(built, active) == pytest.approx(active, rel=0.05), row["id"]


def test_every_bundled_config_has_a_catalog_row_with_source_and_date():
    named = {row["hf_config"] for row in catalogs.models().rows if row.get("hf_config")}
    on_disk = {f"{path.parent.parent.name}/{path.parent.name}" for path in BUNDLED.glob("*/*/config.json")}
    assert on_disk == named
    for row in catalogs.models().rows:
        assert row.get("source") and row.get("as_of"), row["id"]


def test_kv_bytes_per_token_gqa_and_mla():
    qwen = model_config.architecture(bundled("Qwen/Qwen3-32B"))
    assert (qwen["attention"], qwen["kv_bytes_per_token_bf16"]) == ("GQA", 64 * 2 * 8 * 128 * 2)
    deepseek = model_config.architecture(bundled("deepseek-ai/DeepSeek-V3"))
    assert (deepseek["attention"], deepseek["kv_bytes_per_token_bf16"]) == ("MLA", 61 * (512 + 64) * 2)
    assert (deepseek["moe_experts"], deepseek["moe_active_experts"], deepseek["moe_shared_experts"]) == (256, 8, 1)
    assert deepseek["native_precision"] == "fp8"
    gpt_oss = model_config.architecture(bundled("openai/gpt-oss-120b"))
    assert (gpt_oss["kv_bytes_per_token_bf16"], gpt_oss["native_precision"]) == (36 * 2 * 8 * 64 * 2, "fp4")
    gptj = catalogs.models().resolve("gptj")  # no bundled config: derived from the row's own fields
    assert (gptj["attention"], gptj["kv_bytes_per_token_bf16"]) == ("MHA", 2 * 28 * 16 * 256 * 2)


def test_physics_reads_kv_bytes_and_workload_lengths_from_the_catalog():
    """deepseek-r1 (MLA, no KV heads) gets a KV size and its native precision; a long-context benchmark charges
    more prefill work."""
    import pandas as pd

    records = pd.DataFrame(
        {
            "accelerator": ["nvidia-h100-sxm-80gb"] * 2,
            "accelerator_raw": [None] * 2,
            "model": ["deepseek-r1", "llama3.1-405b"],
            "benchmark": ["deepseek-r1", "llama3.1-405b"],
            "precision": [None, "fp8"],
            "accelerators_total": [8, 8],
            "accelerator_memory_gb": [80, 80],
        }
    )
    features = physics(records)
    assert features["kv_bytes_per_token"].tolist() == [70272.0, 126 * 2 * 8 * 128 * 2.0]
    assert features["bytes_per_param"].iloc[0] == 1.0  # no precision given: DeepSeek's published fp8 weights
    compute_only = {**features.iloc[1].to_dict(), "acc_bandwidth_tbs": float("nan")}  # the compute bound alone
    model = catalogs.models().resolve("llama3.1-405b")
    ratio = roofline(compute_only, model, "llama3.1-405b", 8) / roofline(
        compute_only, model, "llama3.1-405b", 8, prefill=True
    )
    # each output token carries its share of the prompt, and attention over the context
    dense = 2 * model["params_active_b"] * 1e9
    attention = attention_flops_per_token(model, compute_only["kv_bytes_per_token"], 9429, 684.68)
    assert attention > 0
    assert ratio == pytest.approx((dense * (9429 + 684.68) / 684.68 + attention) / dense)


# -- workloads ---------------------------------------------------------------------------------------------------


def test_workload_table_values():
    table = catalogs.workloads()
    expected = {
        "llama2-70b": (222, 294),
        "mixtral-8x7b": (427, 144.84),
        "llama3.1-405b": (9429, 684.68),
        "llama3.1-8b": (871, 128),
        "deepseek-r1": (804, 4043.45),
        "gpt-oss-120b": (5011, 1278.2),
    }
    for benchmark, lengths in expected.items():
        assert catalogs.workload_sequence(benchmark, None) == lengths, benchmark
        assert table[benchmark]["source"].startswith("https://github.com/mlcommons/inference/")
        assert table[benchmark]["as_of"]
    assert catalogs.workload_sequence("llama3_1-405b-interactive", None) == (9429, 684.68)
    assert catalogs.workload_sequence("llama2-70b-99.9", catalogs.models().resolve("llama3.3-70b")) == (222, 294)
    assert catalogs.workload_sequence("qwen3-32b", catalogs.models().resolve("qwen3-32b")) == (1024, 256)
    assert table["qwen3-vl-235b-a22b"]["input_tokens"]["max"] == 61566


def test_workload_keys_have_their_latency_bounds_in_the_slo_presets():
    bounds = {
        "llama2-70b": ({"ttft_ms": 2000, "tpot_ms": 200}, {"ttft_ms": 450, "tpot_ms": 40}),
        "llama3.1-405b": ({"ttft_ms": 6000, "tpot_ms": 175}, {"ttft_ms": 4500, "tpot_ms": 80}),
        "llama3.1-8b": ({"ttft_ms": 2000, "tpot_ms": 100}, {"ttft_ms": 500, "tpot_ms": 30}),
        "deepseek-r1": ({"ttft_ms": 2000, "tpot_ms": 80}, {"ttft_ms": 1500, "tpot_ms": 15}),
        "gpt-oss-120b": ({"ttft_ms": 3000, "tpot_ms": 80}, {"ttft_ms": 2000, "tpot_ms": 15}),
        "qwen3-vl-235b-a22b": ({"latency_ms": 12000}, {"latency_ms": 1500}),
    }
    presets = catalogs.slo_presets()
    for benchmark, (server, interactive) in bounds.items():
        assert (presets[benchmark]["server"], presets[benchmark]["interactive"]) == (server, interactive)
    assert presets["mixtral-8x7b"]["server"] == {"ttft_ms": 2000, "tpot_ms": 200}
    assert set(catalogs.workloads()) - {"default"} <= set(presets)


# -- resolution --------------------------------------------------------------------------------------------------


def test_hugging_face_id_resolves_to_the_bundled_config_offline():
    row = model_config.resolve("Qwen/Qwen3-32B")
    assert (row["id"], row["hf_config"], row["layers"], row["kv_heads"]) == ("qwen3-32b", "Qwen/Qwen3-32B", 64, 8)
    assert model_config.resolve("deepseek-ai/DeepSeek-V3.1")["id"] == "deepseek-v3.1"
    assert model_config.resolve("llama2-70b-interactive-99")["id"] == "llama2-70b"


def test_config_path_row_is_registered_for_the_physics(tmp_path):
    folder = tmp_path / "my-moe"
    folder.mkdir()
    shutil.copy(BUNDLED / "openai/gpt-oss-120b/config.json", folder / "config.json")
    row = model_config.resolve(str(folder))
    assert row["id"] == "my-moe" and row["moe_experts"] == 128
    assert catalogs.models().resolve("my-moe") is row
    assert model_config.resolve(str(folder / "config.json")) is row  # the same file registers once


def test_a_config_named_like_a_catalog_model_gets_its_own_id(tmp_path):
    folder = tmp_path / "Qwen3-32B"
    folder.mkdir()
    shutil.copy(BUNDLED / "Qwen/Qwen3-32B/config.json", folder / "config.json")
    assert model_config.resolve(str(folder / "config.json"))["id"] == "qwen3-32b-config"
    assert catalogs.models().resolve("qwen3-32b")["hf_config"] == "Qwen/Qwen3-32B"


def test_a_folder_without_a_config_is_named(tmp_path):
    with pytest.raises(model_config.ModelConfigError, match="no config.json in this folder"):
        model_config.resolve(str(tmp_path))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("num_hidden_layers"), "field 'num_hidden_layers': missing (expected a positive integer)"),
        (lambda c: c.update(num_key_value_heads="eight"), "field 'num_key_value_heads': expected a positive integer"),
        (lambda c: c.update(n_routed_experts=256), "field 'num_experts_per_tok': missing"),
    ],
)
def test_bad_config_fields_name_the_field(tmp_path, edit, message):
    config = bundled("Qwen/Qwen3-32B")
    edit(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(model_config.ModelConfigError, match=re.escape(message)) as error:
        model_config.resolve(str(path))
    assert str(error.value).startswith(str(path))


# -- the CLI -----------------------------------------------------------------------------------------------------


def _predict(model: str):
    return runner.invoke(
        app,
        [
            "predict",
            "--accelerator",
            "h200-sxm-141gb",
            "--count",
            "8",
            "--model",
            model,
            "--scenario",
            "Offline",
            "--json",
        ],
    )


@pytest.mark.slow
@pytest.mark.parametrize("hf_id", ["Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-V3"])
def test_predict_from_a_config_path_gives_finite_throughput(tmp_path, hf_id):
    folder = tmp_path / hf_id.split("/")[1].lower().replace(".", "-") / "checkpoint"
    folder.mkdir(parents=True)
    shutil.copy(BUNDLED / hf_id / "config.json", folder / "config.json")
    result = _predict(str(folder / "config.json"))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["configuration"]["model"] == "checkpoint"
    throughput = next(p for p in answer["predictions"] if p["target"] == "throughput_per_accelerator")
    assert math.isfinite(throughput["prediction"]) and throughput["prediction"] > 0


@pytest.mark.slow
def test_predict_with_a_hugging_face_id():
    result = _predict("openai/gpt-oss-120b")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["configuration"]["model"] == "gpt-oss-120b"


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, message",
    [
        ('{"hidden_size": 5120,', "not valid JSON"),
        (
            json.dumps({"hidden_size": 5120, "num_attention_heads": 64, "vocab_size": 151936}),
            "field 'num_hidden_layers': missing",
        ),
    ],
)
def test_predict_with_a_malformed_config_exits_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    result = _predict(str(path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], result.output
    assert "Traceback" not in result.output
