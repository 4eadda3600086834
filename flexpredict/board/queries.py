"""What the board's pages ask of the dataset, the predictors, the recommender and the campaign storage.

Pure functions over the library's public API (the one the CLI calls), so the board shows the CLI's numbers and the
pages stay thin enough to test without a browser. Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

FILTERS = {
    "round": "Round",
    "division": "Division",
    "model": "Model",
    "scenario": "Scenario",
    "accelerator": "Accelerator",
    "accelerator_vendor": "Vendor",
    "engine": "Engine",
    "precision": "Precision",
}
METRICS = {
    "throughput_per_accelerator": "throughput per accelerator",
    "latency_p99_ms": "p99 latency (ms)",
    "ttft_p99_ms": "p99 TTFT (ms)",
    "tpot_p99_ms": "p99 TPOT (ms)",
    "power_w": "system power (W)",
}
TABLE_COLUMNS = (
    "source",
    "record_id",
    "round",
    "division",
    "submitter",
    "system_name",
    "model",
    "scenario",
    "accelerator",
    "accelerator_vendor",
    "accelerators_total",
    "engine",
    "precision",
    "throughput",
    "throughput_unit",
    "throughput_per_accelerator",
    "latency_p99_ms",
    "ttft_p99_ms",
    "tpot_p99_ms",
    "power_w",
)
UPLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NEAREST_KEYS = ("accelerator", "precision", "engine")  # what a measured run must share to count as close


class BoardInputError(ValueError):
    """A form value the board cannot use; the page shows the message inline."""


# -- dataset -----------------------------------------------------------------------------------------------------


def filter_choices(records: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter offers, sorted."""
    return {column: sorted(records[column].dropna().astype(str).unique()) for column in FILTERS}


def filter_records(records: pd.DataFrame, selection: dict[str, list[str]]) -> pd.DataFrame:
    """Records whose columns take one of the selected values; an empty selection keeps every value."""
    keep = pd.Series(True, index=records.index)
    for column, values in selection.items():
        if values:
            keep &= records[column].astype(str).isin(values)
    return records[keep]


def per_accelerator(records: pd.DataFrame, metric: str, limit: int = 25) -> pd.DataFrame:
    """Median, quartiles and run count of a metric per accelerator, the most-measured accelerators first."""
    values = pd.to_numeric(records[metric], errors="coerce")
    frame = pd.DataFrame({"accelerator": records["accelerator"].fillna(records["accelerator_raw"]), "value": values})
    frame = frame[frame["value"] > 0]
    grouped = frame.groupby("accelerator", observed=True)["value"]
    table = pd.DataFrame(
        {"median": grouped.median(), "q1": grouped.quantile(0.25), "q3": grouped.quantile(0.75), "runs": grouped.size()}
    ).reset_index()
    return table.sort_values(["runs", "median"], ascending=False).head(limit).reset_index(drop=True)


def records_table(records: pd.DataFrame) -> pd.DataFrame:
    """The records with their provenance (source file) first."""
    return records[[c for c in TABLE_COLUMNS if c in records.columns]].reset_index(drop=True)


# -- predict -----------------------------------------------------------------------------------------------------


