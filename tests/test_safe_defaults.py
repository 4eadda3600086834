"""Issue 14 acceptance: the README's bench-then-train sequence never touches the shipped model; `train` writes to
the user home atomically and refuses to lose targets; `predict --input` gives the single-configuration numbers;
every JSON output parses with a parser that rejects NaN."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from test_bench_fast import ClockworkEngine
from typer.testing import CliRunner

from flexpredict import catalogs, dataset
from flexpredict.bench.prompts import load_prompts
from flexpredict.bench.runner import RunConfig, run_benchmark
from flexpredict.bench.system import capture_system
from flexpredict.cli import app
from flexpredict.io import user_model_dir

runner = CliRunner()


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def shipped() -> dict[str, str]:
    """The shipped model, its score tables and the shipped dataset, hashed."""
    return {**tree_hashes(catalogs.default_model_dir()), "dataset": tree_hashes(dataset.SHIPPED.parent)}


def strict(text: str):
    """JSON as JavaScript's JSON.parse reads it: NaN / Infinity are errors."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def my_runs(tmp_path_factory) -> Path:
    """The README's `bench run ... --append-to my-runs.parquet`, with the deterministic stand-in engine."""
    folder = tmp_path_factory.mktemp("bench")
    engine = ClockworkEngine(tokens=4, ttft_s=0.02, tpot_s=0.001, tail_s=0)
    runs = folder / "my-runs.parquet"
    for scenario, qps in (("Offline", 1000), ("Server", 20)):
        cfg = RunConfig(scenario=scenario, target_qps=qps, samples=40, min_duration_s=0.2, max_tokens=4)
        results = run_benchmark(engine, load_prompts(), cfg, folder / scenario, capture_system(), engine.info())
        dataset.append(pd.DataFrame([results["record"]]), runs)
    return runs


