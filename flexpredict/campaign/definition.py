"""A campaign definition: YAML (experiments/campaigns/*.yaml) in, frozen dataclasses out.

Every mistake is one line naming the field (`space.max_num_seqs.values: ...`), so a typo is found before a GPU hour
is spent.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

DIRECTIONS = ("maximize", "minimize")
PREDICTORS = ("xgboost", "knobs", "transfer")
MAX_CANDIDATES = 50_000


class CampaignError(ValueError):
    """A campaign that cannot run as written; the message names the field."""


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space: a finite set of values (empty: the backend's candidates say)."""

    name: str
    values: tuple = ()
    similarity: float = 0.5
    """How much a measurement at a neighbouring value tells about this one (0: nothing, 1: everything); steps
    multiply for ordered numbers. The uncertainty and improvement acquisitions spread a measurement's information
    (and keep a batch diverse) with it."""
    log: bool = False
    """Numbers spread geometrically: TPE/GP and the nearest-candidate match work on their logarithm."""


@dataclass(frozen=True)
class Objective:
    metric: str = "throughput_per_accelerator"
    direction: Literal["maximize", "minimize"] = "maximize"
    slo: dict[str, float] = field(default_factory=dict)
    """Upper bounds (ms) on p99 latency metrics; a configuration missing one is not feasible."""
    target_error: float | None = None
    """The median absolute percentage error of `metric` predictions the campaign aims for (0.15 = 15 %)."""


@dataclass(frozen=True)
class Budget:
    runs: int | None = None
    gpu_hours: float | None = None
    usd: float | None = None
    usd_per_accelerator_hour: float | None = None


@dataclass(frozen=True)
class Campaign:
    name: str
    backend: str
    backend_options: dict
    space: tuple[Parameter, ...]
    objective: Objective
    budget: Budget
    acquisition: str = "uncertainty"
    batch_size: int = 4
    initial_trials: int = 4
    """Random configurations measured before the first fit (the same ones for every acquisition with one seed)."""
    seed: int = 0
    predictor: str = "xgboost"
    """xgboost: flexpredict's predictor (measured priors, physics), for campaigns across hardware, models and
    precisions; knobs: trees on the search-space parameters, for engine knobs the xgboost priors cannot see;
    transfer: xgboost fitted once on the base records, corrected by what the campaign measured (a new part)."""
    predictor_params: dict = field(default_factory=dict)
    storage: str | None = None
    """Optuna RDB URL; default: a SQLite file in the campaign folder."""
    heartbeat_interval: int = 60
    grace_period: int = 180
    source: Path | None = None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.space)

    def metrics(self) -> tuple[str, ...]:
        """The objective metric and every SLO metric: what the surrogate predicts."""
        return (self.objective.metric, *[m for m in self.objective.slo if m != self.objective.metric])

    def document(self) -> dict:
        """The definition as plain data (stored in the study: a worker with another definition is refused)."""
        data = asdict(self)
        data.pop("source")
        data.pop("storage")
        data["space"] = [{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()} for p in data["space"]]
        return data


def from_document(data: dict) -> Campaign:
    """The inverse of Campaign.document: the definition a study was created with."""
    return Campaign(
        **{
            **data,
            "space": tuple(Parameter(p["name"], tuple(p["values"]), p["similarity"], p["log"]) for p in data["space"]),
            "objective": Objective(**data["objective"]),
            "budget": Budget(**data["budget"]),
        }
    )


