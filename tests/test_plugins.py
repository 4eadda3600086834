"""Issue 19 acceptance: a new predictor, ingest reader, bench backend, campaign backend or acquisition is one new
module. A throwaway module outside flexpredict, named by an installed distribution's entry points, adds one of each;
each is then used through the CLI or the API that would use a built-in one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexpredict.cli import app

cli = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
MODULE = "throwaway_plugins"
GROUPS = ("predictors", "readers", "bench_backends", "campaign_backends", "acquisitions")

PLUGINS = textwrap.dedent('''
    """One throwaway plug-in of each kind."""

    import asyncio
    import time

    import numpy as np
    import pandas as pd

    from flexpredict.bench.base import Backend, Completion, EngineInfo, register as register_engine
    from flexpredict.campaign.acquisition.base import CandidateSampler, register as register_acquisition
    from flexpredict.campaign.backends.base import register as register_campaign_backend
    from flexpredict.campaign.backends.replay import ReplayBackend
    from flexpredict.ingest.base import Reader, register as register_reader
    from flexpredict.predictors.base import Predictor, register as register_predictor


    @register_predictor
    class MedianPredictor(Predictor):
        name = "throwaway-median"

        def _fit_log(self, records, log_y):
            self.median_ = float(np.median(log_y))

        def _predict_log(self, records):
            return np.full(len(records), self.median_)

        def _state(self, folder):
            return {"median": self.median_}

        def _restore(self, state, folder):
            self.median_ = state["median"]


    @register_reader
    class CsvReader(Reader):
        kind = "throwaway-csv"
        filenames = ("throwaway_results.csv",)

        def read(self, path):
            rows = pd.read_csv(path).to_dict("records")
            return [{**row, "source": self.relative(path), "source_kind": self.kind} for row in rows]


    @register_engine
    class InstantEngine(Backend):
        name = "throwaway-engine"

        def __init__(self, model: str, sequences: int = 256):
            self.model, self.sequences = model, sequences

        async def generate(self, prompt, max_tokens, on_first_token=None):
            out = Completion(start_s=time.perf_counter(), prompt_tokens=len(str(prompt).split()))
            await asyncio.sleep(0.001)
            out.first_token_s = time.perf_counter()
            if on_first_token:
                on_first_token("tok ")
            out.text, out.output_tokens = "tok " * max_tokens, max_tokens
            out.last_token_s = out.end_s = time.perf_counter()
            return out

        def info(self):
            return EngineInfo(engine="throwaway", engine_version="0", framework_raw="throwaway 0", model=self.model)


    @register_campaign_backend
    class SlowReplay(ReplayBackend):
        name = "throwaway-replay"

        def measure(self, params, run_dir):
            measurement = super().measure(params, run_dir)
            measurement.seconds *= 2
            return measurement


    @register_acquisition
    class FirstFreeSampler(CandidateSampler):
        name = "throwaway-first-free"

        def choose(self, study, trial, free, pending):
            return int(free[0])
''')


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """The module and a distribution's metadata naming it in every plug-in group, on sys.path for this test."""
    folder = tmp_path / "site"
    (folder / f"{MODULE}-0.1.dist-info").mkdir(parents=True)
    (folder / f"{MODULE}.py").write_text(PLUGINS)
    (folder / f"{MODULE}-0.1.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 0.1\n"
    )
    (folder / f"{MODULE}-0.1.dist-info" / "entry_points.txt").write_text(
        "".join(f"[flexpredict.{group}]\nthrowaway = {MODULE}\n\n" for group in GROUPS)
    )
    monkeypatch.syspath_prepend(str(folder))
    from flexpredict.bench.base import REGISTRY as ENGINES
    from flexpredict.campaign.acquisition.base import ACQUISITIONS
    from flexpredict.campaign.backends.base import REGISTRY as CAMPAIGN_BACKENDS
    from flexpredict.ingest.base import READERS
    from flexpredict.predictors.base import PREDICTORS

    registries = (
        (PREDICTORS, "throwaway-median"),
        (READERS, "throwaway-csv"),
        (ENGINES, "throwaway-engine"),
        (CAMPAIGN_BACKENDS, "throwaway-replay"),
        (ACQUISITIONS, "throwaway-first-free"),
    )
    # a process lists the plug-ins installed when it first asks; this one installed them just now
    for registry, _ in registries:
        registry.discover()
    yield folder
    for registry, name in registries:
        registry.unregister(name)
    sys.modules.pop(MODULE, None)


