"""Backend `bench`: measure a configuration with flexpredict's own benchmark (vLLM served, MLPerf LoadGen driving).

Parameters are vLLM engine knobs (`max_num_seqs`, `max_num_batched_tokens`, `tensor_parallel`, `dtype`,
`quantization`, ...) and run settings (`scenario`, `target_qps`, `max_tokens`, ...). The server is restarted only
when an engine knob changes, so a sweep over QPS costs one start-up. A run that fails (the engine crashes, the model
does not fit) is a failed measurement with the engine's own explanation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ...io import plain
from ...schema import conform
from ..definition import CampaignError
from .base import Measurement, MeasurementBackend, register

if TYPE_CHECKING:
    from ...bench.base import Backend

RUN_SETTINGS = ("scenario", "target_qps", "max_tokens", "samples", "min_duration")
RECORD_COLUMNS = {
    "tensor_parallel": "tensor_parallel",
    "max_num_seqs": "max_num_seqs",
    "max_num_batched_tokens": "max_num_batched_tokens",
    "scenario": "scenario",
    "target_qps": "target_qps",
}
DEFAULTS = {"scenario": "Server", "target_qps": None, "max_tokens": 128, "samples": None, "min_duration": 10.0}


@register
class BenchBackend(MeasurementBackend):
    name = "bench"
    options = frozenset(
        {
            "model",
            "server",
            "engine_python",
            "prompts",
            "engine",
            "run",
            "env",
            "ignore_eos",
            "concurrency",
            "startup_timeout",
            "base_dataset",
        }
    )

    def __init__(self, campaign, workdir: Path):
        from ...bench.base import REGISTRY

        super().__init__(campaign, workdir)
        opts = campaign.backend_options
        self.server_backend = str(opts.get("server", "vllm"))  # the bench backend that serves the model
        if self.server_backend not in REGISTRY:
            raise CampaignError(f"backend.server: {REGISTRY.unknown(self.server_backend)}")
        self.knobs = REGISTRY[self.server_backend].tunable
        for name in campaign.parameter_names:
            if name not in self.knobs + RUN_SETTINGS:
                raise CampaignError(
                    f"space.{name}: the bench backend knows engine knobs "
                    f"({', '.join(self.knobs)}) and run settings ({', '.join(RUN_SETTINGS)})"
                )
        if not opts.get("model"):
            raise CampaignError("backend.model: a model path or hub id, or 'tiny' for the offline tiny Llama")
        self.engine = _mapping(opts, "engine")
        self.run = {**DEFAULTS, **_mapping(opts, "run")}
        for key in self.engine:
            if key not in self.knobs:
                raise CampaignError(f"backend.engine.{key}: not an engine knob ({', '.join(self.knobs)})")
        for key in self.run:
            if key not in RUN_SETTINGS:
                raise CampaignError(f"backend.run.{key}: not a run setting ({', '.join(RUN_SETTINGS)})")
        scenarios = {self.run["scenario"]} | set(next((p.values for p in campaign.space if p.name == "scenario"), ()))
        if "Server" in scenarios and self.run["target_qps"] is None and "target_qps" not in campaign.parameter_names:
            raise CampaignError(
                "backend.run.target_qps: the Server scenario needs a target QPS (or a target_qps parameter)"
            )
        # the engine inherits this process's environment (e.g. VLLM_CPU_KVCACHE_SPACE on a CPU)
        os.environ.update({str(k): str(v) for k, v in _mapping(opts, "env").items()})
        self.server: Backend | None = None
        self.server_knobs: dict | None = None

    def candidates(self) -> pd.DataFrame:
        from ..candidates import grid

        return grid(self.campaign.space)

    def describe(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """What the record of each configuration will say before it is measured: model, engine, knobs."""
        from ...bench.vllm_server import precision_of

        model = str(self.campaign.backend_options["model"])
        # as the runner names it: a local folder by its name, a hub id as it is
        name = "tiny-llama" if model == "tiny" else Path(model).name if Path(model).exists() else model
        rows = []
        for params in candidates.to_dict("records"):
            knobs, run = self._split(params)
            row = {
                "model": name,
                "benchmark": name,
                "engine": "vllm",
                "round": "bench",
                "division": "bench",
                "scenario": run["scenario"],
                "nodes": 1,
                "precision": precision_of(knobs.get("dtype"), knobs.get("quantization"), model),
            }
            row.update({column: params[name] for name, column in RECORD_COLUMNS.items() if name in params})
            if self.campaign.backend_options.get("ignore_eos", True):
                row["output_tokens_mean"] = run["max_tokens"]
            rows.append(row)
        return conform(pd.DataFrame(rows))

    def measure(self, params: dict, run_dir: Path) -> Measurement:
        from ...bench.base import BenchError
        from ...bench.prompts import load_prompts
        from ...bench.runner import RunConfig, run_benchmark
        from ...bench.slo import Slo
        from ...bench.system import capture_system

        knobs, run = self._split(params)
        slo = self.campaign.objective.slo
        cfg = RunConfig(
            scenario=run["scenario"],
            target_qps=run["target_qps"],
            samples=run["samples"],
            min_duration_s=float(run["min_duration"]),
            max_tokens=int(run["max_tokens"]),
            concurrency=int(self.campaign.backend_options.get("concurrency", 256)),
            slo=Slo(ttft_ms=slo.get("ttft_p99_ms"), tpot_ms=slo.get("tpot_p99_ms"), source="campaign"),
        )
        started = time.monotonic()
        try:
            server = self._server(knobs, Path(run_dir))
            results = run_benchmark(
                server,
                load_prompts(self.campaign.backend_options.get("prompts", "default")),
                cfg,
                Path(run_dir),
                capture_system(),
                server.info(),
            )
        except BenchError as exc:
            self.close()  # a crashed or half-started engine is not reused
            return Measurement(
                None,
                failure=str(exc),
                seconds=time.monotonic() - started,
                accelerators=int(knobs.get("tensor_parallel") or 1),
            )
        record = results.get("record")
        if record is None:
            return Measurement(
                None, failure="the run produced no performance record", seconds=time.monotonic() - started
            )
        return Measurement(
            record, seconds=time.monotonic() - started, accelerators=int(record.get("accelerators_total") or 1)
        )

    def base_records(self) -> pd.DataFrame:
        path = self.campaign.backend_options.get("base_dataset")
        if not path:
            return super().base_records()
        from ... import dataset

        return dataset.load(path)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server, self.server_knobs = None, None

    def _split(self, params: dict) -> tuple[dict, dict]:
        """(engine knobs, run settings) of a configuration, the fixed ones from `backend.engine`/`backend.run`."""
        knobs = {**self.engine, **{k: plain(v) for k, v in params.items() if k in self.knobs}}
        run = {**self.run, **{k: plain(v) for k, v in params.items() if k in RUN_SETTINGS}}
        return knobs, run

    def _server(self, knobs: dict, run_dir: Path):
        """The running server when its engine knobs match, else a fresh one started into `run_dir`."""
        from ...bench.base import create_backend
        from ...bench.engine_env import default_engine_python

        if self.server is not None and knobs == self.server_knobs:
            return self.server
        self.close()
        opts = self.campaign.backend_options
        model = str(opts["model"])
        if model == "tiny":
            model = str(self._tiny_model())
        python = opts.get("engine_python") or default_engine_python()
        server = create_backend(
            self.server_backend,
            {
                "model": model,
                "engine_python": Path(python) if python else None,
                "startup_timeout_s": float(opts.get("startup_timeout", 900)),
                "ignore_eos": bool(opts.get("ignore_eos", True)),
                **knobs,
            },
        )
        server.start(run_dir)
        self.server, self.server_knobs = server, knobs
        return server

    def _tiny_model(self) -> Path:
        """The offline tiny Llama, built once into the campaign folder."""
        from ...bench.engine_env import default_engine_python
        from ...bench.prompts import load_prompts
        from ...bench.tiny_model import make_tiny_model

        out = self.workdir / "tiny-llama"  # the name `describe` gives the model
        if not (out / "config.json").exists():
            engine_python = self.campaign.backend_options.get("engine_python") or default_engine_python()
            make_tiny_model(
                out, load_prompts("default").tokenizer_corpus(), Path(engine_python) if engine_python else None
            )
        return out


def _mapping(opts: dict, key: str) -> dict:
    value = opts.get(key) or {}
    if not isinstance(value, dict):
        raise CampaignError(f"backend.{key}: expected a mapping")
    return value
