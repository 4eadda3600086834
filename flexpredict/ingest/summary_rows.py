"""Records from MLPerf *summary* rows: one published result with its system metadata.

`summary_results.json`, the v5.0 `cmx-result-summary.json` and the v3.1/v4.0 `cm-result.json` spell the same fields
differently. Each format maps its keys onto `SummaryFields` once; `to_record` does the rest, so the three readers
share one code path. Power arrives either on the performance row or as a separate row of the same result;
`merge_power` joins it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .. import normalize as norm
from .base import Reader

# published unit -> the record column it fills
_UNIT_COLUMNS = {
    "tokens/s": "tokens_per_s",
    "samples/s": "samples_per_s",
    "queries/s": "samples_per_s",
}
POWER_UNITS = {"watts", "millijoules", "w", "mj"}


@dataclass(frozen=True)
class SummaryFields:
    """Key names of one summary format (None: the format lacks the field)."""

    submitter: str
    division: str
    system_type: str | None
    system_name: str
    platform: str
    benchmark: str
    used_model: str | None
    scenario: str
    accuracy: str
    nodes: str
    host_cpu: str
    host_cpus: str
    host_cores: str
    accelerator: str
    accelerators: str
    location: str
    framework: str
    operating_system: str
    errors: str
    round: str
    weights: str | None
    availability: str
    result: str
    units: str
    power_result: str | None = None
    power_units: str | None = None
    accelerator_memory: str | None = None
    host_memory: str | None = None


_RUN_SUFFIX = re.compile(r"/performance(?:/run_\d+)?$")
TOTAL_ACCELERATOR_KEYS = ("Total Accelerators", "total_accelerators", "total_accelerator_count")


def location(text) -> str:
    """A result's folder, `<division>/<submitter>/results/<system>/<benchmark>/<scenario>`, however the table spells
    it: with or without a leading './' and a trailing '/performance/run_1'."""
    value = str(text or "").strip().replace("\\", "/")
    while value.startswith(("./", "/")):
        value = value[1:] if value.startswith("/") else value[2:]
    return _RUN_SUFFIX.sub("", value.rstrip("/"))


def key_of(row: dict, fields: SummaryFields) -> tuple[str, str]:
    """Identity of a published result inside one summary source: (Location, Scenario)."""
    return (
        location(row.get(fields.location)).lower(),
        str(norm.scenario(row.get(fields.scenario)) or row.get(fields.scenario)),
    )


def total_accelerators(row: dict) -> int | None:
    """The total accelerator count newer tables and systems files state outright."""
    return next((norm.to_int(row[k]) for k in TOTAL_ACCELERATOR_KEYS if norm.to_int(row.get(k))), None)


def is_power_row(row: dict, fields: SummaryFields) -> bool:
    """A row that carries only the power measurement of a result."""
    units = str(row.get(fields.units) or "").strip().lower()
    return units in POWER_UNITS


def power_of(row: dict, fields: SummaryFields) -> tuple[float | None, str | None]:
    """(value, unit) of the power measurement a row carries, if any."""
    if is_power_row(row, fields):
        value = (
            row.get(fields.power_result)
            if fields.power_result and row.get(fields.power_result) is not None
            else row.get(fields.result)
        )
        return norm.to_float(value), str(row.get(fields.units)).strip().lower()
    if fields.power_result and row.get(fields.power_result) is not None:
        unit = row.get(fields.power_units) if fields.power_units else None
        return norm.to_float(row.get(fields.power_result)), str(unit or "watts").strip().lower()
    return None, None


def to_record(
    row: dict,
    fields: SummaryFields,
    *,
    source: str,
    source_kind: str,
    power: tuple[float | None, str | None] = (None, None),
) -> dict:
    """One schema record from a performance row (plus the power of its result, when known)."""
    bench = _benchmark(row, fields)
    scen = norm.scenario(row.get(fields.scenario))
    unit = norm.clean_text(row.get(fields.units))
    value = norm.to_float(row.get(fields.result))
    record = {
        "round": _round(row.get(fields.round)),
        "division": norm.clean_text(row.get(fields.division)),
        "submitter": norm.clean_text(row.get(fields.submitter)),
        "system_id": norm.clean_text(row.get(fields.platform)),
        "system_name": norm.clean_text(row.get(fields.system_name)),
        "system_type": norm.clean_text(row.get(fields.system_type)) if fields.system_type else None,
        "availability": norm.clean_text(row.get(fields.availability)),
        "benchmark": bench,
        "used_model": norm.clean_text(row.get(fields.used_model)) if fields.used_model else None,
        "scenario": scen,
        "valid": (norm.to_int(row.get(fields.errors)) or 0) == 0,
        "source": source,
        "source_kind": source_kind,
        "accelerator_raw": norm.clean_text(row.get(fields.accelerator)),
        "accelerators_per_node": norm.to_int(row.get(fields.accelerators)),
        "nodes": norm.to_int(row.get(fields.nodes)),
        "host_cpu": norm.clean_text(row.get(fields.host_cpu)),
        "host_cpus_per_node": norm.to_int(row.get(fields.host_cpus)),
        "host_cpu_cores": norm.to_int(row.get(fields.host_cores)),
        "framework_raw": norm.clean_text(row.get(fields.framework)),
        "operating_system": norm.clean_text(row.get(fields.operating_system)),
        "weight_data_types": norm.clean_text(row.get(fields.weights)) if fields.weights else None,
        "accuracy_raw": norm.clean_text(row.get(fields.accuracy)),
        "throughput": value,
        "throughput_unit": unit,
        "location": location(row.get(fields.location)),
        "accelerators_total": total_accelerators(row),
        "published": True,
    }
    if fields.accelerator_memory:
        record["accelerator_memory_gb"] = norm.memory_gb(row.get(fields.accelerator_memory))
    if fields.host_memory:
        record["host_memory_gb"] = norm.memory_gb(row.get(fields.host_memory))
    apply_result(record, value, unit)
    apply_power(record, *power)
    return record


def apply_result(record: dict, value: float | None, unit: str | None) -> None:
    """Put a published (value, unit) into the metric columns it means."""
    if value is None or unit is None:
        return
    column = _UNIT_COLUMNS.get(unit.lower())
    if column:
        record.setdefault(column, value)
    elif unit.lower().startswith("latency"):
        # SingleStream publishes the 90th percentile, MultiStream the 99th (MLPerf rules)
        column = "latency_p90_ms" if record.get("scenario") == "SingleStream" else "latency_p99_ms"
        record.setdefault(column, value)


def apply_power(record: dict, value: float | None, unit: str | None) -> None:
    """Watts are average system power; millijoules are energy per query (SingleStream/MultiStream)."""
    if value is None or value <= 0 or unit is None:
        return
    if unit in {"watts", "w"}:
        record["power_w"] = value
    elif unit in {"millijoules", "mj"}:
        record["energy_j_per_query"] = value / 1000.0


def _benchmark(row: dict, fields: SummaryFields) -> str | None:
    """The results folder name of the result; in the open division it names the variant actually run (a sweep
    publishes many variants under one MLPerf task), in the closed division it is the MLPerf benchmark name."""
    parts = location(row.get(fields.location)).split("/")
    if len(parts) >= 6 and parts[2] == "results":
        return norm.benchmark(parts[4])
    return norm.benchmark(row.get(fields.benchmark))


def _round(value) -> str | None:
    text = norm.clean_text(value)
    if text is None:
        return None
    return text if text.startswith("v") else f"v{text}"


def records_from_rows(rows: list, fields: SummaryFields, *, source: str, source_kind: str, report_drop) -> list[dict]:
    """Join power rows onto their performance rows (same Location and Scenario) and build records.

    Duplicate rows of one result (a result listed in both a closed and a closed-power experiment) collapse into one.
    `report_drop(reason)` counts rows that cannot become a record.
    """
    perf: dict[tuple[str, str], dict] = {}
    power: dict[tuple[str, str], tuple[float | None, str | None]] = {}
    for row in rows:
        if not isinstance(row, dict):
            report_drop("row is not a JSON object")
            continue
        key = key_of(row, fields)
        value, unit = power_of(row, fields)
        if value is not None:
            power.setdefault(key, (value, unit))
        if is_power_row(row, fields):
            continue
        if norm.to_float(row.get(fields.result)) is None:
            report_drop("performance row without a result value")
            continue
        perf.setdefault(key, row)
    for _ in power.keys() - perf.keys():
        report_drop("power row without its performance row")
    return [
        to_record(row, fields, source=source, source_kind=source_kind, power=power.get(key, (None, None)))
        for key, row in perf.items()
    ]


class SummaryListReader(Reader):
    """A file holding a JSON list of published results in one summary format (`fields`)."""

    fields: ClassVar[SummaryFields]

    def read(self, path: Path) -> list[dict]:
        rows = self.load_json(path, list, "a JSON list of results")
        if rows is None:
            return []
        self.report.rows_read[self.kind] += len(rows)
        records = records_from_rows(
            rows,
            self.fields,
            source=self.relative(path),
            source_kind=self.kind,
            report_drop=lambda reason: self.report.dropped.update([reason]),
        )
        # a result may sit in several files of one import (closed and closed-power experiments): count it once
        table = self.report.table(f"{self.relative(self.path)} ({self.kind})", self.relative(self.path), (self.kind,))
        seen = self._published.setdefault(table.label, set())
        seen.update((r["location"].lower(), r["scenario"]) for r in records)
        table.published = table.table_only = len(seen)
        return records

    def __init__(self, path, report, root=None):
        super().__init__(path, report, root)
        self._published: dict[str, set] = {}
