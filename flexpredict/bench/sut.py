"""The LoadGen system under test: LoadGen issues queries, an asyncio event loop streams them from the backend.

Every query is streamed, so LoadGen gets `FirstTokenComplete` at the first token (TTFT) and the output token count in
`QuerySamplesComplete` (TPOT, tokens/s), in every scenario but Offline, where only throughput counts. The answer text
goes back as the response data, so LoadGen's accuracy log holds the generations exactly as MLPerf's does.
"""

from __future__ import annotations

import array
import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mlperf_loadgen as lg

from flexpredict.bench.base import Backend, Completion


@dataclass
class QueryTiming:
    """One query's path through the harness (time.perf_counter seconds), for overhead and token statistics."""

    index: int
    issued_s: float
    start_s: float
    first_token_s: float | None
    last_token_s: float | None
    end_s: float
    completed_s: float
    prompt_tokens: int | None
    output_tokens: int
    error: str | None
    chunks: int | None = None


class LlmSUT:
    """A LoadGen SUT and QSL over one backend; use as a context manager (the loop and LoadGen handles end on exit)."""

    def __init__(
        self,
        backend: Backend,
        prompts: Sequence[str | tuple[int, ...]],
        max_tokens: int,
        report_first_token: bool,
        concurrency: int = 256,
        on_done: Callable[[], None] | None = None,
    ):
        self.backend = backend
        self.prompts = prompts
        self.max_tokens = max_tokens
        self.report_first_token = report_first_token
        self.on_done = on_done
        self.timings: list[QueryTiming] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sut-loop", daemon=True)
        self._thread.start()
        self._slots = asyncio.Semaphore(concurrency)  # requests in flight at most
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to its tasks
        self.sut = lg.ConstructSUT(self._issue, self._flush)
        self.qsl = lg.ConstructQSL(len(prompts), len(prompts), _noop, _noop)

    def __enter__(self) -> LlmSUT:
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.backend.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        lg.DestroyQSL(self.qsl)
        lg.DestroySUT(self.sut)

    def _issue(self, samples: list) -> None:
        # one hand-over to the loop thread per LoadGen call, not one per sample: an Offline query of hundreds of
        # samples otherwise takes tens of ms to reach the engine, the two threads contending for the GIL
        now = time.perf_counter()
        batch = [(sample.id, sample.index) for sample in samples]
        self._loop.call_soon_threadsafe(self._start, batch, now)

    def _start(self, batch: list[tuple[int, int]], issued_s: float) -> None:
        for query_id, index in batch:
            task = self._loop.create_task(self._serve(query_id, index, issued_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _flush(self) -> None:
        """Nothing is held back: every query goes to the engine as soon as LoadGen issues it."""

    async def _serve(self, query_id: int, index: int, issued_s: float) -> None:
        on_first = None
        if self.report_first_token:

            def on_first(text: str) -> None:
                buf = array.array("B", text.encode("utf-8"))
                address, length = buf.buffer_info()
                lg.FirstTokenComplete([lg.QuerySampleResponse(query_id, address, length)])

        async with self._slots:
            try:
                done = await self.backend.generate(self.prompts[index], self.max_tokens, on_first)
            except Exception as exc:  # noqa: BLE001 - an unanswered query would hang LoadGen forever
                done = Completion(start_s=issued_s, end_s=time.perf_counter(), error=f"{type(exc).__name__}: {exc}")
        buf = array.array("B", done.text.encode("utf-8"))
        address, length = buf.buffer_info()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, address, length, done.output_tokens)])
        self.timings.append(
            QueryTiming(
                index,
                issued_s,
                done.start_s,
                done.first_token_s,
                done.last_token_s,
                done.end_s,
                time.perf_counter(),
                done.prompt_tokens,
                done.output_tokens,
                done.error,
                done.chunks,
            )
        )
        if self.on_done is not None:
            self.on_done()


def _noop(_indices: list[int]) -> None:
    """Prompts are already in memory: nothing to load or unload."""
