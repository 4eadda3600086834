"""Many workers, dead workers: two processes sharing one storage (SQLite, and a real PostgreSQL server when this
machine has one), a worker killed with SIGKILL mid-run and the campaign resumed, a retry that dies too.

The replay backend answers after `delay_s`, so runs overlap and a worker can be killed while measuring."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from flexpredict import dataset
from flexpredict.campaign import Worker, load_campaign
from flexpredict.campaign.candidates import config_key
from flexpredict.campaign.study import fail_stale_trials, plain_postgresql, summary

CAMPAIGN = {
    "name": "two-workers",
    "backend": {"kind": "replay", "pool": {"model": "mixtral-8x7b"}, "delay_s": 0.5},
    "space": {
        "accelerator": {"similarity": 0.0},
        "accelerators_per_node": {"similarity": 0.8},
        "precision": {"similarity": 0.5},
        "engine": {"similarity": 0.5},
        "scenario": {"similarity": 0.3},
    },
    "objective": {"metric": "throughput_per_accelerator"},
    "budget": {"runs": 10},
    "batch_size": 2,
    "initial_trials": 2,
    "predictor": "knobs",
    "heartbeat_interval": 1,
    "grace_period": 2,
}


def write(folder: Path, **changes) -> Path:
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump({**CAMPAIGN, **changes}))
    return path


def start_worker(path: Path, folder: Path, *extra: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"worker-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flexpredict.cli", "campaign", "run", str(path), "--dir", str(folder), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
    worker.log = log
    return worker


def finish(worker: subprocess.Popen, timeout: float = 120) -> str:
    assert worker.wait(timeout) == 0, worker.log.read_text()
    return worker.log.read_text()


def trials_run_here(output: str) -> int:
    return int(output.rsplit(" trial(s) run here", 1)[0].split()[-1])


def assert_each_configuration_once(study) -> None:
    measured = [config_key(t.params) for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(measured) == len(set(measured))


def test_two_worker_processes_share_one_sqlite_storage(tmp_path):
    path = write(tmp_path)
    Worker(load_campaign(path), workdir=tmp_path)  # `campaign create`: the study exists before workers race
    workers = [start_worker(path, tmp_path, "--seed", str(seed)) for seed in (1, 2)]
    outputs = [finish(w) for w in workers]
    counts = [trials_run_here(out) for out in outputs]
    assert sum(counts) == 10 and min(counts) >= 1, outputs  # both worked, the budget held
    study = optuna.load_study(study_name="two-workers", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 10
    assert_each_configuration_once(study)
    saved = dataset.load(tmp_path / "records.parquet")  # both appended to one file, under its lock
    assert len(saved) == 10 and saved["record_id"].is_unique


def running_labelled(trial) -> bool:
    return trial.state == TrialState.RUNNING and "acquisition" in trial.user_attrs


def test_killed_worker_is_detected_retried_once_and_resume_loses_nothing(tmp_path):
    path = write(tmp_path, name="kill-resume", budget={"runs": 6}, backend={**CAMPAIGN["backend"], "delay_s": 1.5})
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    worker = start_worker(path, tmp_path)
    deadline = time.monotonic() + 90
    while True:  # kill it while it measures, after it finished two measurements
        assert time.monotonic() < deadline and worker.poll() is None, worker.log.read_text()
        try:
            trials = optuna.load_study(study_name="kill-resume", storage=storage).get_trials()
        except KeyError:  # the study is not created yet
            trials = []
        states = [t.state for t in trials]
        # a running trial that is labelled (asked, parameters and first heartbeat written, then the label)
        if states.count(TrialState.COMPLETE) >= 2 and any(running_labelled(t) for t in trials):
            break
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed = next(t for t in trials if running_labelled(t))
    before = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}

    resumed = Worker(load_campaign(path), workdir=tmp_path)
    waits = []
    outcome = resumed.run(on_wait=waits.append)
    study = resumed.study
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed.number].state == TrialState.FAIL and "failure" not in trials[killed.number].user_attrs
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == killed.params
    assert retry[0].user_attrs["acquisition"] == "retry"
    assert {n: trials[n].value for n in before} == before  # every finished measurement kept
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and outcome.reason == "runs budget spent (6 of 6)"
    assert_each_configuration_once(study)
    saved = dataset.load(tmp_path / "records.parquet")
    assert sorted(saved["record_id"]) == sorted(t.user_attrs["record"]["record_id"] for t in complete)
    assert summary(resumed.campaign, study)["retries"] == [
        {"trial": retry[0].number, "retry_of": killed.number, "state": "complete"}
    ]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_worker_killed_between_asking_and_measuring_leaves_a_trial_that_is_retried(tmp_path):
    """A trial is beating from the moment it is asked: a worker dead before its measurement started (the race the
    SIGKILL test could hit) leaves a trial another worker finds stale and retries, instead of waiting on it forever."""
    campaign = load_campaign(write(tmp_path, name="dies-after-ask", budget={"runs": 3}))
    abandoned = Worker(campaign, workdir=tmp_path)
    abandoned.refit()
    trial = abandoned._ask()  # ... and the worker dies here: no measurement, no heartbeat thread
    time.sleep(campaign.grace_period + 1)
    resumed = Worker(campaign, workdir=tmp_path)
    outcome = resumed.run()
    trials = {t.number: t for t in resumed.study.get_trials()}
    assert trials[trial.number].state == TrialState.FAIL
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == trial.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == trial.params
    assert outcome.reason == "runs budget spent (3 of 3)"


def test_a_retry_that_dies_too_is_not_retried_again(tmp_path):
    worker = Worker(load_campaign(write(tmp_path, name="dies-twice")), workdir=tmp_path)
    study, storage = worker.study, worker.storage

    def die_while_running() -> optuna.Trial:
        trial = study.ask(dict(worker.candidates.distributions))  # a queued trial when there is one
        storage.record_heartbeat(trial._trial_id)
        time.sleep(worker.campaign.grace_period + 1)
        fail_stale_trials(study)
        return trial

    first = die_while_running()
    queued = study.get_trials(states=(TrialState.WAITING,))
    retry = [t for t in queued if t.system_attrs.get("failed_trial") == first.number]
    assert len(retry) == 1
    while study.get_trials(states=(TrialState.WAITING,))[0].number != retry[0].number:
        study.tell(study.ask(), state=TrialState.FAIL)  # the initial trials queued before it
    second = die_while_running()
    assert second.number == retry[0].number
    assert study.get_trials(states=(TrialState.WAITING,)) == []
    assert [t.state for t in study.get_trials() if t.number in (first.number, second.number)] == [TrialState.FAIL] * 2


# -- PostgreSQL --------------------------------------------------------------------------------------------------


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb into a temporary folder), stopped after the tests."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        no_postgres_user = subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode
        if shutil.which("runuser") is None or no_postgres_user:
            pytest.skip("running as root without a 'postgres' user to run the server as")
        run_as = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="flexpredict-pg-"))
    folder.chmod(0o777)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(
        [*run_as, initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *run_as,
            pg_ctl,
            "-D",
            str(folder / "data"),
            "-o",
            f"-k {folder} -p {port} -h 127.0.0.1",
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True, check=False
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgresql_storage(tmp_path, postgres_url):
    path = write(tmp_path, name="on-postgres", budget={"runs": 8}, backend={**CAMPAIGN["backend"], "delay_s": 0.3})
    Worker(load_campaign(path), storage=postgres_url, workdir=tmp_path)
    # two machines: each its own folder, one storage
    workers = [
        start_worker(path, tmp_path / f"machine-{i}", "--storage", postgres_url, "--seed", str(i)) for i in (1, 2)
    ]
    counts = [trials_run_here(finish(w)) for w in workers]
    assert sum(counts) == 8 and min(counts) >= 1
    study = optuna.load_study(study_name="on-postgres", storage=plain_postgresql(postgres_url))  # as workers do
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 8
    assert_each_configuration_once(study)
    local = [len(dataset.load(tmp_path / f"machine-{i}" / "records.parquet")) for i in (1, 2)]
    assert local == counts  # each machine appends what it measured; `campaign export` gathers all
