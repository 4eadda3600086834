"""Backend `vllm`: a vLLM OpenAI server that flexpredict starts, health-checks and stops.

The server may run from another Python environment (`--engine-python`, by default the `.venv-vllm-cpu` made by
`bench setup-engine`), since vLLM pins its own torch. Once healthy it is just an OpenAI endpoint, so requests go
through the `openai` backend's client.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from flexpredict.bench.base import BenchError, EngineInfo, engine_reason, register
from flexpredict.bench.engine_env import default_engine_python
from flexpredict.bench.memory import KvCachePlan, available_memory_bytes, plan_cpu_kv_cache
from flexpredict.bench.openai_endpoint import OpenAIEndpoint

_DTYPE_PRECISION = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
_QUANT_PRECISION = {
    "fp8": "fp8",
    "awq": "int4",
    "gptq": "int4",
    "bitsandbytes": "int4",
    "int8": "int8",
    "w8a8": "int8",
    "modelopt_fp4": "fp4",
    "mxfp4": "fp4",
}


@register
class VllmServer(OpenAIEndpoint):
    name = "vllm"
    tunable = (
        "tensor_parallel",
        "max_num_seqs",
        "max_num_batched_tokens",
        "dtype",
        "quantization",
        "gpu_memory_utilization",
        "max_model_len",
        "enforce_eager",
    )
    model: str  # always named: vLLM serves the model it is started with

    def __init__(
        self,
        model: str,
        engine_python: Path | None = None,
        port: int | None = None,
        tensor_parallel: int | None = None,
        max_num_seqs: int | None = None,
        max_num_batched_tokens: int | None = None,
        dtype: str | None = None,
        quantization: str | None = None,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        extra_args: tuple[str, ...] = (),
        startup_timeout_s: float = 900.0,
        ignore_eos: bool = False,
        sequences: int = 256,
    ):
        self.port = port or _free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", model=model, ignore_eos=ignore_eos)
        self.engine_python = Path(engine_python or default_engine_python() or sys.executable)
        self.knobs: dict[str, Any] = {
            "tensor-parallel-size": tensor_parallel,
            "max-num-seqs": max_num_seqs,
            "max-num-batched-tokens": max_num_batched_tokens,
            "dtype": dtype,
            "quantization": quantization,
            "gpu-memory-utilization": gpu_memory_utilization,
            "max-model-len": max_model_len,
        }
        self.enforce_eager = enforce_eager
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.sequences = sequences
        """Requests the run keeps in flight: with the max model length, they size the KV cache on the CPU."""
        self.kv_cache: KvCachePlan | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._versions: dict | None = None

    def command(self) -> list[str]:
        cmd = [
            str(self.engine_python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        for flag, value in self.knobs.items():
            if value is not None:
                cmd += [f"--{flag}", str(value)]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.kv_cache is not None:
            cmd += ["--kv-cache-memory-bytes", str(self.kv_cache.cache_bytes)]
        return cmd + list(self.extra_args)

    def start(self, log_dir: Path | None = None) -> None:
        """Start the server, wait for GET /health, and fail with the engine's log tail if it dies first (its log
        goes to `log_dir`, the working folder by default)."""
        log_dir = Path.cwd() if log_dir is None else Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "engine.log"
        env = dict(os.environ, VLLM_NO_USAGE_STATS="1")
        # uvicorn closes a connection idle for 5 s; a client lagging behind 256 streams on a busy host reuses it
        # after that and gets "Server disconnected" (or a reset): keep connections as long as a request may last
        env.setdefault("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", str(int(self.request_timeout_s)))
        if Path(self.model).is_dir():
            env["HF_HUB_OFFLINE"] = "1"  # a local model needs no hub; never hang on a network that is not there
        self.kv_cache = self._plan_kv_cache(env)
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, **OWN_PROCESS_GROUP
                )
            except OSError as exc:
                raise BenchError(f"cannot run engine python {self.engine_python}: {exc.strerror}") from None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(self._died(f"vLLM refused to start (exit code {self.proc.returncode})"))
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    super().start()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise BenchError(self._died(f"vLLM refused to start (not healthy after {self.startup_timeout_s:.0f} s)"))

    def _plan_kv_cache(self, env: dict) -> KvCachePlan | None:
        """The KV cache this run needs, for the CPU build serving a local model; None when the user sized it
        (VLLM_CPU_KVCACHE_SPACE, --gpu-memory-utilization, --kv-cache-memory-bytes) or on a GPU build (where vLLM
        profiles free memory itself). Raises ModelDoesNotFit before anything starts."""
        user_sized = (
            env.get("VLLM_CPU_KVCACHE_SPACE")
            or self.knobs["gpu-memory-utilization"] is not None
            or any(arg.startswith("--kv-cache-memory-bytes") for arg in self.extra_args)
        )
        if user_sized or self.versions().get("dist") != "vllm-cpu" or not (Path(self.model) / "config.json").is_file():
            return None
        sequences = min(self.sequences, self.knobs["max-num-seqs"] or self.sequences)
        return plan_cpu_kv_cache(
            Path(self.model), self.knobs["dtype"], self.knobs["max-model-len"], sequences, available_memory_bytes()
        )

    def _died(self, what: str) -> str:
        """One line: what happened, the engine's own reason, where to read the rest."""
        reason = engine_reason(self.log_path)
        if "No module named" in reason and "vllm" in reason:
            reason += " (run `flexpredict bench setup-engine vllm-cpu` or pass --engine-python)"
        return f"{what}: {reason} (engine log: {self.log_path})"

    def failure(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return self._died(f"the vLLM server exited with code {self.proc.returncode} during the run")
        return None

    def stop(self) -> None:
        """Stop the server and its engine/worker processes (one process group), so their memory is free again."""
        if self.proc is None:
            return
        group = self.proc.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 15
        while _signal_group(group, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(group, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def versions(self) -> dict:
        """Library versions in the engine's environment, probed once."""
        if self._versions is None:
            self._versions = _probe_versions(self.engine_python)
        return self._versions

    def info(self) -> EngineInfo:
        versions = self.versions()
        dist = versions.get("dist") or "vllm"
        parts = [f"vLLM {versions.get('vllm')}" + (f" ({dist})" if dist != "vllm" else "")]
        if versions.get("torch"):
            parts.append(f"PyTorch {versions['torch']}")
        return EngineInfo(
            engine="vllm",
            engine_version=versions.get("vllm"),
            framework_raw=", ".join(parts),
            precision=precision_of(self.knobs["dtype"], self.knobs["quantization"], self.model),
            tensor_parallel=self.knobs["tensor-parallel-size"] or 1,
            max_num_seqs=self.knobs["max-num-seqs"],
            max_num_batched_tokens=self.knobs["max-num-batched-tokens"],
            model=self.model,
            args={
                "command": self.command()[1:],
                "engine_python": str(self.engine_python),
                "versions": versions,
                "kv_cache": self.kv_cache.describe() if self.kv_cache else None,
            },
        )


OWN_PROCESS_GROUP: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
"""The server in a process group of its own (`stop` signals the whole group) but in the harness's session: on Linux
a new session is a new scheduler autogroup, where vLLM's busy engine core starved the HTTP front end on a busy
2-core host: streams arrived in one burst (TTFT = the whole answer, TPOT ~0 ms) while the engine's own inter-token
latency was 1.7 ms."""


def precision_of(dtype: str | None, quantization: str | None, model: str) -> str | None:
    """Record precision from the engine knobs; with dtype auto, the checkpoint's own dtype when it is local."""
    if quantization:
        return _QUANT_PRECISION.get(quantization.lower(), quantization.lower())
    if dtype and dtype != "auto":
        return _DTYPE_PRECISION.get(dtype.lower(), dtype.lower())
    config = Path(model) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        return _DTYPE_PRECISION.get(str(data.get("torch_dtype") or data.get("dtype")))
    return None


_VERSION_SCRIPT = """
import importlib.metadata as m, json
out = {}
for dist in ("vllm-cpu", "vllm"):
    try:
        out["vllm"], out["dist"] = m.version(dist), dist
        break
    except m.PackageNotFoundError:
        pass
for name in ("torch", "transformers"):
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def _probe_versions(python: Path) -> dict:
    """Library versions inside the engine's environment (package metadata: no heavy imports)."""
    done = subprocess.run([str(python), "-c", _VERSION_SCRIPT], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def _signal_group(group: int, sig: int) -> bool:
    """Signal a process group; False when none of it is left."""
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
