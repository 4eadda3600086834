"""Run the benchmark: LoadGen against a backend, then the LoadGen logs into one record of the dataset schema.

The record's metrics are read back from LoadGen's own logs with the same parser that reads MLPerf submissions, so an
own run and an MLPerf result mean the same thing column for column. A run folder holds the LoadGen logs, the engine
log and `benchmark_results.json` (key "record": the schema row; the rest: settings, engine, system, timings, power).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import mlperf_loadgen as lg
import pandas as pd
from rich.progress import Progress

from flexpredict.bench.base import MODES, SCENARIOS, Backend, BenchError, EngineInfo
from flexpredict.bench.client_stats import percentile
from flexpredict.bench.prompts import PromptSet
from flexpredict.bench.slo import Slo
from flexpredict.bench.sut import LlmSUT, QueryTiming
from flexpredict.bench.system import PowerSampler, SystemInfo
from flexpredict.bench.validity import bounds_note, explain
from flexpredict.ingest.loadgen_log import LoadGenResult, parse_detail, parse_summary, result_from_detail
from flexpredict.ingest.records import derive_metrics
from flexpredict.io import atomic_write, plain
from flexpredict.schema import conform

CLOSED_LOOP = "ClosedLoop"
"""LoadGen's Offline query (every sample issued at once) served with at most `concurrency` requests in flight: a
closed loop, each request's TTFT/TPOT timed by the client (LoadGen's Offline summary has no token latencies)."""
LOADGEN_SCENARIOS = {name: getattr(lg.TestScenario, "Offline" if name == CLOSED_LOOP else name) for name in SCENARIOS}
CLOSED_LOOP_WAVES = 8  # a closed-loop point serves at least this many queries per slot: steady state, stable p99
RESULTS_FILE = "benchmark_results.json"
PERCENTILES = (50, 90, 99)
OFFLINE_HEADROOM = 1.5  # next Offline expected QPS over the measured: a long query beats one ending too early
OFFLINE_ATTEMPTS = 4
SWEEP_HEADROOM = 1.2  # sweep Server QPS up to 1.2x the Offline peak, past saturation, as FlexBench does


@dataclass
class RunConfig:
    scenario: str = "Offline"
    target_qps: float | None = None
    """Server: LoadGen target QPS (required). Offline: expected QPS; None: found by short LoadGen runs that also
    warm the engine up, until one lasts the minimum duration."""
    samples: int | None = None
    """Prompts in the query sample library (the prompt set cycled or cut to this size) and LoadGen's minimum query
    count; None: the whole prompt set."""
    min_duration_s: float = 10.0
    max_tokens: int = 128
    mode: str = "performance"
    slo: Slo = field(default_factory=Slo)
    concurrency: int = 256
    """Most requests in flight at once from the harness."""

    def check(self) -> None:
        if self.scenario not in SCENARIOS:
            raise BenchError(f"unknown scenario '{self.scenario}' (use {', '.join(SCENARIOS)})")
        if self.mode not in MODES:
            raise BenchError(f"unknown mode '{self.mode}' (use {', '.join(MODES)})")
        if self.scenario == "Server" and self.target_qps is None:
            raise BenchError("the Server scenario needs --target-qps (or --sweep N to find the QPS range)")
        if self.target_qps is not None and self.target_qps <= 0:
            raise BenchError("--target-qps must be positive")
        if self.samples is not None and self.samples < 1:
            raise BenchError("--samples must be at least 1")
        if self.concurrency < 1:
            raise BenchError("--concurrency must be at least 1")
        if self.scenario == CLOSED_LOOP and self.target_qps is not None:
            raise BenchError("--target-qps does not apply to ClosedLoop: its load is --concurrency")

    @property
    def closed_loop(self) -> bool:
        return self.scenario == CLOSED_LOOP


def run_benchmark(
    backend: Backend,
    prompt_set: PromptSet,
    cfg: RunConfig,
    out_dir: Path,
    system: SystemInfo,
    engine: EngineInfo,
    progress: Progress | None = None,
) -> dict:
    """One benchmark into `out_dir`: performance and/or accuracy; returns what benchmark_results.json holds."""
    cfg.check()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    prompts, references = _sized(prompt_set, cfg.samples)
    results: dict = {
        "started": started.isoformat(),
        "prompt_set": prompt_set.name,
        "samples": len(prompts),
        "engine": asdict(engine),
        "system": asdict(system),
    }
    auto_qps = cfg.scenario == "Offline" and cfg.target_qps is None
    if auto_qps:
        cfg = replace(cfg, target_qps=1.0)
    results["settings"] = {**asdict(cfg), "slo": asdict(cfg.slo)}
    try:
        if cfg.mode in ("performance", "both"):
            for attempt in range(1, OFFLINE_ATTEMPTS + 1):
                with PowerSampler() as power:
                    t0 = time.perf_counter()
                    timings = _run_loadgen(backend, prompts, cfg, out_dir, lg.TestMode.PerformanceOnly, progress)
                    wall_s = time.perf_counter() - t0
                _check_engine(backend, out_dir)
                stats = timing_stats(timings)
                _check_answers(stats, out_dir)
                result, detail = read_loadgen_logs(out_dir)
                if not (auto_qps and detail.get("result_min_duration_met") is False and attempt < OFFLINE_ATTEMPTS):
                    break
                # LoadGen sizes the Offline query from the expected QPS; this one ended before min-duration: size
                # the next from what the engine just did (the first attempt also warms the engine up)
                cfg = replace(cfg, target_qps=round(OFFLINE_HEADROOM * result.values["samples_per_s"], 4))
            results["settings"]["target_qps"] = cfg.target_qps
            results["performance"] = {
                "attempts": attempt,
                "logs": {"summary": "mlperf_log_summary.txt", "detail": "mlperf_log_detail.txt"},
                "loadgen": {
                    "result_valid": result.result_valid,
                    "errors": result.errors,
                    **result.values,
                    **result.settings,
                    "mean_latency_ms": _ms(detail.get("result_mean_latency_ns")),
                },
                "client": stats,
                "power": power.summary(),
                "wall_s": round(wall_s, 3),
                "harness_overhead_ms": _overhead_ms(detail, stats),
            }
            results["record"] = build_record(result, stats, cfg, system, engine, power.summary(), out_dir, started)
            results["validity"] = {
                "valid": results["record"]["valid"],
                "reasons": explain(result, detail, stats["errors"]),
                "bounds": result.bounds() if cfg.scenario == "Server" else {},
                "bounds_source": bounds_note(cfg.slo, cfg.scenario),
            }
        if cfg.mode in ("accuracy", "both"):
            acc_dir = out_dir / "accuracy"
            acc_dir.mkdir(exist_ok=True)
            acc_timings = _run_loadgen(backend, prompts, cfg, acc_dir, lg.TestMode.AccuracyOnly, progress)
            _check_engine(backend, out_dir)
            results["accuracy"] = {
                "logs": "accuracy/mlperf_log_accuracy.json",
                "errors": sum(t.error is not None for t in acc_timings),
                **accuracy_scores(acc_dir / "mlperf_log_accuracy.json", references),
            }
            if "record" in results and results["accuracy"].get("rouge1") is not None:
                acc = results["accuracy"]
                results["record"]["accuracy_raw"] = (
                    f"ROUGE1: {acc['rouge1']:.4f} ROUGE2: {acc['rouge2']:.4f} ROUGEL: {acc['rougeL']:.4f}"
                )
    finally:
        results["finished"] = datetime.now(timezone.utc).isoformat()
        write_results(out_dir, results)
    return results


def run_sweep(
    backend: Backend,
    prompt_set: PromptSet,
    cfg: RunConfig,
    out_dir: Path,
    points: int,
    system: SystemInfo,
    engine: EngineInfo,
    progress: Progress | None = None,
) -> list[dict]:
    """FlexBench-style sweep: an Offline run finds the peak, then `points` Server runs at evenly spaced QPS up to
    1.2x that peak (the last ones past saturation, where latency bounds break)."""
    if points < 1:
        raise BenchError("--sweep needs at least 1 point")
    offline = run_benchmark(
        backend,
        prompt_set,
        replace(cfg, scenario="Offline", target_qps=None),
        out_dir / "offline",
        system,
        engine,
        progress,
    )
    peak = offline.get("record", {}).get("samples_per_s")
    if not peak:
        raise BenchError(f"the Offline run found no throughput to sweep from (see {out_dir / 'offline'})")
    runs = [offline]
    sweep_task = progress.add_task("sweep points", total=points + 1, completed=1) if progress else None
    for i in range(1, points + 1):
        qps = round(SWEEP_HEADROOM * peak * i / points, 4)
        runs.append(
            run_benchmark(
                backend,
                prompt_set,
                replace(cfg, scenario="Server", target_qps=qps, mode="performance"),
                out_dir / f"server-{i:02d}-qps{qps:g}",
                system,
                engine,
                progress,
            )
        )
        if progress and sweep_task is not None:
            progress.advance(sweep_task)
    return runs


def run_concurrency_sweep(
    backend: Backend,
    prompt_set: PromptSet,
    cfg: RunConfig,
    out_dir: Path,
    levels: Sequence[int],
    system: SystemInfo,
    engine: EngineInfo,
    progress: Progress | None = None,
) -> list[dict]:
    """A concurrency sweep: one ClosedLoop run per level (at most that many requests in flight, lowest first), each
    a point of the latency-load curve with its concurrency, tokens/s and the client's TTFT/TPOT percentiles."""
    levels = sorted(set(levels))
    if not levels or levels[0] < 1:
        raise BenchError("--concurrency-sweep needs positive request counts")
    runs = []
    sweep_task = progress.add_task("concurrency points", total=len(levels)) if progress else None
    for i, level in enumerate(levels, start=1):
        runs.append(
            run_benchmark(
                backend,
                prompt_set,
                replace(cfg, scenario=CLOSED_LOOP, target_qps=None, concurrency=level, mode="performance"),
                out_dir / f"closed-{i:02d}-c{level}",
                system,
                engine,
                progress,
            )
        )
        if progress and sweep_task is not None:
            progress.advance(sweep_task)
    return runs


