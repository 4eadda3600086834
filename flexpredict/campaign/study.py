"""The campaign's Optuna study: storage, heartbeat and retry, the proposal lock, and what its trials hold.

Storage is an Optuna RDBStorage: a SQLite file by default, any PostgreSQL or MySQL URL for workers on many
machines. Optuna's heartbeat is RDB-only (JournalStorage has none), hence RDB. A worker killed mid-run stops beating;
`fail_stale_trials` (run before every ask, by any worker) fails its trial after the grace period and Optuna's
`RetryHeartbeatStaleTrialCallback(max_retry=1)` queues the same configuration once more. Optuna's own heartbeat
thread runs only inside `Study.optimize`; a campaign worker uses ask/tell (it must ask under the proposal lock, after
checking the budget), so it beats with `RDBStorage.record_heartbeat` itself.

Each trial keeps, as user attributes: `record` (the schema record it measured), `failure` (why the run failed),
`predicted` ({metric: [median, low, high]} before measuring), `acquisition`, `seconds`, `gpu_hours`, `usd`; and
Optuna constraints (`Trial.set_constraint`, one per SLO metric: value - bound, <= 0 when met).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import optuna
import pandas as pd
from optuna.exceptions import ExperimentalWarning
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from ..io import plain
from ..schema import conform
from .acquisition.base import trial_params
from .candidates import param_column
from .definition import Campaign, CampaignError, from_document

RETRIES = 1
"""A trial whose worker died is measured once more; a second death leaves it failed."""


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'study.db').absolute()}"


def open_storage(url: str, campaign: Campaign, *, read_only: bool = False) -> optuna.storages.RDBStorage:
    """The RDB storage with the campaign's heartbeat and the retry-once callback; one-line errors.

    `read_only` (status, export): a SQLite file must exist and is opened read-only; nothing is created.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CampaignError(
            f"storage: not a database URL: '{url}' (e.g. sqlite:///study.db, postgresql://user@host/db)"
        ) from None
    dialect = parsed.get_backend_name()
    if dialect not in ("sqlite", "postgresql", "mysql"):
        raise CampaignError(f"storage: use SQLite, PostgreSQL or MySQL, got '{dialect}'")
    url = plain_postgresql(url)
    # SQLite: wait for a busy database instead of failing ("database is locked", optuna#820)
    engine_kwargs = {"connect_args": {"timeout": 60}} if dialect == "sqlite" else {"pool_pre_ping": True}
    if dialect == "sqlite":
        url = _sqlite_url(Path(parsed.database or "study.db"), read_only)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=campaign.heartbeat_interval,
                grace_period=campaign.grace_period,
                skip_table_creation=read_only,
                # readers only select: Optuna's schema check loads alembic (~0.5 s) and a reader cannot migrate
                skip_compatibility_check=read_only,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
            )
    except ImportError:
        driver = {"postgresql": "psycopg2-binary", "mysql": "PyMySQL"}.get(dialect, dialect)
        raise CampaignError(f"storage: the {dialect} driver is not installed (pip install {driver})") from None
    except SQLAlchemyError as exc:
        raise CampaignError(f"storage: cannot open {safe_url(url)} ({_first_line(exc)})") from None


def plain_postgresql(url: str) -> str:
    """`postgresql://` as the docs write it: SQLAlchemy 2.1 reads it as psycopg (v3); without that driver, use
    the installed psycopg2 instead of failing."""
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return url
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _sqlite_url(database: Path, read_only: bool) -> str:
    """A SQLite file: created (with its folder) for writers; for readers it must exist and is opened read-only."""
    if not read_only:
        folder = database.absolute().parent
        if not folder.exists():
            raise CampaignError(f"storage: folder {folder} does not exist (create it, or use --dir)")
        if not os.access(folder, os.W_OK) or (database.exists() and not os.access(database, os.W_OK)):
            raise CampaignError(f"storage: {database} is read-only (workers write their trials there)")
        return f"sqlite:///{database.absolute()}"
    if not database.is_file():
        raise CampaignError(f"storage: no campaign study at {database} (run `flexpredict campaign create` first)")
    return f"sqlite:///file:{database.absolute()}?mode=ro&uri=true"


