"""The capacity function through the CLI: `train` fits it into the model folder (UBJ + JSON, no pickles), `predict`
gives TTFT/TPOT at a load (one configuration, or per row of a file), bad loads are one line with exit 2, and a model
folder trained before the capacity function existed keeps working without a load."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from flexpredict import capacity, dataset
from flexpredict.cli import app

runner = CliRunner()
H200 = ["--accelerator", "nvidia-h200-sxm-141gb", "--count", "8", "--model", "llama2-70b", "--precision", "fp8"]
LATENCY_COLUMNS = [
    f"pred_{metric}_{stat}_ms{end}"
    for metric in ("ttft", "tpot")
    for stat in ("p50", "p99")
    for end in ("", "_lo", "_hi")
]


def strict(text: str):
    """json.loads that refuses NaN and Infinity tokens."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"non-JSON token {token}"))


def one_error_line(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(part in lines[0] for part in expected), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def trained(built, tmp_path_factory):
    """A model trained by the CLI on a small slice: two models' latency-under-load sweeps and llama2-70b's MLPerf
    results of v5.0/v5.1 (about 10 s on 2 cores)."""
    records = built[0]
    sweeps = records["scenario"].eq("ClosedLoop") & records["model"].isin(["llama3.1-8b", "qwen3-32b"])
    mlperf = records["model"].eq("llama2-70b") & records["round"].isin(["v5.0", "v5.1"])
    folder = tmp_path_factory.mktemp("capacity-cli")
    dataset.save(records[sweeps | mlperf], folder / "slice.parquet")
    result = runner.invoke(
        app, ["train", "--dataset", str(folder / "slice.parquet"), "--out", str(folder / "model"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "capacity function:" in result.output
    return folder / "model"


@pytest.fixture(scope="module")
def without_capacity(trained, tmp_path_factory):
    """The same model folder as one trained before the capacity function existed."""
    folder = tmp_path_factory.mktemp("no-capacity") / "model"
    shutil.copytree(trained, folder)
    shutil.rmtree(folder / capacity.FOLDER)
    return folder


def test_train_writes_the_capacity_function_as_ubj_and_json(trained):
    folder = trained / capacity.FOLDER
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".ubj", ".ubj", ".ubj"]
    document = strict((folder / capacity.META_FILE).read_text())
    assert document["format_version"] == capacity.FORMAT_VERSION and document["training_rows"]["curve_points"] > 100
    assert not list(trained.rglob("*.pkl")) and not list(trained.rglob("*.pickle"))


def test_predict_at_a_token_rate_gives_latencies_with_intervals(trained):
    result = runner.invoke(app, ["predict", *H200, "--load", "5000tok/s", "--model-dir", str(trained), "--json"])
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    assert document["load"] == {"kind": "tokens_per_s", "value": 5000.0} and not document["over_capacity"]
    assert [row["metric"] for row in document["latencies"]] == ["TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"]
    for row in document["latencies"]:
        assert 0 < row["low_ms"] <= row["prediction_ms"] <= row["high_ms"], row
    assert document["output_tokens_per_s"] == pytest.approx(5000.0)
    table = runner.invoke(app, ["predict", *H200, "--load", "5k tok/s", "--model-dir", str(trained)])
    assert table.exit_code == 0 and "TPOT p99" in table.output and "over capacity" not in table.output


def test_a_load_beyond_capacity_is_said_in_one_line(trained):
    result = runner.invoke(app, ["predict", *H200, "--load", "50000000tok/s", "--model-dir", str(trained)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "over capacity" in line]
    assert len(notes) == 1 and "50,000,000 tok/s exceeds what this configuration sustains" in notes[0]
    document = strict(
        runner.invoke(app, ["predict", *H200, "--load", "50000000tok/s", "--model-dir", str(trained), "--json"]).stdout
    )
    assert document["over_capacity"] and all(row["prediction_ms"] is None for row in document["latencies"])


def test_more_users_wait_longer_per_token(trained):
    def tpot(users: int, osl: int = 200) -> float:
        result = runner.invoke(
            app,
            [
                "predict",
                *H200,
                "--concurrency",
                str(users),
                "--isl",
                "1000",
                "--osl",
                str(osl),
                "--model-dir",
                str(trained),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        document = strict(result.stdout)
        assert (document["configuration"]["isl"], document["configuration"]["osl"]) == (1000, osl)
        return document["latencies"][3]["prediction_ms"]

    assert tpot(1) < tpot(64) < tpot(512)


def test_predict_input_rows_get_latency_at_their_load(trained, tmp_path):
    source = tmp_path / "workloads.csv"
    source.write_text(
        "scenario,model,accelerator_raw,count,engine,input_tokens_mean,output_tokens_mean,concurrency,"
        "target_qps\n"
        "Server,llama2-70b,NVIDIA H200-SXM-141GB,8,trtllm,1000,200,64,\n"
        "Server,meta-llama/Llama-3.1-8B-Instruct,b200_sxm,1,vllm,8000,300,,2\n"
        "Offline,llama3.1-8b,b200_sxm,1,vllm,,,,\n"
    )
    out = tmp_path / "predicted.csv"
    result = runner.invoke(app, ["predict", "--input", str(source), "--out", str(out), "--model-dir", str(trained)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert (frame["match"] == "resolved").all()
    loaded = frame.iloc[:2]
    assert loaded[LATENCY_COLUMNS + ["pred_output_tokens_per_s"]].notna().all(axis=None)
    for metric in ("ttft", "tpot"):
        for stat in ("p50", "p99"):
            column = f"pred_{metric}_{stat}_ms"
            assert (loaded[f"{column}_lo"] <= loaded[column]).all() and (loaded[column] <= loaded[f"{column}_hi"]).all()
    assert frame.loc[1, "pred_output_tokens_per_s"] == pytest.approx(2 * 300)  # requests/s x output tokens
    assert pd.isna(frame.loc[2, "pred_tpot_p50_ms"])  # no load given: no latency under load


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--load", "fast"], ("--load: expected a load like",)),
        (["--qps", "0"], ("--qps", "expected a finite positive number")),
        (["--concurrency", "-3"], ("--concurrency",)),
        (["--load", "5000tok/s", "--qps", "2"], ("--qps: give one load",)),
        (["--isl", "1000"], ("--isl/--osl: give a load too",)),
        (["--concurrency", "8", "--osl", "0"], ("--osl", "expected an integer >= 1")),
    ],
)
def test_bad_loads_are_one_line(trained, options, expected):
    one_error_line(runner.invoke(app, ["predict", *H200, *options, "--model-dir", str(trained)]), *expected)


def test_a_bad_load_column_names_the_column_and_row(trained, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text(
        "scenario,model,accelerator,count,concurrency\nServer,llama2-70b,h200-sxm-141gb,8,16\n"
        "Server,llama2-70b,h200-sxm-141gb,8,-4\n"
    )
    out = tmp_path / "out.csv"
    one_error_line(
        runner.invoke(app, ["predict", "--input", str(source), "--out", str(out), "--model-dir", str(trained)]),
        "column 'concurrency', row 2: expected a positive number",
    )
    assert not out.exists()


def test_a_model_without_the_capacity_function_still_predicts_and_says_to_retrain(without_capacity, tmp_path):
    plain = runner.invoke(app, ["predict", *H200, "--scenario", "Server", "--model-dir", str(without_capacity)])
    assert plain.exit_code == 0 and "throughput_per_accelerator" in plain.output
    one_error_line(
        runner.invoke(app, ["predict", *H200, "--load", "5000tok/s", "--model-dir", str(without_capacity)]),
        "no capacity function",
        "retrain",
    )
    source = tmp_path / "loads.csv"
    source.write_text("scenario,model,accelerator,count,concurrency\nServer,llama2-70b,h200-sxm-141gb,8,16\n")
    one_error_line(
        runner.invoke(
            app,
            ["predict", "--input", str(source), "--out", str(tmp_path / "o.csv"), "--model-dir", str(without_capacity)],
        ),
        "no capacity function",
    )


@pytest.mark.slow
def test_recommend_on_the_capacity_function_is_strict_json(trained):
    result = runner.invoke(
        app,
        ["recommend", "--budget", "20000", "--latency-slo", "40ms", "--format", "json", "--model-dir", str(trained)],
    )
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    assert document["request"]["sized_for_ms"] == {"tpot_ms": 40.0, "ttft_ms": 450.0}
    rows = document["recommendations"]
    assert len(rows) >= 3 and all(row["evidence"] in ("measured", "interpolated", "transferred") for row in rows)
    table = runner.invoke(app, ["recommend", "--budget", "20000", "--latency-slo", "40ms", "--model-dir", str(trained)])
    assert table.exit_code == 0 and "sized for TPOT p99 <= 40 ms, TTFT p99 <= 450 ms" in table.output


@pytest.mark.slow
def test_remembered_sizing_equals_live_and_needs_no_xgboost(trained, built):
    """`train` remembers the default model's sizing at MLPerf's Server bounds: the same request answered from that
    table and live (capacity model and bundle in memory) ranks the same, and the remembered path never imports
    XGBoost (what keeps a cold `recommend` within 2 s)."""
    import subprocess
    import sys

    import numpy as np

    from flexpredict.predictors.bundle import ModelBundle
    from flexpredict.recommend import TARGETS_USED, Request, recommend

    records = built[0]
    request = Request(budget=20000, latency_slo_ms=200, top=30)
    remembered = recommend(request, model_dir=trained, records=records)
    live = recommend(
        request,
        bundle=ModelBundle.load(trained, targets=TARGETS_USED),
        records=records,
        capacity_model=capacity.load_beside(trained),
    )
    assert remembered.capacity_bounds == live.capacity_bounds == {"tpot_ms": 200.0, "ttft_ms": 2000.0}
    assert list(remembered.ranked.index) == list(live.ranked.index) and len(live.ranked) >= 3
    columns = ["throughput", "throughput_at_confidence", "pred_tpot_p99_ms", "pred_ttft_p99_ms", "p_slo"]
    np.testing.assert_allclose(remembered.ranked[columns].to_numpy(float), live.ranked[columns].to_numpy(float))
    code = (
        "import sys; from flexpredict.recommend import Request, recommend; "
        f"r = recommend(Request(budget=20000, latency_slo_ms=200), model_dir={str(trained)!r}); "
        "assert r.capacity_bounds and len(r.ranked); print('xgboost' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_latency_at_load_is_for_llms_that_fit(trained, tmp_path):
    not_llm = runner.invoke(
        app,
        [
            "predict",
            "--accelerator",
            "h100-sxm-80gb",
            "--model",
            "resnet50",
            "--load",
            "100req/s",
            "--model-dir",
            str(trained),
        ],
    )
    one_error_line(not_llm, "--load: latency at a load is for LLMs", "resnet50")
    too_big = runner.invoke(
        app,
        [
            "predict",
            "--accelerator",
            "h100-sxm-80gb",
            "--model",
            "llama3.1-405b",
            "--load",
            "100tok/s",
            "--model-dir",
            str(trained),
        ],
    )
    assert too_big.exit_code == 1 and "does not fit in 1x nvidia-h100-sxm-80gb" in too_big.stderr
    source = tmp_path / "mixed.csv"
    source.write_text(
        "scenario,model,accelerator,count,concurrency\nServer,resnet50,h100-sxm-80gb,1,4\n"
        "Server,llama2-70b,h100-sxm-80gb,8,16\n"
    )
    out = tmp_path / "mixed-out.csv"
    assert (
        runner.invoke(
            app, ["predict", "--input", str(source), "--out", str(out), "--model-dir", str(trained)]
        ).exit_code
        == 0
    )
    frame = pd.read_csv(out)
    assert frame["over_capacity"].isna().tolist() == [True, False]
    assert pd.isna(frame.loc[0, "pred_tpot_p50_ms"]) and frame.loc[1, "pred_tpot_p50_ms"] > 0
