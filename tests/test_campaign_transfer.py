"""A new accelerator arrives: the transfer surrogate, the shrinkage acquisition, refits on a schedule, `campaign
status` without fitting (and its stale trials), and the experiment's summary."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from flexpredict.campaign import Worker, load_campaign
from flexpredict.campaign.acquisition import Context, ShrinkageSampler
from flexpredict.campaign.candidates import CandidateSet, similarity_between
from flexpredict.campaign.definition import Objective, Parameter
from flexpredict.campaign.study import with_parameters
from flexpredict.campaign.surrogate import TransferSurrogate, known_before
from flexpredict.cli import app

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PART = "nvidia-h200-sxm-141gb"
NEW_PART = {
    "name": "new-part",
    "backend": {
        "kind": "replay",
        "pool": {"accelerator": PART, "model": ["gptj", "mixtral-8x7b"]},
        "base": {"model": ["gptj", "mixtral-8x7b"]},
        "holdout": 0.25,
    },
    "space": {
        "model": {"similarity": 0.3},
        "scenario": {"similarity": 0.8},
        "precision": {"similarity": 0.8},
        "engine": {"similarity": 0.8},
        "accelerators_per_node": {"similarity": 0.9, "log": True},
        "nodes": {"similarity": 0.9, "log": True},
    },
    "objective": {"metric": "throughput_per_accelerator"},
    "budget": {"runs": 4},
    "initial_trials": 0,
    "predictor": "transfer",
    "acquisition": "shrinkage",
    "heartbeat_interval": 1,
    "grace_period": 2,
}


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "new-part.yaml"
    path.write_text(yaml.safe_dump({**NEW_PART, **changes}))
    return path


def test_similarity_between_any_configurations():
    space = (Parameter("count", (), 0.5, True), Parameter("model", (), 0.3), Parameter("part", (), 0.0))
    rows = pd.DataFrame({"count": [8], "model": ["a"], "part": ["x"]})
    cols = pd.DataFrame({"count": [8, 2, 8, 8], "model": ["a", "a", "b", "a"], "part": ["x", "x", "x", "y"]})
    # two doublings apart; another model; another part (similarity 0: nothing shared)
    assert similarity_between(space, rows, cols)[0] == pytest.approx([1.0, 0.25, 0.3, 0.0])


def shrinkage_context(sd: np.ndarray) -> Context:
    """Two models with five configurations each (counts 1..16) and one of a third model."""
    frame = pd.DataFrame({"model": ["a"] * 5 + ["b"] * 5 + ["c"], "count": [1, 2, 4, 8, 16] * 2 + [1]})
    space = (Parameter("model", (), 0.1), Parameter("count", (), 0.9, True))
    context = Context(CandidateSet(space, frame, frame), Objective("throughput_per_accelerator"))
    pred = np.full(len(frame), 100.0)
    context.predictions = pd.DataFrame(
        {
            "throughput_per_accelerator": pred,
            "throughput_per_accelerator_lo": pred / 2,
            "throughput_per_accelerator_hi": pred * np.exp(1.6448536269514722 * sd),
        }
    )
    return context


def test_shrinkage_measures_where_one_run_teaches_most_and_spreads_a_batch():
    context = shrinkage_context(np.ones(11))
    sampler = ShrinkageSampler(context, seed=0)
    free = np.arange(11)
    first = sampler.choose(None, None, free, np.array([], dtype=int))
    assert first in (2, 7)  # the middle count of a five-configuration model: it informs its whole model
    # with that one in flight, the next worker goes to the other model, not to a neighbour of the pending run
    second = sampler.choose(None, None, free[free != first], np.array([first]))
    assert second == (7 if first == 2 else 2)
    # a model the predictor is already sure about is not worth a run
    sure = shrinkage_context(np.r_[np.full(5, 0.01), np.ones(6)])
    assert ShrinkageSampler(sure, seed=0).choose(None, None, free, np.array([], dtype=int)) == 7


@pytest.fixture(scope="module")
def new_part(tmp_path_factory):
    """One short campaign on a part nobody measured: 4 shrinkage runs, refits after 1, 2 and 4."""
    tmp_path = tmp_path_factory.mktemp("new-part")
    worker = Worker(load_campaign(write(tmp_path)), workdir=tmp_path / "c", refit_at=(1, 2, 4))
    fits = []
    worker.run(on_fit=lambda w: fits.append(dict(w.evaluation)))
    worker.refit()
    fits.append(dict(worker.evaluation))
    return worker, fits, tmp_path


def test_transfer_campaign_starts_from_nothing_measured_and_refits_on_schedule(new_part):
    worker, fits, _ = new_part
    assert len(worker.base) and not (worker.base["accelerator"] == PART).any()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [t.user_attrs["acquisition"] for t in trials] == ["shrinkage"] * 4  # no initial random runs
    assert [f["measurements"] for f in fits] == [0, 1, 2, 4]
    assert all(f["records"] == len(worker.held_out) and 0 <= f["coverage"] <= 1 for f in fits)
    assert worker.study.user_attrs["held_out"] == fits[-1]


def test_transfer_surrogate_corrects_the_transfer_prediction_by_each_measurement(new_part):
    worker, _, tmp_path = new_part
    campaign, metric = worker.campaign, "throughput_per_accelerator"
    candidates = worker.candidate_records()
    before = TransferSurrogate(campaign, tmp_path / "transfer-predictors").fit(worker.base)
    transfer = before.predictors[metric].predict(known_before(candidates, campaign.parameter_names))
    prior = before.predict(candidates)
    assert prior[metric].to_numpy() == pytest.approx(transfer)  # nothing measured: the transfer prediction
    measured = candidates.iloc[[0]].assign(**{metric: 3.0 * prior[metric].iloc[0], "run_group": "measured"})
    after = TransferSurrogate(campaign, tmp_path / "transfer-predictors").fit(worker.base, measured).predict(candidates)
    ratio, width = after[metric] / prior[metric], np.log(after[f"{metric}_hi"] / after[f"{metric}_lo"])
    prior_width = np.log(prior[f"{metric}_hi"] / prior[f"{metric}_lo"])
    # the measured configuration moves most of the way (the run's own noise keeps a little of the prior)
    assert 2.5 < ratio.iloc[0] <= 3.0 and width.iloc[0] < 0.5 * prior_width.iloc[0]
    same_model = (candidates["param_model"] == candidates["param_model"].iloc[0]).to_numpy()
    assert (ratio[same_model] > 1.5).all() and (width <= prior_width + 1e-9).all()
    assert ratio[same_model].min() > ratio[~same_model].max()  # another model shares less of the correction


def test_transfer_predictor_is_cached_and_reused(new_part, monkeypatch):
    worker, _, tmp_path = new_part
    cached = list((tmp_path / "transfer-predictors").glob("throughput_per_accelerator-*/predictor.json"))
    assert len(cached) == 1
    import flexpredict.predictors.base as predictors

    monkeypatch.setattr(predictors.Predictor, "fit", lambda *a, **k: pytest.fail("refitted a cached predictor"))
    again = TransferSurrogate(worker.campaign, tmp_path / "transfer-predictors").fit(worker.base)
    records = with_parameters(worker.held_out, worker.campaign.parameter_names)
    assert again.predict(records)["throughput_per_accelerator"].to_numpy() == pytest.approx(
        worker.surrogate.predictors["throughput_per_accelerator"].predict(
            known_before(records, worker.campaign.parameter_names)
        )
    )


def test_status_reads_the_stored_error_fits_nothing_and_names_stale_trials(new_part, monkeypatch):
    worker, fits, tmp_path = new_part
    from flexpredict.campaign import surrogate

    monkeypatch.setattr(surrogate.Surrogate, "fit", lambda *a, **k: pytest.fail("status fitted a predictor"))
    path, folder = write(tmp_path), tmp_path / "c"
    trial = worker.study.ask()  # a worker that took a trial and died: no heartbeat since
    worker.storage.record_heartbeat(trial._trial_id)
    time.sleep(worker.campaign.grace_period + 1)
    result = CliRunner().invoke(app, ["campaign", "status", str(path), "--dir", str(folder), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["prediction_error"]["mdape_held_out"] == pytest.approx(fits[-1]["mdape"])
    assert report["stale"] == [trial.number]
    result = CliRunner().invoke(app, ["campaign", "status", str(path), "--dir", str(folder)])
    assert "1 running (1 stale" in result.output


def test_new_accelerator_campaigns_parse_and_summary_compares_with_random():
    paths = sorted((EXPERIMENTS / "campaigns").glob("new-*-replay.yaml"))
    assert {p.stem for p in paths} >= {
        "new-b200-replay",
        "new-h200-replay",
        "new-mi300x-mi325x-replay",
        "new-gb200-replay",
    }
    for path in paths:
        campaign = load_campaign(path)
        assert campaign.initial_trials == 0 and campaign.predictor == "transfer"
        assert campaign.backend_options["base"] == "rest"
    spec = importlib.util.spec_from_file_location("new_accelerator", EXPERIMENTS / "new_accelerator.py")
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)

    def run(acquisition, errors):
        return {
            "campaign": "p",
            "acquisition": acquisition,
            "seed": 0,
            "gpu_hours": [1.0] * 16,
            "curve": [{"measurements": n, "mdape": e, "coverage": 0.9} for n, e in errors],
        }

    runs = [
        run("shrinkage", [(0, 0.5), (2, 0.08), (4, 0.06), (16, 0.05)]),
        run("random", [(0, 0.5), (4, 0.3), (8, 0.2), (12, 0.09), (16, 0.08)]),
    ]
    summary = experiment.summarise(runs, budget=16, target=0.10)
    assert summary["verdict"] == {
        "best": "shrinkage",
        "to_target_ratio": pytest.approx(2 / 12),
        "mdape_after_4_reduction": pytest.approx(0.8),
    }
    overall = {r["acquisition"]: r for r in summary["rows"] if r["campaign"] == "all"}
    assert overall["shrinkage"]["gpu_hours_to_target"] == 2.0 and overall["random"]["mdape"][8] == 0.2