def load_campaign(path: Path | str, **overrides) -> Campaign:
    """Read a campaign YAML; `overrides` replace top-level fields (e.g. acquisition='random', seed=3)."""
    path = Path(path)
    if not path.is_file():
        raise CampaignError(f"{path}: no such campaign file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CampaignError(f"{path}: expected a mapping of campaign fields")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return parse_campaign(data, source=path)
    except CampaignError as exc:
        raise CampaignError(f"{path}: {exc}") from None


_TOP = {
    "name",
    "description",
    "backend",
    "space",
    "objective",
    "budget",
    "acquisition",
    "batch_size",
    "initial_trials",
    "seed",
    "predictor",
    "predictor_params",
    "storage",
    "heartbeat_interval",
    "grace_period",
}


def parse_campaign(data: dict, source: Path | None = None) -> Campaign:
    _unknown(data, _TOP, "")
    name = _text(data, "name", "")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CampaignError(f"name: use letters, digits, '-', '_' and '.' only, got '{name}'")
    backend = data.get("backend")
    if not isinstance(backend, dict) or not isinstance(backend.get("kind"), str):
        raise CampaignError("backend: expected a mapping with 'kind' (replay or bench) and its options")
    options = {k: v for k, v in backend.items() if k != "kind"}
    campaign = Campaign(
        name=name,
        backend=backend["kind"],
        backend_options=options,
        space=_space(data.get("space")),
        objective=_objective(data.get("objective") or {}),
        budget=_budget(data.get("budget")),
        acquisition=_choice(data, "acquisition", _acquisitions(), "uncertainty"),
        batch_size=_positive_int(data, "batch_size", 4),
        initial_trials=_count(data, "initial_trials", 4),
        seed=_int(data, "seed", 0),
        predictor=_choice(data, "predictor", PREDICTORS, "xgboost"),
        predictor_params=_mapping(data, "predictor_params"),
        storage=data.get("storage"),
        heartbeat_interval=_positive_int(data, "heartbeat_interval", 60),
        grace_period=_positive_int(data, "grace_period", 180),
        source=source,
    )
    if campaign.grace_period <= campaign.heartbeat_interval:
        raise CampaignError(
            f"grace_period: must exceed heartbeat_interval ({campaign.heartbeat_interval} s), got "
            f"{campaign.grace_period}"
        )
    return campaign


def _space(raw) -> tuple[Parameter, ...]:
    if not isinstance(raw, dict) or not raw:
        raise CampaignError("space: expected a mapping of parameter name -> values or {values|low/high, ...}")
    out, size = [], 1
    for name, spec in raw.items():
        where = f"space.{name}"
        if isinstance(spec, list):
            spec = {"values": spec}
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise CampaignError(
                f"{where}: expected a list of values or a mapping (values, low/high/step|factor, similarity, log)"
            )
        _unknown(spec, {"values", "low", "high", "step", "factor", "similarity", "log"}, where + ".")
        values = _values(spec, where)
        similarity = spec.get("similarity", 0.5)
        if not isinstance(similarity, (int, float)) or not 0 <= similarity <= 1:
            raise CampaignError(f"{where}.similarity: expected a number from 0 to 1, got {similarity!r}")
        log = spec.get("log", "factor" in spec)
        if log and values and not all(isinstance(v, (int, float)) and v > 0 for v in values):
            raise CampaignError(f"{where}.log: needs positive numbers")
        out.append(Parameter(str(name), values, float(similarity), bool(log)))
        size *= max(len(values), 1)
    if size > MAX_CANDIDATES:
        raise CampaignError(f"space: {size:,} combinations; at most {MAX_CANDIDATES:,} (fewer values per parameter)")
    return tuple(out)


def _values(spec: dict, where: str) -> tuple:
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise CampaignError(f"{where}.values: expected a non-empty list")
        if len({repr(v) for v in values}) != len(values):
            raise CampaignError(f"{where}.values: lists a value twice")
        return tuple(values)
    if "low" not in spec and "high" not in spec:
        return ()  # the backend's candidates give the values (replay)
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    if not all(isinstance(v, (int, float)) for v in (low, high)) or low > high:
        raise CampaignError(f"{where}: expected numbers low <= high, got low={low!r} high={high!r}")
    integer = isinstance(low, int) and isinstance(high, int)
    if "factor" in spec:
        factor = spec["factor"]
        if not isinstance(factor, (int, float)) or factor <= 1 or low <= 0:
            raise CampaignError(f"{where}.factor: expected a number > 1 with low > 0, got {factor!r}")
        count = math.floor(math.log(high / low) / math.log(factor) + 1e-9) + 1
        values = [low * factor**i for i in range(count)]
    else:
        step = spec.get("step", 1 if integer else None)
        if not isinstance(step, (int, float)) or step <= 0:
            raise CampaignError(f"{where}.step: expected a positive number (a float range needs one)")
        values = [low + step * i for i in range(math.floor((high - low) / step + 1e-9) + 1)]
    return tuple(round(v) if integer else round(float(v), 10) for v in values)


def _objective(raw) -> Objective:
    if not isinstance(raw, dict):
        raise CampaignError("objective: expected a mapping (metric, direction, slo, target_error)")
    _unknown(raw, {"metric", "direction", "slo", "target_error"}, "objective.")
    metric = raw.get("metric", "throughput_per_accelerator")
    _metric(metric, "objective.metric")
    slo = raw.get("slo") or {}
    if not isinstance(slo, dict):
        raise CampaignError("objective.slo: expected a mapping of metric -> upper bound in ms")
    for key, bound in slo.items():
        _metric(key, f"objective.slo.{key}")
        if not isinstance(bound, (int, float)) or bound <= 0:
            raise CampaignError(f"objective.slo.{key}: expected a positive bound in ms, got {bound!r}")
    target = raw.get("target_error")
    if target is not None and (not isinstance(target, (int, float)) or not 0 < target < 1):
        raise CampaignError(
            f"objective.target_error: expected a fraction between 0 and 1 (0.15 = 15 %), got {target!r}"
        )
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise CampaignError(f"objective.direction: expected maximize or minimize, got {direction!r}")
    return Objective(metric, direction, {k: float(v) for k, v in slo.items()}, target)


def _metric(name, where: str) -> None:
    from ..predictors.targets import TARGETS

    if name not in TARGETS:
        close = difflib.get_close_matches(str(name), list(TARGETS), n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(TARGETS)})"
        raise CampaignError(f"{where}: unknown metric '{name}'{hint}")