def load_existing_study(campaign: Campaign, storage: optuna.storages.RDBStorage) -> optuna.Study:
    """The campaign's study as stored, for readers: never created, never written."""
    try:
        return optuna.load_study(study_name=campaign.name, storage=storage)
    except KeyError:
        raise CampaignError(
            f"storage: no campaign '{campaign.name}' in {safe_url(storage.url)} (run `flexpredict "
            "campaign create` first)"
        ) from None


def _first_line(exc) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [exc.__class__.__name__])[0][:200]


def open_study(campaign: Campaign, storage: optuna.storages.RDBStorage, sampler=None) -> optuna.Study:
    """The campaign's study, created on first use; refused when it was created from another definition (the budget
    may grow: a campaign can be extended)."""
    direction = campaign.objective.direction
    study = optuna.create_study(
        storage=storage, study_name=campaign.name, direction=direction, sampler=sampler, load_if_exists=True
    )
    stored = study.user_attrs.get("campaign")
    mine = json.loads(json.dumps(campaign.document()))
    if stored is None:
        study.set_user_attr("campaign", mine)
        return study
    differing = [k for k in sorted(set(stored) | set(mine)) if k != "budget" and stored.get(k) != mine.get(k)]
    if differing:
        raise CampaignError(
            f"{differing[0]}: differs from the definition this campaign's study was created with "
            "(use another name for another campaign)"
        )
    return study


@contextmanager
def proposal_lock(storage: optuna.storages.RDBStorage, name: str):
    """Serialise "check the budget, choose a configuration, write it" across workers: a file lock beside a SQLite
    database, a PostgreSQL advisory lock or a MySQL named lock on the shared server."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    url = make_url(storage.url)
    dialect = url.get_backend_name()
    if dialect == "sqlite":
        with file_lock(Path(url.database or "memory").with_suffix(".lock")):
            yield
        return
    key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big") % (2**63)
    acquire, release = {
        "postgresql": ("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"),
        "mysql": ("SELECT GET_LOCK(:n, 600)", "SELECT RELEASE_LOCK(:n)"),
    }[dialect]
    with storage.engine.connect() as connection:
        connection.execute(text(acquire), {"k": key, "n": f"flexpredict-{name}"})
        try:
            yield
        finally:
            connection.execute(text(release), {"k": key, "n": f"flexpredict-{name}"})


@contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes of one machine (also guards the campaign's dataset file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Heartbeat:
    """Records a running trial's heartbeat every heartbeat_interval seconds until stopped."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stop.wait(self.storage.heartbeat_interval):
            self.storage.record_heartbeat(self.trial_id)


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


# -- what the trials hold ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spending:
    runs: int
    gpu_hours: float
    usd: float

    def exhausted(self, campaign: Campaign) -> str | None:
        """Which budget is spent (None while every one has room)."""
        budget = campaign.budget
        for name, spent, limit in (
            ("runs", self.runs, budget.runs),
            ("GPU-hours", self.gpu_hours, budget.gpu_hours),
            ("USD", self.usd, budget.usd),
        ):
            if limit is not None and spent >= limit - 1e-12:
                return f"{name} budget spent ({spent:.4g} of {limit:g})"
        return None


def spending(trials) -> Spending:
    """Runs that used the machine: measured, failed while measuring, or running now (a running trial is counted
    at the mean cost of the finished ones). A worker's death is not a run: its retry is."""
    used = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "failure" in t.user_attrs)
    ]
    running = sum(t.state == TrialState.RUNNING for t in trials)
    hours = [t.user_attrs.get("gpu_hours", 0.0) for t in used]
    dollars = [t.user_attrs.get("usd", 0.0) for t in used]
    mean_hours = float(np.mean(hours)) if hours else 0.0
    mean_usd = float(np.mean(dollars)) if dollars else 0.0
    return Spending(len(used) + running, sum(hours) + running * mean_hours, sum(dollars) + running * mean_usd)


def measured_records(trials, parameters: tuple[str, ...]) -> pd.DataFrame:
    """Schema records of the measured trials, with their parameters as param_<name> columns."""
    rows = []
    for trial in trials:
        if trial.state == TrialState.COMPLETE and "record" in trial.user_attrs:
            row = dict(trial.user_attrs["record"])
            row.update({param_column(p): trial.params.get(p) for p in parameters})
            rows.append(row)
    return conform(pd.DataFrame(rows), extra=True)