def _run_loadgen(
    backend: Backend,
    prompts: Sequence[str | tuple[int, ...]],
    cfg: RunConfig,
    out_dir: Path,
    mode,
    progress: Progress | None,
) -> list[QueryTiming]:
    settings = loadgen_settings(cfg, mode, len(prompts))
    log_out = lg.LogOutputSettings()
    log_out.outdir = str(out_dir)
    log_out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_out
    log_settings.enable_trace = False
    load = ""
    if cfg.scenario == "Server":
        load = f" at {cfg.target_qps:g} QPS"
    elif cfg.closed_loop:
        load = f" with {cfg.concurrency} in flight"
    label = f"{cfg.scenario}{load} {'accuracy' if mode == lg.TestMode.AccuracyOnly else 'performance'} queries"
    task = progress.add_task(label, total=expected_queries(cfg, mode, len(prompts))) if progress else None
    advance = (lambda: progress.advance(task)) if progress and task is not None else None
    with LlmSUT(
        backend,
        prompts,
        cfg.max_tokens,
        report_first_token=cfg.scenario not in ("Offline", CLOSED_LOOP),
        concurrency=cfg.concurrency,
        on_done=advance,
    ) as sut:
        lg.StartTestWithLogSettings(sut.sut, sut.qsl, settings, log_settings)
    if progress and task is not None:
        progress.update(task, total=len(sut.timings), completed=len(sut.timings))
    return sut.timings


