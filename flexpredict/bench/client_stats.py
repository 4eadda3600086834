"""Per-request client statistics with one set of definitions, to compare two benchmark clients like with like.

LoadGen and vLLM's `vllm bench serve` both report tokens/s, TTFT and TPOT, but not quite the same quantities
(LoadGen first, then vLLM):

- a request starts at its *scheduled* issue time (LoadGen's issue delay and the SUT's dispatch count) / when sent;
- it ends at `QuerySamplesComplete` (here: after the usage event and `[DONE]`) / at the last event with a token;
- TPOT: per sample (latency - TTFT) / (tokens - 1) / the same per request, with its own start and end;
- tokens/s: Server, over the first scheduled issue -> completion of the *last issued* query; Offline, over the
  longest sample latency / over the benchmark start (before its first, randomly delayed, arrival) -> all done;
- percentiles: nearest rank, `sorted[int(n * p)]` / numpy's linear interpolation;
- Poisson arrivals: exponential gaps from a fixed seed, not rescaled (the realised rate is off the target by about
  1 / sqrt(n)) / gaps rescaled so the last arrival is at exactly n / rate.

`request_metrics` computes every statistic from per-request timings with vLLM's definitions (send -> last token,
linear percentiles, tokens over first send -> last token), so the same formula can be applied to both clients' requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def percentile(values: Iterable[float], q: float, method: str = "linear") -> float | None:
    """The q-th percentile (0-100). `linear`: numpy's default (vLLM's `np.percentile`); `loadgen`: LoadGen's nearest
    rank, the sorted value at index int(n * q / 100) (never interpolated, so at or above `linear`)."""
    data = sorted(values)
    if not data:
        return None
    if method == "loadgen":
        return data[min(len(data) - 1, int(len(data) * q / 100))]
    if method != "linear":
        raise ValueError(f"unknown percentile method '{method}' (linear or loadgen)")
    return float(np.percentile(data, q))


def request_metrics(requests: Sequence[dict], method: str = "linear") -> dict:
    """Statistics of successful requests, each a dict with `start_s` (sent, seconds on one clock), `ttft_s` (first
    token after sending), `latency_s` (last token after sending) and `output_tokens`:

    - tokens_per_s: all output tokens over first send -> last token of any request;
    - offered_qps: (n - 1) over first send -> last send, the arrival rate the client realised (send_span_ms: that
      span; for an all-at-once load, how long the client took to send everything);
    - ttft / tpot p50 and p99 in ms, TPOT per request as (latency - TTFT) / (tokens - 1), as `vllm bench serve`.
    """
    if not requests:
        return {}
    first = min(r["start_s"] for r in requests)
    last_sent = max(r["start_s"] for r in requests)
    last_token = max(r["start_s"] + r["latency_s"] for r in requests)
    tokens = sum(r["output_tokens"] for r in requests)
    ttft = [r["ttft_s"] * 1e3 for r in requests]
    tpot = [(r["latency_s"] - r["ttft_s"]) * 1e3 / (r["output_tokens"] - 1) for r in requests if r["output_tokens"] > 1]
    return {
        "requests": len(requests),
        "output_tokens": tokens,
        "tokens_per_s": tokens / (last_token - first) if last_token > first else None,
        "offered_qps": (len(requests) - 1) / (last_sent - first) if last_sent > first else None,
        "send_span_ms": (last_sent - first) * 1e3,
        "ttft_p50_ms": percentile(ttft, 50, method),
        "ttft_p99_ms": percentile(ttft, 99, method),
        "tpot_p50_ms": percentile(tpot, 50, method),
        "tpot_p99_ms": percentile(tpot, 99, method),
    }


def from_completions(completions: Iterable) -> list[dict]:
    """`request_metrics` input from flexpredict's `Completion`s (successful, streamed ones)."""
    return [
        {
            "start_s": c.start_s,
            "ttft_s": c.first_token_s - c.start_s,
            "latency_s": (c.last_token_s or c.end_s) - c.start_s,
            "output_tokens": c.output_tokens,
        }
        for c in completions
        if c.error is None and c.first_token_s is not None
    ]


def from_vllm_result(result: dict) -> list[dict]:
    """`request_metrics` input from `vllm bench serve --save-result --save-detailed` JSON (its `start_times`,
    `ttfts`, `latencies` (to the last token) and `output_lens`; failed requests have an error text)."""
    errors = result.get("errors") or [""] * len(result["start_times"])
    return [
        {"start_s": s, "ttft_s": t, "latency_s": lat, "output_tokens": n}
        for s, t, lat, n, err in zip(
            result["start_times"], result["ttfts"], result["latencies"], result["output_lens"], errors
        )
        if not err
    ]