def test_a_reader_module_is_all_data_build_needs(plugins, tmp_path):
    results = tmp_path / "throwaway_results.csv"
    pd.DataFrame(
        {
            "round": "v5.0",
            "division": "closed",
            "submitter": "acme",
            "system_id": ["box-1", "box-2"],
            "system_name": ["Box 1", "Box 2"],
            "benchmark": "resnet50",
            "scenario": "Offline",
            "accelerator_raw": "NVIDIA H100-SXM-80GB",
            "accelerators_per_node": [8, 4],
            "samples_per_s": [80000.0, 30000.0],
            "valid": True,
        }
    ).to_csv(results, index=False)
    out = tmp_path / "records.parquet"
    result = cli.invoke(app, ["data", "build", "--source", str(results), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = pd.read_parquet(out).sort_values("system_id")
    assert records["source_kind"].tolist() == ["throwaway-csv"] * 2
    # ingest derives the rest, as for every built-in reader
    assert records["throughput_per_accelerator"].tolist() == pytest.approx([80000.0 / 8, 30000.0 / 4])


def test_a_predictor_module_is_all_evaluate_and_load_need(plugins, tmp_path):
    from flexpredict import dataset
    from flexpredict.evaluation import evaluate
    from flexpredict.predictors.base import Predictor
    from flexpredict.predictors.bundle import training_rows
    from flexpredict.predictors.targets import TARGETS, make_predictor

    records = dataset.load()
    # folds in this process: worker processes started by earlier tests would not have the plug-in on their path
    serial = {"calibration_jobs": 1}
    results, _ = evaluate(
        records,
        targets=["throughput_per_accelerator"],
        splits=["forward-v5.0"],
        predictors=("throwaway-median",),
        params={"throwaway-median": serial},
    )
    assert set(results["predictor"]) == {"throwaway-median"} and (results["n"] > 0).all()
    rows, y = training_rows(records, "throughput_per_accelerator")
    fitted = make_predictor(
        "throwaway-median",
        TARGETS["throughput_per_accelerator"],
        {"calibration_folds": 2, "transfer_folds": 0, **serial},
    ).fit(rows, y)
    saved = fitted.save(tmp_path / "throwaway")
    assert Predictor.load(saved).predict(rows.head(3)) == pytest.approx(np.exp(np.median(np.log(y))))
    # a fresh interpreter that never imported the module finds it by the saved name alone
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from flexpredict.predictors.base import Predictor; "
            f"p = Predictor.load({str(saved)!r}); print(p.name, '{MODULE}' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert loaded.stdout.split() == ["throwaway-median", "True"]


def test_an_engine_module_is_all_bench_run_needs(plugins, tmp_path):
    out = tmp_path / "run"
    result = cli.invoke(
        app,
        [
            "bench",
            "run",
            "--backend",
            "throwaway-engine",
            "--model",
            "m",
            "--scenario",
            "Offline",
            "--target-qps",
            "200",
            "--samples",
            "8",
            "--min-duration",
            "0.1",
            "--max-tokens",
            "4",
            "--out",
            str(out),
            "--append-to",
            str(tmp_path / "mine.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "benchmark_results.json").read_text())["record"]
    assert record["engine"] == "throwaway" and record["model"] == "m" and record["samples_per_s"] > 0
    assert f"appended 1 record(s) to {tmp_path / 'mine.parquet'}" in result.output
    assert pd.read_parquet(tmp_path / "mine.parquet")["record_id"].tolist() == [record["record_id"]]
    missing = cli.invoke(app, ["bench", "run", "--backend", "throwaway-engine"])
    assert missing.exit_code == 2 and "the throwaway-engine backend needs --model" in missing.output


def test_campaign_backend_and_acquisition_modules_are_all_a_campaign_needs(plugins, tmp_path):
    from flexpredict.campaign import Worker, load_campaign

    definition = {
        "name": "throwaway",
        "acquisition": "throwaway-first-free",
        "backend": {"kind": "throwaway-replay", "pool": {"model": "mixtral-8x7b"}},
        "space": {"accelerator": {"similarity": 0.0}, "precision": {"similarity": 0.5}},
        "objective": {"metric": "throughput_per_accelerator"},
        "budget": {"runs": 4},
        "batch_size": 2,
        "initial_trials": 2,
        "predictor": "knobs",
    }
    path = tmp_path / "throwaway.yaml"
    path.write_text(yaml.safe_dump(definition))
    worker = Worker(load_campaign(path), workdir=tmp_path / "campaign")
    worker.run()
    trials = worker.study.get_trials()
    chosen = [t for t in trials if t.user_attrs.get("acquisition") == "throwaway-first-free"]
    assert len(trials) == 4 and len(chosen) == 2
    assert worker.backend.name == "throwaway-replay"
    assert all(t.user_attrs["seconds"] == 2 * worker.backend.seconds_per_run for t in trials)


def test_a_saved_knobs_model_loads_without_the_campaign_package(tmp_path):
    from flexpredict.predictors.knobs import KnobPredictor
    from flexpredict.schema import conform

    frame = conform(
        pd.DataFrame({"param_seqs": [8, 16, 32, 64], "model": "m", "run_group": ["a", "b", "c", "d"]}), extra=True
    )
    saved = (
        KnobPredictor(columns=("param_seqs",), calibration_folds=2)
        .fit(frame, np.array([1.0, 2, 4, 8]))
        .save(tmp_path / "knobs")
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from flexpredict.predictors.base import Predictor; "
            f"p = Predictor.load({str(saved)!r}); "
            "print(p.name, 'flexpredict.campaign' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert loaded.stdout.split() == ["knobs", "False"]