def with_parameters(records: pd.DataFrame, parameters: tuple[str, ...], values: pd.DataFrame | None = None):
    """Records with param_<name> columns: the given values, else the record column of that name when there is one."""
    out = records.reset_index(drop=True).copy()
    for p in parameters:
        if values is not None:
            out[param_column(p)] = values[p].to_numpy()
        elif param_column(p) not in out:
            out[param_column(p)] = out.get(p)
    return out


def prediction_errors(trials, metric: str) -> list[tuple[int, float]]:
    """(trial number, |predicted / measured - 1|) of measured trials that had a prediction before measuring:
    the campaign's honest (prequential) prediction error."""
    out = []
    for trial in trials:
        predicted = (trial.user_attrs.get("predicted") or {}).get(metric)
        measured = (trial.user_attrs.get("record") or {}).get(metric)
        if trial.state == TrialState.COMPLETE and predicted and predicted[0] and measured:
            out.append((trial.number, abs(predicted[0] / measured - 1)))
    return out


def constraint_values(record: dict, slo: dict[str, float]) -> dict[str, float]:
    """value - bound per SLO metric (<= 0: met); a metric the run did not report counts as broken."""
    return {
        m: float(record[m]) - bound if plain(record.get(m)) is not None else float(bound) for m, bound in slo.items()
    }


def summary(campaign: Campaign, study: optuna.Study, top: int = 5) -> dict:
    """What `campaign status` shows: progress, spending, failures, retries, the best configurations, errors."""
    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    spent = spending(trials)
    failures = [
        {"trial": t.number, "params": trial_params(t), "reason": t.user_attrs["failure"]}
        for t in trials
        if t.state == TrialState.FAIL and "failure" in t.user_attrs
    ]
    retried = [
        {"trial": t.number, "retry_of": t.system_attrs["failed_trial"], "state": t.state.name.lower()}
        for t in trials
        if "failed_trial" in t.system_attrs
    ]
    feasible = [t for t in trials if t.state == TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())]
    feasible.sort(key=lambda t: cast(float, t.value), reverse=campaign.objective.direction == "maximize")
    best = [
        {
            "trial": t.number,
            "params": t.params,
            campaign.objective.metric: t.value,
            **{m: (t.user_attrs.get("record") or {}).get(m) for m in campaign.objective.slo},
            "acquisition": t.user_attrs.get("acquisition"),
        }
        for t in feasible[:top]
    ]
    errors = prediction_errors(trials, campaign.objective.metric)
    last = [e for _, e in errors[-campaign.batch_size :]]
    budget = {
        k: v
        for k, v in (
            ("runs", campaign.budget.runs),
            ("gpu_hours", campaign.budget.gpu_hours),
            ("usd", campaign.budget.usd),
        )
        if v is not None
    }
    return {
        "campaign": campaign.name,
        "acquisition": campaign.acquisition,
        "states": states,
        "stale": stale_trials(study),
        "spent": {"runs": spent.runs, "gpu_hours": round(spent.gpu_hours, 4), "usd": round(spent.usd, 2)},
        "budget": budget,
        "exhausted": spent.exhausted(campaign),
        "best": best,
        "failures": failures,
        "retries": retried,
        "metric": campaign.objective.metric,
        "slo": campaign.objective.slo,
        "prediction_error": {
            "measured_with_prediction": len(errors),
            "mdape_all": float(np.median([e for _, e in errors])) if errors else None,
            "mdape_last_batch": float(np.median(last)) if last else None,
            "target": campaign.objective.target_error,
        },
    }


def stale_trials(study: optuna.Study) -> list[int]:
    """Numbers of running trials whose worker stopped beating for longer than the grace period (Optuna's own test;
    a worker fails and requeues them on its next step)."""
    storage = study._storage
    # a storage opened without the campaign's heartbeat gives nothing to judge by
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return []
    stale = set(storage._get_stale_trial_ids(study._study_id))
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id in stale]


def status(root: Path | str = Path("runs") / "campaigns") -> dict | None:
    """`summary` of the campaign most recently active under `root` (its SQLite study, read with the definition it
    was created with), for reports; None when there is none."""
    studies = sorted(Path(root).glob("*/study.db"), key=lambda path: path.stat().st_mtime)
    if not studies:
        return None
    url = default_storage(studies[-1].parent)
    name = optuna.get_all_study_names(url)[0]
    study = optuna.load_study(study_name=name, storage=url)
    return {**summary(from_document(study.user_attrs["campaign"]), study), "storage": url}


def safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
