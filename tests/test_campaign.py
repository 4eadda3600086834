"""Campaigns on the replay backend: definition errors, candidates, every acquisition, failures, budget, the CLI, and
the storage opened unchanged by Optuna and optuna-dashboard. Fast: small pools and the `knobs` predictor."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from flexpredict import dataset
from flexpredict.campaign import CampaignError, Worker, load_campaign, parse_campaign
from flexpredict.campaign.backends.replay import ReplayBackend
from flexpredict.campaign.candidates import CandidateSet, config_key
from flexpredict.campaign.definition import Parameter
from flexpredict.campaign.study import summary
from flexpredict.cli import app
from flexpredict.predictors.knobs import KnobPredictor
from flexpredict.schema import COLUMN_NAMES, conform

CAMPAIGNS = Path(__file__).resolve().parents[1] / "experiments" / "campaigns"
cli = CliRunner()

FAST = {
    "name": "mixtral-replay",
    "backend": {"kind": "replay", "pool": {"model": "mixtral-8x7b"}, "holdout": 0.2},
    "space": {
        "accelerator": {"similarity": 0.0},
        "accelerators_per_node": {"similarity": 0.8},
        "precision": {"similarity": 0.5},
        "engine": {"similarity": 0.5},
        "scenario": {"similarity": 0.3},
    },
    "objective": {"metric": "throughput_per_accelerator", "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 200}},
    "budget": {"runs": 8},
    "batch_size": 2,
    "initial_trials": 2,
    "predictor": "knobs",
    "heartbeat_interval": 1,
    "grace_period": 2,
}


def write(tmp_path: Path, **changes) -> Path:
    data = {**FAST, **changes}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def configs(study) -> list[str]:
    return [config_key(t.params) for t in study.get_trials(deepcopy=False) if t.params]


# -- definition --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"acquisiton": "random"}, "acquisiton: unknown field; did you mean 'acquisition'?"),
        (
            {"objective": {"metric": "throughput_per_acc"}},
            "objective.metric: unknown metric 'throughput_per_acc'; did you mean throughput_per_accelerator?",
        ),
        ({"objective": {"slo": {"tpot_p99_ms": -1}}}, "objective.slo.tpot_p99_ms: expected a positive bound"),
        ({"objective": {"target_error": 15}}, "objective.target_error: expected a fraction"),
        ({"budget": {"usd": 100}}, "budget.usd_per_accelerator_hour: needed"),
        ({"budget": {}}, "budget: expected a mapping"),
        ({"space": {"max_num_seqs": {"values": [8, 8]}}}, "space.max_num_seqs.values: lists a value twice"),
        ({"space": {"max_num_seqs": {"low": 8, "high": 4}}}, "space.max_num_seqs: expected numbers low <= high"),
        ({"space": {"x": {"values": [1], "similarity": 2}}}, "space.x.similarity: expected a number from 0 to 1"),
        (
            {"acquisition": "bayes"},
            "acquisition: expected one of gp, improvement, random, shrinkage, tpe, uncertainty,",
        ),
        ({"grace_period": 1}, "grace_period: must exceed heartbeat_interval"),
        ({"name": "a b"}, "name: use letters, digits"),
    ],
)
def test_definition_errors_name_the_field(change, message):
    with pytest.raises(CampaignError) as err:
        parse_campaign({**FAST, **change})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ranges_expand_to_values():
    space = parse_campaign(
        {
            **FAST,
            "space": {
                "max_num_seqs": {"low": 8, "high": 256, "factor": 2},
                "target_qps": {"low": 0.5, "high": 2.0, "step": 0.5},
            },
        }
    ).space
    assert space[0] == Parameter("max_num_seqs", (8, 16, 32, 64, 128, 256), 0.5, True)
    assert space[1].values == (0.5, 1.0, 1.5, 2.0) and not space[1].log


@pytest.mark.parametrize("path", sorted(CAMPAIGNS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_campaigns_parse(path):
    campaign = load_campaign(path)
    assert campaign.name == path.stem and campaign.budget


def test_backend_errors_are_one_line(tmp_path):
    with pytest.raises(CampaignError, match=r"space.kv_cache_dtype: the replay backend matches parameters to record"):
        Worker(load_campaign(write(tmp_path, space={"kv_cache_dtype": ["fp8"]})), workdir=tmp_path / "c")
    with pytest.raises(CampaignError, match=r"backend.pool: no record with a throughput_per_accelerator value"):
        Worker(
            load_campaign(write(tmp_path, backend={"kind": "replay", "pool": {"model": "nope"}})),
            workdir=tmp_path / "d",
        )
    with pytest.raises(CampaignError, match=r"backend.holdot: unknown option of the replay backend"):
        Worker(load_campaign(write(tmp_path, backend={"kind": "replay", "holdot": 0.1})), workdir=tmp_path / "e")


# -- candidates --------------------------------------------------------------------------------------------------


def test_candidates_keys_nearest_and_similarity():
    space = (Parameter("seqs", (), 0.5, True), Parameter("dtype", (), 0.0))
    frame = pd.DataFrame({"seqs": [8, 16, 64, 8], "dtype": ["bf16", "bf16", "bf16", "fp8"]})
    candidates = CandidateSet(space, frame, frame)
    assert candidates.position({"dtype": "bf16", "seqs": 16.0}) == 1  # 16 and 16.0, any order
    assert candidates.distributions["seqs"] == optuna.distributions.IntDistribution(8, 64, log=True)
    # a proposal of 40 with bf16 lands on 64 (log scale) unless only the others are free
    assert candidates.nearest({"seqs": 40, "dtype": "bf16"}, np.arange(4)) == 2
    assert candidates.nearest({"seqs": 40, "dtype": "bf16"}, np.array([0, 3])) == 0
    k = candidates.similarity(np.array([0]), np.arange(4))[0]
    assert k == pytest.approx([1.0, 0.5, 0.25, 0.0])  # one value apart, two apart (8, 16, 64), another dtype


# -- the loop on the replay backend ------------------------------------------------------------------------------


@pytest.mark.parametrize("acquisition", ["uncertainty", "shrinkage", "improvement", "random", "tpe"])
def test_campaign_measures_appends_refits_and_proposes(tmp_path, acquisition):
    worker = Worker(load_campaign(write(tmp_path, acquisition=acquisition)), workdir=tmp_path / "c")
    fits = []
    outcome = worker.run(on_fit=lambda w: fits.append(w.fitted_on))
    trials = worker.study.get_trials()
    assert outcome.reason == "runs budget spent (8 of 8)" and outcome.trials == 8
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert len(set(configs(worker.study))) == 8  # never the same configuration twice
    assert fits == [0, 2, 4, 6]  # refit after every batch of 2
    labels = [t.user_attrs["acquisition"] for t in trials]
    assert labels == ["initial"] * 2 + [acquisition] * 6
    assert all("predicted" in t.user_attrs for t in trials[2:])
    assert [t.value for t in trials] == [t.user_attrs["record"]["throughput_per_accelerator"] for t in trials]
    assert all(set(t.constraints) == {"ttft_p99_ms", "tpot_p99_ms"} for t in trials)
    held = {
        config_key(r)
        for r in worker.backend.evaluation_records()[list(worker.campaign.parameter_names)]
        .astype(object)
        .where(lambda f: f.notna(), None)
        .to_dict("records")
    }
    assert not held & set(configs(worker.study))  # held-out configurations are never measured
    saved = dataset.load(worker.dataset)
    assert len(saved) == 8 and list(saved.columns) == list(COLUMN_NAMES)
    assert sorted(saved["record_id"]) == sorted(t.user_attrs["record"]["record_id"] for t in trials)


def test_gp_needs_pytorch(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed: Optuna's GPSampler works here")
    with pytest.raises(CampaignError, match=r"^acquisition: gp is Optuna's GPSampler, which needs PyTorch"):
        Worker(load_campaign(write(tmp_path, acquisition="gp")), workdir=tmp_path / "c")


def test_same_seed_same_initial_configurations_for_every_acquisition(tmp_path):
    first = Worker(load_campaign(write(tmp_path, acquisition="random")), workdir=tmp_path / "a")
    second = Worker(load_campaign(write(tmp_path, acquisition="tpe")), workdir=tmp_path / "b")
    assert configs(first.study) == [] and len(first.study.get_trials()) == 2
    assert [t.system_attrs["fixed_params"] for t in first.study.get_trials()] == [
        t.system_attrs["fixed_params"] for t in second.study.get_trials()
    ]


def test_failed_benchmark_is_recorded_with_its_reason_and_not_retried(tmp_path, crashing_replay):
    worker = Worker(
        load_campaign(
            write(
                tmp_path,
                backend={**FAST["backend"], "kind": crashing_replay},
                budget={"runs": 40},
                acquisition="random",
            )
        ),
        workdir=tmp_path / "c",
    )
    outcome = worker.run()
    trials = worker.study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all(t.user_attrs["failure"].startswith("engine crashed") for t in failed)
    assert all("h100" in t.params["accelerator"] for t in failed)
    assert len(set(configs(worker.study))) == len(trials)  # a failed configuration is not proposed again
    assert outcome.reason == "every candidate configuration is measured"
    report = summary(worker.campaign, worker.study)
    assert report["failures"][0]["reason"].startswith("engine crashed") and report["spent"]["runs"] == len(trials)


def test_gpu_hour_budget(tmp_path):
    # replay runs cost 1200 s x the record's accelerators: a 2-GPU-hour budget stops early
    worker = Worker(load_campaign(write(tmp_path, budget={"gpu_hours": 2})), workdir=tmp_path / "c")
    outcome = worker.run()
    hours = [t.user_attrs["gpu_hours"] for t in worker.study.get_trials()]
    assert outcome.reason.startswith("GPU-hours budget spent") and sum(hours[:-1]) < 2 <= sum(hours)


def test_another_definition_is_refused_but_the_budget_may_grow(tmp_path):
    Worker(load_campaign(write(tmp_path)), workdir=tmp_path / "c")
    Worker(load_campaign(write(tmp_path, budget={"runs": 20})), workdir=tmp_path / "c")
    with pytest.raises(CampaignError, match="^acquisition: differs from the definition"):
        Worker(load_campaign(write(tmp_path, acquisition="random")), workdir=tmp_path / "c")


def test_xgboost_surrogate_on_the_shipped_replay_campaign(tmp_path):
    """The flexpredict predictor (light settings) learns from the other LLMs and the campaign's measurements."""
    campaign = load_campaign(CAMPAIGNS / "llama2-70b-replay.yaml", budget={"runs": 4}, batch_size=2)
    worker = Worker(campaign, workdir=tmp_path / "c")
    assert len(worker.base) > 300 and not (worker.base["model"] == "llama2-70b").any()
    worker.run()
    assert worker.surrogate.rows["throughput_per_accelerator"] > len(worker.base) // 2
    assert worker.context.predictions["p_feasible"].between(0, 1).all()
    offline = worker.candidates.frame["scenario"] == "Offline"
    assert (worker.context.predictions.loc[offline.to_numpy(), "p_feasible"] == 0).all()  # no TTFT/TPOT there