def loadgen_settings(cfg: RunConfig, mode, n_prompts: int) -> lg.TestSettings:
    settings = lg.TestSettings()
    settings.scenario = LOADGEN_SCENARIOS[cfg.scenario]
    settings.mode = mode
    settings.use_token_latencies = True
    settings.min_duration_ms = int(cfg.min_duration_s * 1000)
    settings.min_query_count = n_prompts
    if cfg.closed_loop:
        # a fixed number of queries, not a duration: one Offline query of exactly that many samples
        settings.min_duration_ms = 0
        settings.min_query_count = closed_loop_queries(cfg, n_prompts)
        settings.offline_expected_qps = 1.0
    elif cfg.scenario == "Offline":
        settings.offline_expected_qps = cfg.target_qps
    elif cfg.scenario == "Server":
        settings.server_target_qps = cfg.target_qps
    if cfg.slo.ttft_ms is not None:
        settings.ttft_latency = int(cfg.slo.ttft_ms * 1e6)
    if cfg.slo.tpot_ms is not None:
        settings.tpot_latency = int(cfg.slo.tpot_ms * 1e6)
    if cfg.slo.latency_ms is not None:
        settings.server_target_latency_ns = int(cfg.slo.latency_ms * 1e6)
        settings.use_token_latencies = cfg.slo.ttft_ms is not None or cfg.slo.tpot_ms is not None
    return settings


