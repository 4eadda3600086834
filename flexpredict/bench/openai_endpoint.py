"""Backend for any running OpenAI-compatible endpoint (`/v1/completions` with streaming).

Token timings come from the server-sent events: the first event with a choice is the first token (as in vLLM's own
`bench serve`), and the final usage event gives the exact prompt and completion token counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import requests

from flexpredict.bench.base import Backend, BenchError, Completion, EngineInfo, FirstToken, register


def api_root(endpoint: str) -> str:
    """`http://host:port/v1` from either `http://host:port` or `http://host:port/v1`."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


@register
class OpenAIEndpoint(Backend):
    name = "openai"

    def __init__(
        self,
        endpoint: str,
        model: str | None = None,
        api_key_env: str | None = None,
        ignore_eos: bool = False,
        request_timeout_s: float = 600.0,
    ):
        self.base = api_root(endpoint)
        self.model = model
        self.api_key_env = api_key_env
        self.ignore_eos = ignore_eos
        self.request_timeout_s = request_timeout_s
        self._aio: aiohttp.ClientSession | None = None
        self._sync: requests.Session | None = None
        self._served: dict = {}

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BenchError(f"environment variable {self.api_key_env} (API key) is not set")
        return {"Authorization": f"Bearer {key}"}

    def _session(self) -> requests.Session:
        """For the few plain calls (model list, version); generation streams through aiohttp."""
        if self._sync is None:
            self._sync = requests.Session()
            self._sync.headers.update(self._headers())
        return self._sync

    def start(self, log_dir: Path | None = None) -> None:
        """Check the endpoint answers and serves the model (the first served model when none was named)."""
        try:
            resp = self._session().get(f"{self.base}/models", timeout=10)
        except requests.RequestException as exc:
            raise BenchError(f"endpoint {self.base} is unreachable: {_reason(exc)}") from None
        if resp.status_code in (401, 403):
            raise BenchError(f"endpoint {self.base} refused the API key (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise BenchError(f"endpoint {self.base}/models answered HTTP {resp.status_code}")
        served = {m.get("id"): m for m in resp.json().get("data", [])}
        if not served:
            raise BenchError(f"endpoint {self.base} serves no model")
        if self.model is None:
            self.model = next(iter(served))
        elif self.model not in served:
            raise BenchError(f"endpoint {self.base} does not serve '{self.model}' (it serves: {', '.join(served)})")
        self._served = served[self.model]

    async def generate(
        self, prompt: str | tuple[int, ...], max_tokens: int, on_first_token: FirstToken | None = None
    ) -> Completion:
        body = {
            "model": self.model,
            "prompt": prompt if isinstance(prompt, str) else list(prompt),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body["ignore_eos"] = True  # vLLM extension: fixed output lengths for throughput runs
        out = Completion(start_s=time.perf_counter())
        pieces: list[str] = []
        chunks = 0
        try:
            async with self._stream_session().post(f"{self.base}/completions", json=body) as resp:
                if resp.status != 200:
                    out.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    out.end_s = time.perf_counter()
                    return out
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    event = json.loads(data)
                    if event.get("usage"):
                        out.prompt_tokens = event["usage"].get("prompt_tokens")
                        out.output_tokens = event["usage"].get("completion_tokens") or 0
                    choices = event.get("choices")
                    if not choices:
                        continue
                    piece = choices[0].get("text") or ""
                    out.last_token_s = time.perf_counter()
                    if out.first_token_s is None:
                        out.first_token_s = out.last_token_s
                        if on_first_token is not None:
                            on_first_token(piece)
                    pieces.append(piece)
                    chunks += 1
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            out.error = _reason(exc)
        out.end_s = time.perf_counter()
        out.text = "".join(pieces)
        out.output_tokens = out.output_tokens or chunks
        out.chunks = chunks
        return out

    def _stream_session(self) -> aiohttp.ClientSession:
        """One streaming session per event loop (the SUT's), with no cap below the SUT's own."""
        if self._aio is None or self._aio.closed:
            self._aio = aiohttp.ClientSession(
                headers=self._headers(),
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s, sock_connect=10),
            )
        return self._aio

    async def aclose(self) -> None:
        if self._aio is not None:
            await self._aio.close()
            self._aio = None

    def info(self) -> EngineInfo:
        owner = self._served.get("owned_by")
        version = None
        if owner == "vllm":
            try:
                version = self._session().get(self.base[:-3] + "/version", timeout=5).json().get("version")
            except (requests.RequestException, ValueError):
                version = None
        framework = f"vLLM {version}" if owner == "vllm" and version else None
        return EngineInfo(
            engine=owner if owner == "vllm" else None,
            engine_version=version,
            framework_raw=framework,
            model=self.model,
            args={"endpoint": self.base, "api_key_env": self.api_key_env},
            local_host=is_local(self.base),
        )


def is_local(url: str) -> bool:
    """True when the URL points at this machine (its hardware then describes the engine)."""
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1", socket.gethostname()) or host.startswith("127.")


def _reason(exc: Exception) -> str:
    """The innermost cause of an HTTP client error, in one line."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__