def test_knob_predictor_learns_knobs_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    seqs = rng.choice([8, 16, 32, 64, 128], 60)
    frame = conform(
        pd.DataFrame(
            {
                "param_seqs": seqs,
                "param_dtype": rng.choice(["bf16", "fp8"], 60),
                "model": "m",
                "run_group": [f"g{i}" for i in range(60)],
            }
        ),
        extra=True,
    )
    y = 100 * np.sqrt(seqs) * np.where(frame["param_dtype"] == "fp8", 1.5, 1.0) * rng.lognormal(0, 0.02, 60)
    predictor = KnobPredictor(columns=("param_seqs", "param_dtype")).fit(frame, y)
    test = conform(pd.DataFrame({"param_seqs": [16, 128], "param_dtype": ["fp8", "bf16"], "model": "m"}), extra=True)
    pred, lo, hi = predictor.predict_interval(test)
    assert pred == pytest.approx([600, 100 * np.sqrt(128)], rel=0.15) and (lo < pred).all() and (pred < hi).all()
    loaded = KnobPredictor.load(predictor.save(tmp_path / "knobs"))
    assert loaded.predict(test) == pytest.approx(predictor.predict(test))


# -- the CLI, and the storage as Optuna and optuna-dashboard see it ----------------------------------------------


def test_cli_create_run_status_export(tmp_path):
    path, folder = write(tmp_path, budget={"runs": 6}), tmp_path / "c"
    result = cli.invoke(app, ["campaign", "create", str(path), "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    candidates = ReplayBackend(load_campaign(path), tmp_path / "probe").candidates()
    assert (
        f"{len(candidates)} candidate configurations, {FAST['initial_trials']} trial(s) in sqlite:///" in result.output
    )
    result = cli.invoke(app, ["campaign", "run", str(path), "--dir", str(folder), "--trials", "4"])
    assert result.exit_code == 0, result.output
    assert "4 trial(s) run here; stopped: ran the 4 trial(s) asked for" in result.output
    result = cli.invoke(app, ["campaign", "run", str(path), "--dir", str(folder)])
    assert "2 trial(s) run here; stopped: runs budget spent (6 of 6)" in result.output
    result = cli.invoke(app, ["campaign", "status", str(path), "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "spent 6 of 6 runs" in result.output and "prediction error of throughput_per_accelerator" in result.output
    assert "held-out" in result.output
    result = cli.invoke(app, ["campaign", "status", str(path), "--dir", str(folder), "--format", "json"])
    report = json.loads(result.output)
    # the knobs predictor has nothing to predict the 2 initial configurations from
    assert report["states"]["complete"] == 6 and report["prediction_error"]["measured_with_prediction"] == 4
    result = cli.invoke(
        app,
        [
            "campaign",
            "export",
            str(path),
            "--dir",
            str(folder),
            "--out",
            str(tmp_path / "out.csv"),
            "--trials",
            str(tmp_path / "trials.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(dataset.load(tmp_path / "out.csv")) == 6
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 6


def test_cli_errors_are_one_line(tmp_path):
    result = cli.invoke(app, ["campaign", "run", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml: no such campaign file" in result.output
    result = cli.invoke(app, ["campaign", "status", str(write(tmp_path)), "--storage", "postgres//x"])
    assert result.exit_code == 2 and "storage: not a database URL" in result.output


def test_status_of_the_latest_campaign_for_reports(tmp_path):
    import flexpredict.campaign

    assert flexpredict.campaign.status(tmp_path) is None
    Worker(load_campaign(write(tmp_path, budget={"runs": 3})), workdir=tmp_path / "mixtral-replay").run()
    report = flexpredict.campaign.status(tmp_path)
    assert report["campaign"] == "mixtral-replay" and report["states"]["complete"] == 3
    assert report["spent"]["runs"] == 3 and report["storage"].endswith("mixtral-replay/study.db")


def test_optuna_and_optuna_dashboard_open_the_storage_unchanged(tmp_path):
    worker = Worker(load_campaign(write(tmp_path, budget={"runs": 4})), workdir=tmp_path / "c")
    worker.run()
    study = optuna.load_study(study_name="mixtral-replay", storage=worker.url)
    assert len(study.trials) == 4 and study.best_trial.user_attrs["record"]["model"] == "mixtral-8x7b"
    assert study.user_attrs["campaign"]["acquisition"] == "uncertainty"
    dashboard = pytest.importorskip("optuna_dashboard")
    application = dashboard.wsgi(worker.url)
    environ, status = {"PATH_INFO": "/api/studies"}, []
    setup_testing_defaults(environ)
    body = b"".join(application(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status == ["200 OK"], environ["wsgi.errors"].getvalue()
    studies = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["mixtral-replay"]