def expected_queries(cfg: RunConfig, mode, n_prompts: int) -> int:
    """Roughly how many queries LoadGen will issue (for the progress bar)."""
    if mode == lg.TestMode.AccuracyOnly:
        return n_prompts
    if cfg.closed_loop:
        return closed_loop_queries(cfg, n_prompts)
    if cfg.target_qps is None:
        return n_prompts
    if cfg.scenario == "Offline":
        return max(n_prompts, math.ceil(cfg.target_qps * cfg.min_duration_s * 1.1))
    if cfg.scenario == "Server":
        return max(n_prompts, math.ceil(cfg.target_qps * cfg.min_duration_s))
    return n_prompts


def closed_loop_queries(cfg: RunConfig, n_prompts: int) -> int:
    """Queries of a closed-loop point: the sample library (--samples), and at least CLOSED_LOOP_WAVES per slot."""
    return max(n_prompts, CLOSED_LOOP_WAVES * cfg.concurrency)


def read_loadgen_logs(run_dir: Path) -> tuple[LoadGenResult, dict]:
    """The LoadGen result of a run folder: the summary when present, errors counted from both logs."""
    detail_path, summary_path = run_dir / "mlperf_log_detail.txt", run_dir / "mlperf_log_summary.txt"
    detail = parse_detail(detail_path.read_text(encoding="utf-8")) if detail_path.exists() else {}
    if summary_path.exists() and summary_path.stat().st_size:
        result = parse_summary(summary_path.read_text(encoding="utf-8"))
    elif detail:
        result = result_from_detail(detail)
    else:
        raise BenchError(f"LoadGen wrote no logs in {run_dir}")
    result.errors = max(result.errors, int(detail.get("error_count") or 0), int(detail.get("num_errors") or 0))
    return result, detail


def timing_stats(timings: list[QueryTiming]) -> dict:
    """Client-side view of the run: token counts, request times and where the harness spends time, and the TTFT,
    TPOT and request-time percentiles (LoadGen's nearest rank) of the requests as the client timed them, from the
    request leaving the harness (a query waiting for a slot is not timed)."""
    ok = [t for t in timings if t.error is None]
    errors = [t.error for t in timings if t.error is not None]
    prompt_tokens = [t.prompt_tokens for t in ok if t.prompt_tokens is not None]
    ttft = [(t.first_token_s - t.start_s) * 1e3 for t in ok if t.first_token_s is not None]
    request = [(t.end_s - t.start_s) * 1e3 for t in ok]
    # as `vllm bench serve`: first token -> last token (LoadGen's TPOT ends at the query's completion instead)
    tpot = [
        ((t.last_token_s or t.end_s) - t.first_token_s) * 1e3 / (t.output_tokens - 1)
        for t in ok
        if t.first_token_s is not None and t.output_tokens > 1
    ]
    return {
        "queries": len(timings),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "input_tokens_mean": _mean(prompt_tokens),
        "output_tokens_mean": _mean([t.output_tokens for t in ok]),
        "output_tokens_total": sum(t.output_tokens for t in ok),
        # above 1: the server merged tokens into its stream's events (its front end fell behind the engine)
        "tokens_per_chunk_mean": _mean([t.output_tokens / t.chunks for t in ok if t.chunks]),
        "request_ms_mean": _mean(request),
        "dispatch_ms_mean": _mean([(t.start_s - t.issued_s) * 1e3 for t in ok]),
        "complete_ms_mean": _mean([(t.completed_s - t.end_s) * 1e3 for t in ok]),
        "tail_ms_mean": _mean([(t.end_s - t.last_token_s) * 1e3 for t in ok if t.last_token_s is not None]),
        **{
            f"{name}_ms_p{q}": _percentile(values, q)
            for name, values in (("ttft", ttft), ("tpot", tpot), ("request", request))
            for q in PERCENTILES
        },
        "start_span_ms": round((max(t.start_s for t in ok) - min(t.start_s for t in ok)) * 1e3, 3) if ok else None,
    }


