"""The backend interface: what the LoadGen SUT needs from an inference engine, and the registry of backends.

One small base class, one module per backend (like optuna.samplers): the SUT, the runner and the record builder know
nothing about HTTP, subprocesses or engines, so a new engine is one new module.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from flexpredict.registry import Registry


class BenchError(RuntimeError):
    """A benchmark failure with a one-line (or log-tail) message meant for the user, not a traceback."""


@dataclass
class Completion:
    """One generated answer, with the client-side timings (time.perf_counter seconds)."""

    text: str = ""
    output_tokens: int = 0
    prompt_tokens: int | None = None
    start_s: float = 0.0
    first_token_s: float | None = None
    last_token_s: float | None = None
    """When the last event carrying a token arrived (vLLM's `bench serve` ends its latency here); `end_s` is when
    the response ended (after the usage event and `[DONE]`), where the SUT completes the query for LoadGen."""
    end_s: float = 0.0
    error: str | None = None
    chunks: int | None = None
    """Streamed events that carried text: fewer than `output_tokens` when the server merged tokens into one event
    (vLLM does when its front end falls behind the engine), so the client's token timings are coarser."""


@dataclass
class EngineInfo:
    """What the engine tells about itself, in record terms (null when unknown)."""

    engine: str | None = None
    engine_version: str | None = None
    framework_raw: str | None = None
    precision: str | None = None
    tensor_parallel: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    model: str | None = None
    args: dict = field(default_factory=dict)
    """Engine arguments as passed (for benchmark_results.json)."""
    local_host: bool = True
    """The engine runs on this host, so the captured hardware and power describe it."""


FirstToken = Callable[[str], None]


class Backend(ABC):
    """An inference engine the SUT sends prompts to."""

    name: ClassVar[str]
    tunable: ClassVar[tuple[str, ...]] = ()
    """Constructor settings a campaign may search over (engine knobs); the rest stay fixed for a campaign."""

    def start(self, log_dir: Path | None = None) -> None:
        """Bring the engine up (or check it is reachable); raise BenchError with a clear message if not."""

    def stop(self) -> None:
        """Release the engine (stop the server flexpredict started)."""

    @abstractmethod
    async def generate(
        self, prompt: str | tuple[int, ...], max_tokens: int, on_first_token: FirstToken | None = None
    ) -> Completion:
        """Generate one answer (to a text prompt, or token ids), calling `on_first_token(text)` as soon as the first
        token arrives. Runs on the SUT's event loop, hundreds at once: one loop, not a thread per request, keeps the
        client's CPU share small (the engine may share the host's cores)."""

    async def aclose(self) -> None:
        """Release what `generate` opened on the SUT's event loop (HTTP sessions) before the loop ends."""

    @abstractmethod
    def info(self) -> EngineInfo:
        """Engine name, version and knobs, for the record."""

    def failure(self) -> str | None:
        """Why the engine is gone (with its log tail), or None while it is alive or not ours to watch."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


SCENARIOS = ("Offline", "Server", "SingleStream", "ClosedLoop")
"""LoadGen's scenarios, plus ClosedLoop: LoadGen's Offline query served with at most `--concurrency` requests in
flight, each timed by the client (a point of a concurrency sweep)."""
MODES = ("performance", "accuracy", "both")
REGISTRY: Registry[type[Backend]] = Registry("bench_backends", "flexpredict.bench", "backend")
"""Backends by `name` (`--backend NAME`); their modules are imported on first use, so `flexpredict` starts without
the benchmark's optional dependencies."""
register = REGISTRY.register


def create_backend(name: str, settings: dict) -> Backend:
    """The backend `name`, built from the settings its constructor declares (the others are for other backends;
    None leaves the constructor's default). A required one left None is a BenchError naming its option."""
    if name not in REGISTRY:
        raise BenchError(REGISTRY.unknown(name))
    cls = REGISTRY[name]
    declared = inspect.signature(cls).parameters
    for parameter in declared.values():
        if parameter.default is parameter.empty and settings.get(parameter.name) is None:
            raise BenchError(f"the {name} backend needs --{parameter.name.replace('_', '-')}")
    return cls(**{key: value for key, value in settings.items() if key in declared and value is not None})


_EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception): \S")
_LOG_PREFIX = re.compile(r"^\(.*?\) ERROR \S+ \S+ \[.*?\] ")


def engine_reason(path: Path | None) -> str:
    """The engine's own reason for failing, in one line: the first exception message in its log (the root cause: vLLM
    ends with "Engine core initialization failed. See root cause above"), else its last non-empty line."""
    if path is None:
        return "(no engine log)"
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "(no engine log)"
    causes = [_LOG_PREFIX.sub("", line) for line in lines if _EXCEPTION.search(line) and " WARNING " not in line]
    last = next((line for line in reversed(lines) if line), "(empty engine log)")
    return (causes[0] if causes else last)[:400]