@pytest.mark.slow
def test_readme_bench_then_train_then_recommend_leaves_the_shipped_model_byte_identical(my_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXPREDICT_HOME", str(tmp_path / "home"))
    before = shipped()
    trained = runner.invoke(app, ["train", "--dataset", str(my_runs), "--quiet"])  # the README's line
    assert trained.exit_code == 2
    assert trained.stderr.strip() == "error: 0 usable rows for every target (2 records read): nothing written"
    assert not user_model_dir().exists()
    recommended = runner.invoke(app, ["recommend", "--budget", "2000", "--latency-slo", "200ms", "--format", "json"])
    assert recommended.exit_code == 0, recommended.output
    assert strict(recommended.stdout)["recommendations"]
    assert shipped() == before


@pytest.mark.slow
def test_train_writes_the_user_home_and_refuses_to_lose_targets(my_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXPREDICT_HOME", str(tmp_path / "home"))
    before = shipped()
    llama = dataset.load().query("model == 'llama2-70b'")
    combined = tmp_path / "combined.parquet"
    dataset.save(pd.concat([llama, dataset.load(my_runs)], ignore_index=True), combined)
    trained = runner.invoke(
        app, ["train", "--dataset", str(combined), "--predictor", "lookup-median", "--name", "mine", "--quiet"]
    )
    assert trained.exit_code == 0, trained.output
    target = user_model_dir("mine")
    assert target == tmp_path / "home" / "models" / "mine"
    assert f"use it with --model-dir {target}" in trained.stdout
    assert {"manifest.json", "throughput_per_accelerator", "tpot_p99_ms"} <= {p.name for p in target.iterdir()}
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    model = tree_hashes(target)
    offline_only = tmp_path / "offline.parquet"
    dataset.save(llama[llama["scenario"] == "Offline"], offline_only)
    refused = runner.invoke(
        app, ["train", "--dataset", str(offline_only), "--predictor", "lookup-median", "--name", "mine", "-q"]
    )
    assert refused.exit_code == 2
    assert refused.stderr.strip().startswith(f"error: {target}: the new model would lose target(s) ")
    assert tree_hashes(target) == model
    predicted = runner.invoke(
        app,
        [
            "predict",
            "--accelerator",
            "h100-sxm-80gb",
            "--count",
            "8",
            "--model",
            "llama2-70b",
            "--scenario",
            "Server",
            "--precision",
            "fp8",
            "--json",
        ],
        env={"FLEXPREDICT_MODEL_DIR": str(target)},
    )  # the user's model, by the environment
    assert predicted.exit_code == 0, predicted.output
    assert {row["target"] for row in strict(predicted.stdout)["predictions"]} == {
        "throughput_per_accelerator",
        "ttft_p99_ms",
        "tpot_p99_ms",
    }  # what lookup-median learned, not the shipped
    assert shipped() == before


def single(accelerator: str, scenario: str, precision: str) -> dict:
    result = runner.invoke(
        app,
        [
            "predict",
            "--accelerator",
            accelerator,
            "--count",
            "8",
            "--model",
            "llama2-70b",
            "--scenario",
            scenario,
            "--precision",
            precision,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return {row["target"]: row for row in strict(result.stdout)["predictions"]}


def test_predict_input_gives_the_single_configuration_numbers(tmp_path):
    """Short ids, full ids, vendor names (accelerator_raw) and Hugging Face model ids resolve like --accelerator."""
    source = tmp_path / "configs.csv"
    source.write_text(
        "accelerator,accelerator_raw,count,model,benchmark,scenario,precision\n"
        "h100-sxm-80gb,,8,llama2-70b,,Server,fp8\n"
        "nvidia-h100-sxm-80gb,,8,llama2-70b,,Server,fp8\n"
        ",NVIDIA H100-SXM-80GB,8,,llama2-70b-99,Server,fp8\n"
        "h100-sxm-80gb,,8,meta-llama/Llama-2-70b-chat-hf,,Server,fp8\n"
        "nvidia-h100-sxm-80gb,,8,llama2-70b,,Offline,fp8\n"
    )
    out = tmp_path / "predicted.csv"
    result = runner.invoke(app, ["predict", "--input", str(source), "--out", str(out)])
    assert result.exit_code == 0 and result.stderr == "", result.output
    frame = pd.read_csv(out)
    assert (frame["match"] == "resolved").all()
    assert set(frame["accelerator"]) == {"nvidia-h100-sxm-80gb"} and set(frame["model"]) == {"llama2-70b"}
    assert (frame["accelerators_total"] == 8).all() and frame["fits"].all()
    for position, scenario in enumerate(["Server"] * 4 + ["Offline"]):
        expected = single("h100-sxm-80gb", scenario, "fp8")
        for name, row in expected.items():
            got = frame.loc[position, [f"pred_{name}", f"pred_{name}_lo", f"pred_{name}_hi"]].to_numpy(float)
            assert got == pytest.approx([row["prediction"], row["low"], row["high"]], rel=1e-9), (position, name)
    assert frame["pred_tpot_p99_ms"].iloc[:4].notna().all()


@pytest.mark.parametrize(
    "args",
    [
        [
            "predict",
            "--accelerator",
            "h100-sxm-80gb",
            "--count",
            "8",
            "--model",
            "llama2-70b",
            "--scenario",
            "Server",
            "--json",
        ],
        ["recommend", "--budget", "2000", "--latency-slo", "200ms", "--format", "json"],
        ["recommend", "--budget", "1", "--latency-slo", "1ms", "--format", "json"],  # no recommendation: exit 1
        ["recommend", "--model", "resnet50", "--pricing", "own", "--format", "json", "--top", "3"],
        ["data", "info", "--json"],
        [
            "explain",
            "--accelerator",
            "h100-sxm-80gb",
            "--model",
            "llama2-70b",
            "--target",
            "throughput_per_accelerator",
            "--format",
            "json",
        ],
    ],
    ids=lambda args: " ".join(args[:3]),
)
def test_every_json_output_is_strict_json(args):
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    document = strict(result.stdout)
    assert document