def _budget(raw) -> Budget:
    if not isinstance(raw, dict) or not raw:
        raise CampaignError("budget: expected a mapping with runs, gpu_hours and/or usd")
    _unknown(raw, {"runs", "gpu_hours", "usd", "usd_per_accelerator_hour"}, "budget.")
    for key, value in raw.items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise CampaignError(f"budget.{key}: expected a positive number, got {value!r}")
    if not {"runs", "gpu_hours", "usd"} & set(raw):
        raise CampaignError("budget: set runs, gpu_hours or usd")
    if "usd" in raw and "usd_per_accelerator_hour" not in raw:
        raise CampaignError("budget.usd_per_accelerator_hour: needed to spend a budget in usd")
    runs = raw.get("runs")
    if runs is not None and runs != int(runs):
        raise CampaignError(f"budget.runs: expected a whole number, got {runs!r}")
    return Budget(
        int(runs) if runs is not None else None,
        raw.get("gpu_hours"),
        raw.get("usd"),
        raw.get("usd_per_accelerator_hour"),
    )


def _unknown(data: dict, known: set[str], prefix: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(sorted(known))})"
            raise CampaignError(f"{prefix}{key}: unknown field{hint}")


def _text(data: dict, key: str, prefix: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CampaignError(f"{prefix}{key}: expected text, got {value!r}")
    return value


def _int(data: dict, key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CampaignError(f"{key}: expected a whole number, got {value!r}")
    return value


def _positive_int(data: dict, key: str, default: int) -> int:
    value = _int(data, key, default)
    if value < 1:
        raise CampaignError(f"{key}: expected a whole number >= 1, got {value!r}")
    return value


def _count(data: dict, key: str, default: int) -> int:
    value = _int(data, key, default)
    if value < 0:
        raise CampaignError(f"{key}: expected a whole number >= 0, got {value!r}")
    return value


def _acquisitions() -> tuple[str, ...]:
    from .acquisition import ACQUISITIONS

    return tuple(ACQUISITIONS)


def _choice(data: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise CampaignError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise CampaignError(f"{key}: expected a mapping")
    return dict(value)