def model_argument(choice: str, uploaded: bytes | None, name: str, folder: Path) -> str:
    """What `predict --model` would get: the catalog id, or the path of an uploaded Hugging Face config.json,
    written into `folder`/`name`/ (the model is named after its folder, as for a downloaded model)."""
    if uploaded is None:
        return choice
    if not UPLOAD_NAME.fullmatch(name):
        raise BoardInputError(f"model name: expected letters, digits, '.', '-' or '_', got '{name}'")
    try:
        document = json.loads(uploaded)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoardInputError(f"config.json: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BoardInputError("config.json: expected a JSON object (a Hugging Face model config)")
    path = Path(folder) / name / "config.json"
    path.parent.mkdir()
    path.write_bytes(uploaded)
    return str(path)


def configuration(
    accelerator: str, count: int, nodes: int, model: str, scenario: str, precision: str | None, engine: str | None
) -> pd.DataFrame:
    """One configuration as a schema record, as `flexpredict predict --accelerator ...` builds it."""
    from ..configs import ConfigError, config_records
    from ..normalize import scenario as canonical_scenario

    if count < 1 or nodes < 1:
        raise BoardInputError(f"count and nodes: expected at least 1, got {count} x {nodes}")
    try:
        return config_records(
            [
                {
                    "accelerator": accelerator,
                    "count": count,
                    "nodes": nodes,
                    "model": model,
                    "scenario": canonical_scenario(scenario),
                    "precision": precision,
                    "engine": engine,
                }
            ]
        )
    except ConfigError as exc:
        raise BoardInputError(str(exc)) from None


def prediction_rows(bundle, record: pd.DataFrame) -> pd.DataFrame:
    """Every target the bundle predicts for the record, with its 90 % interval (the rows `predict` prints)."""
    from ..predictors import TARGETS

    prediction = bundle.predict(record).iloc[0]
    rows = [
        {
            "target": name,
            "prediction": prediction[f"pred_{name}"],
            "low": prediction[f"pred_{name}_lo"],
            "high": prediction[f"pred_{name}_hi"],
            "unit": TARGETS[name].unit,
            "out of distribution": bool(prediction[f"ood_{name}"]),
        }
        for name in bundle.predictors
        if pd.notna(prediction[f"pred_{name}"])
    ]
    return pd.DataFrame(rows, columns=["target", "prediction", "low", "high", "unit", "out of distribution"])


def nearest_runs(records: pd.DataFrame, record: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """Measured runs of the same model and scenario, closest first: fewest differences in accelerator, precision
    and engine (those the configuration sets), then the nearest accelerator count (in factors of two)."""
    wanted = record.iloc[0]
    same = records[
        (records["model"] == wanted["model"])
        & (records["scenario"] == wanted["scenario"])
        & records["throughput_per_accelerator"].notna()
    ]
    if same.empty:
        return records_table(same).assign(differences=pd.Series(dtype="float64"))
    keys = [key for key in NEAREST_KEYS if pd.notna(wanted[key])]  # an unset engine or precision matches any
    differences = sum((same[key].astype(str) != str(wanted[key])).astype(int) for key in keys)
    counts = pd.to_numeric(same["accelerators_total"], errors="coerce").astype("float64")
    # the count only orders runs with as many differences: its term stays below one
    distance = differences + np.abs(np.log2(counts / float(wanted["accelerators_total"]))).clip(upper=7).fillna(7) / 8
    order = distance.sort_values(kind="stable").index[:limit]
    return records_table(same.loc[order]).assign(differences=differences.loc[order].to_numpy())


# -- recommend ---------------------------------------------------------------------------------------------------


def ranked_table(result) -> pd.DataFrame:
    """The ranked table exactly as `flexpredict recommend --format csv` prints it."""
    from ..commands.recommend import _rows

    return _rows(result)


def pareto_points(result) -> pd.DataFrame:
    """Every scored candidate with a cost and a throughput: whether it qualifies, whether a matching MLPerf run was
    measured or the prediction transfers from related ones, and whether it lies on the qualifying Pareto front."""
    from ..plots import pareto_front

    frame = result.candidates
    if frame.empty:
        return pd.DataFrame(columns=["configuration", "usd_per_hour", "throughput", "origin", "qualifies", "front"])
    frame = frame[frame["throughput"].notna() & frame["usd_per_hour"].notna()]
    qualifies = frame.index.isin(result.ranked.index)
    front = np.zeros(len(frame), dtype=bool)
    if qualifies.any():
        positions = np.flatnonzero(qualifies)
        chosen = pareto_front(frame["usd_per_hour"].to_numpy()[positions], frame["throughput"].to_numpy()[positions])
        front[positions[chosen]] = True
    measured = pd.to_numeric(frame["measured_runs"], errors="coerce").fillna(0) > 0
    return pd.DataFrame(
        {
            "configuration": (
                frame["accelerators_total"].astype(str)
                + "x "
                + frame["accelerator"].astype(str)
                + " "
                + frame["precision"].astype(str)
                + " "
                + frame["engine"].astype(str)
            ),
            "usd_per_hour": frame["usd_per_hour"],
            "throughput": frame["throughput"],
            "throughput_lo": frame["throughput_lo"],
            "throughput_hi": frame["throughput_hi"],
            "p_slo": frame["p_slo"],
            "usd_per_million": frame["usd_per_million"],
            "origin": np.where(measured, "measured", "transferred"),
            "qualifies": np.where(qualifies, "meets SLO within budget", "fails SLO or budget"),
            "dropped": frame["dropped"].astype(str),
            "front": front,
        }
    ).reset_index(drop=True)


def funnel_table(result) -> pd.DataFrame:
    """The funnel: how many candidates each stage kept (indented stages are what was removed, and why)."""
    return pd.DataFrame(
        [
            {"stage": stage.strip(), "removed" if stage.startswith("  ") else "kept": count}
            for stage, count in result.funnel
        ],
        columns=["stage", "kept", "removed"],
    ).astype({"kept": "Int64", "removed": "Int64"})


# -- campaigns ---------------------------------------------------------------------------------------------------


def open_storage_read_only(url: str):
    """The campaign storage, for reading: no table is created, a missing SQLite file is an error, not a new one."""
    import optuna
    import sqlalchemy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from ..campaign.study import safe_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BoardInputError(
            f"storage: not a database URL: '{url}' (e.g. sqlite:///runs/campaigns/x/study.db)"
        ) from None
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise BoardInputError(f"storage: no SQLite database at '{parsed.database}'")
    engine = None
    try:
        engine = sqlalchemy.create_engine(parsed)
        optuna_tables = sqlalchemy.inspect(engine).has_table("studies")
    except (SQLAlchemyError, ImportError) as exc:  # unreachable server, bad credentials, missing driver
        first = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise BoardInputError(f"storage: cannot open {safe_url(url)} ({first})") from None
    finally:
        if engine is not None:
            engine.dispose()
    if not optuna_tables:
        raise BoardInputError(f"storage: no Optuna studies in {safe_url(url)}")
    return optuna.storages.RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)


def campaign_reports(url: str) -> list[dict]:
    """`campaign status` of every campaign study in the storage, with the per-trial prediction errors."""
    import optuna

    from ..campaign.definition import from_document
    from ..campaign.study import prediction_errors, summary

    storage = open_storage_read_only(url)
    reports = []
    for name in [frozen.study_name for frozen in storage.get_all_studies()]:
        study = optuna.load_study(study_name=name, storage=storage)
        if "campaign" not in study.user_attrs:
            continue  # an Optuna study, but not a flexpredict campaign
        campaign = from_document(study.user_attrs["campaign"])
        errors = pd.DataFrame(
            prediction_errors(study.get_trials(deepcopy=False), campaign.objective.metric), columns=["trial", "error"]
        )
        reports.append({**summary(campaign, study), "errors": errors})
    return reports


def progress(report: dict) -> float:
    """The share of the tightest budget spent (runs, GPU-hours or dollars), 0 to 1."""
    shares = [report["spent"][k] / v for k, v in report["budget"].items() if v]
    return min(1.0, max(shares)) if shares else 0.0