def _overhead_ms(detail: dict, stats: dict) -> float | None:
    """LoadGen's mean query latency minus the client's mean request time: what the harness adds per request."""
    mean = _ms(detail.get("result_mean_latency_ns"))
    if mean is None or stats["request_ms_mean"] is None:
        return None
    return round(mean - stats["request_ms_mean"], 4)


def build_record(
    result: LoadGenResult,
    stats: dict,
    cfg: RunConfig,
    system: SystemInfo,
    engine: EngineInfo,
    power: dict,
    run_dir: Path,
    started: datetime,
) -> dict:
    """One schema row (validated by schema.conform) from the LoadGen result and what the run knows about itself."""
    values = result.values
    run_dir = Path(run_dir)
    record_id = hashlib.sha1(f"{run_dir.resolve()}|{started.isoformat()}".encode()).hexdigest()[:16]
    if system.cpu_only:
        accelerator, per_node = system.host_cpu, system.host_sockets
    else:
        accelerator, per_node = system.gpus[0]["name"], min(len(system.gpus), engine.tensor_parallel or 1)
    tokens_per_s = values.get("tokens_per_s")  # LoadGen reports none for SingleStream: ingest derives it
    model_id = engine.model or ""
    model_name = Path(model_id).name if model_id else None
    scenario = CLOSED_LOOP if cfg.closed_loop else (result.scenario or cfg.scenario)
    record = {
        "record_id": record_id,
        "run_group": record_id,
        "round": "bench",
        "division": "bench",
        "submitter": "flexpredict",
        "system_id": system.hostname,
        "system_name": system.hostname,
        "benchmark": model_name,
        "model": model_name if Path(model_id).exists() else model_id,
        # a local folder's config.json sizes a model the catalog does not know (features/physics.py)
        "model_config": str(config.resolve()) if (config := Path(model_id) / "config.json").is_file() else None,
        "scenario": scenario,
        "valid": result.valid and stats["errors"] == 0,
        "source": f"{run_dir.name}/{RESULTS_FILE}",
        "source_kind": "flexpredict-bench",
        "accelerator_raw": accelerator,
        "accelerators_per_node": per_node,
        "nodes": 1,
        "accelerators_total": per_node,
        "accelerator_memory_gb": None if system.cpu_only else system.gpus[0]["memory_gb"],
        "cpu_only": system.cpu_only,
        "host_cpu": system.host_cpu,
        "host_cpus_per_node": system.host_sockets,
        "host_cpu_cores": system.host_cores_per_socket,
        "host_memory_gb": system.host_memory_gb,
        "framework_raw": engine.framework_raw,
        "engine": engine.engine,
        "engine_version": engine.engine_version,
        "precision": engine.precision,
        "operating_system": system.operating_system,
        "target_qps": None if cfg.closed_loop else result.settings.get("target_qps", cfg.target_qps),
        "concurrency": cfg.concurrency if cfg.closed_loop else None,
        "tensor_parallel": engine.tensor_parallel,
        "max_num_seqs": engine.max_num_seqs,
        "max_num_batched_tokens": engine.max_num_batched_tokens,
        "input_tokens_mean": stats["input_tokens_mean"],
        "output_tokens_mean": stats["output_tokens_mean"],
        "throughput": tokens_per_s,
        "throughput_unit": "Tokens/s",
        "tokens_per_s": tokens_per_s,
        "samples_per_s": values.get("samples_per_s"),
        **_latencies(values, stats, cfg.closed_loop),
        # the bounds a Server point was held to: with its load and latencies, a point of the latency-load curve
        **(result.bounds() if scenario == "Server" else {}),
        "power_w": power.get("power_w"),
        "tokens_per_sample": stats["output_tokens_mean"],
    }
    if not engine.local_host:
        # a remote endpoint: this host's hardware says nothing about the machine that served the model
        for column in (
            "accelerator_raw",
            "accelerators_per_node",
            "accelerators_total",
            "accelerator_memory_gb",
            "cpu_only",
            "host_cpu",
            "host_cpus_per_node",
            "host_cpu_cores",
            "host_memory_gb",
            "operating_system",
            "power_w",
        ):
            record[column] = None
    row = conform(derive_metrics(pd.DataFrame([record]))).iloc[0]
    return {name: plain(value) for name, value in row.items()}


def _latencies(values: dict, stats: dict, closed_loop: bool) -> dict:
    """Latency, TTFT and TPOT p50/p90/p99 of the record: LoadGen's, or for a closed loop the client's (LoadGen's
    Offline has no token latencies, and its sample latencies count the wait for a slot from the one Offline query)."""
    client = {"latency": "request", "ttft": "ttft", "tpot": "tpot"}
    return {
        f"{metric}_p{q}_ms": stats[f"{client[metric]}_ms_p{q}"] if closed_loop else values.get(f"{metric}_p{q}_ms")
        for metric in client
        for q in PERCENTILES
    }


def accuracy_scores(accuracy_log: Path, references: Sequence[str] | None) -> dict:
    """Mean ROUGE F-measures x100 (as MLPerf's OpenOrca task reports them) of the generations LoadGen logged."""
    entries = json.loads(accuracy_log.read_text(encoding="utf-8") or "[]")
    texts = {e["qsl_idx"]: bytes.fromhex(e["data"]).decode("utf-8", errors="replace") for e in entries}
    out: dict = {"generations": len(texts)}
    if not references:
        out["note"] = "the prompt set has no references: no ROUGE"
        return out
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(references[i], text) for i, text in texts.items()]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        out[key] = round(100 * statistics.fmean(s[key].fmeasure for s in scores), 4) if scores else None
    out["gen_len_mean"] = _mean([len(t) for t in texts.values()])
    return out


def write_results(out_dir: Path, results: dict) -> Path:
    text = json.dumps(results, indent=2, default=str)
    return atomic_write(Path(out_dir) / RESULTS_FILE, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _check_engine(backend: Backend, out_dir: Path) -> None:
    failure = backend.failure()
    if failure:
        raise BenchError(f"{failure}\n(partial LoadGen logs kept in {out_dir})")


def _check_answers(stats: dict, out_dir: Path) -> None:
    if stats["queries"] and stats["errors"] == stats["queries"]:
        raise BenchError(f"every request failed ({stats['first_error']}); partial LoadGen logs kept in {out_dir}")


def _sized(prompt_set: PromptSet, samples: int | None) -> tuple[list[str | tuple[int, ...]], list[str] | None]:
    n = samples or len(prompt_set)
    prompts = [prompt_set.prompts[i % len(prompt_set)] for i in range(n)]
    refs = [prompt_set.references[i % len(prompt_set)] for i in range(n)] if prompt_set.references else None
    return prompts, refs


def _ms(ns) -> float | None:
    return float(ns) / 1e6 if isinstance(ns, (int, float)) else None


def _mean(values: list) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _percentile(values: list, q: int) -> float | None:
    value = percentile(values, q, "loadgen")
    return None if value is None else round(value, 4)
