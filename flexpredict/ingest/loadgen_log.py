"""Parse MLPerf LoadGen logs (`mlperf_log_summary.txt`, `mlperf_log_detail.txt`) into record metrics.

Shared by the results-tree reader and the embedded benchmark, so an MLPerf submission and a flexpredict run are read
by the same code and land in the same columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_NS_PER_MS = 1e6
_SUMMARY_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")
_ERRORS = re.compile(r"(\d+)\s+ERRORS?\s+encountered", re.IGNORECASE)
_COMPLETE = re.compile(r"errors?\s+encountered", re.IGNORECASE)  # LoadGen's last line: a complete file


class LogFormatError(ValueError):
    """A LoadGen log that is truncated or not a LoadGen log at all."""


@dataclass
class LoadGenResult:
    """What one LoadGen performance run reports, in record units (ms, per second)."""

    scenario: str | None = None
    mode: str | None = None
    result_valid: bool | None = None
    errors: int = 0
    values: dict[str, float] = field(default_factory=dict)
    """Schema metric columns found in the log (tokens_per_s, samples_per_s, latency_p99_ms, ttft_p99_ms, ...)."""
    settings: dict[str, float] = field(default_factory=dict)
    """Test parameters (target_qps, ttft_latency_ms, tpot_latency_ms, min_duration_ms, ...)."""

    def bounds(self) -> dict[str, float]:
        """The latency bounds the run was held to, as record columns (ttft/tpot for LLMs, target_latency else)."""
        token = "ttft_latency_ms" in self.settings or "tpot_latency_ms" in self.settings
        names = (
            {"ttft_latency_ms": "ttft_bound_ms", "tpot_latency_ms": "tpot_bound_ms"}
            if token
            else {"target_latency_ms": "latency_bound_ms"}
        )
        return {column: self.settings[key] for key, column in names.items() if self.settings.get(key, 0) > 0}

    @property
    def valid(self) -> bool:
        """VALID and free of errors: LoadGen can print VALID while its token accounting failed."""
        return bool(self.result_valid) and self.errors == 0


# summary key (lower case) -> (record column, divisor to reach the record unit)
_SUMMARY_KEYS = {
    "samples per second": ("samples_per_s", 1.0),
    "completed samples per second": ("samples_per_s", 1.0),
    "tokens per second": ("tokens_per_s", 1.0),
    "completed tokens per second": ("tokens_per_s", 1.0),
    "tokens per second (inferred)": ("tokens_per_s", 1.0),
    "completed tokens per second (inferred)": ("tokens_per_s", 1.0),
    "qps w/ loadgen overhead": ("samples_per_s", 1.0),
    "50.00 percentile latency (ns)": ("latency_p50_ms", _NS_PER_MS),
    "90.00 percentile latency (ns)": ("latency_p90_ms", _NS_PER_MS),
    "99.00 percentile latency (ns)": ("latency_p99_ms", _NS_PER_MS),
    "50.00 percentile first token latency (ns)": ("ttft_p50_ms", _NS_PER_MS),
    "90.00 percentile first token latency (ns)": ("ttft_p90_ms", _NS_PER_MS),
    "99.00 percentile first token latency (ns)": ("ttft_p99_ms", _NS_PER_MS),
    "50.00 percentile time to output token (ns)": ("tpot_p50_ms", _NS_PER_MS),
    "90.00 percentile time to output token (ns)": ("tpot_p90_ms", _NS_PER_MS),
    "99.00 percentile time to output token (ns)": ("tpot_p99_ms", _NS_PER_MS),
}
# early-stopping estimates: the MLPerf SingleStream / MultiStream metrics
_EARLY_STOP_KEYS = {
    "90th percentile latency (ns)": ("latency_p90_ms", _NS_PER_MS),
    "99th percentile latency (ns)": ("latency_p99_ms", _NS_PER_MS),
}
_SETTING_KEYS = {
    "target_qps": ("target_qps", 1.0),
    "ttft_latency (ns)": ("ttft_latency_ms", _NS_PER_MS),
    "tpot_latency (ns)": ("tpot_latency_ms", _NS_PER_MS),
    "target_latency (ns)": ("target_latency_ms", _NS_PER_MS),
    "min_duration (ms)": ("min_duration_ms", 1.0),
    "samples_per_query": ("samples_per_query", 1.0),
    "min_query_count": ("min_query_count", 1.0),
}


def parse_summary(text: str) -> LoadGenResult:
    """Parse `mlperf_log_summary.txt`. Raises LogFormatError when the file holds no result."""
    result = LoadGenResult()
    early: dict[str, float] = {}
    for line in text.splitlines():
        match = _SUMMARY_LINE.match(line)
        errors = _ERRORS.search(line)
        if errors:
            result.errors += int(errors.group(1))
        if not match:
            continue
        key, value = match.group(1).strip().lower(), match.group(2).strip()
        if key == "scenario":
            result.scenario = value
        elif key == "mode":
            result.mode = value
        elif key == "result is":
            result.result_valid = value.upper() == "VALID"
        elif key in _SUMMARY_KEYS or key in _EARLY_STOP_KEYS or key in _SETTING_KEYS:
            number = _number(value)
            if number is None:
                continue
            if key in _SUMMARY_KEYS:
                column, divisor = _SUMMARY_KEYS[key]
                # the first occurrence is the headline; "Additional Stats" repeats some keys
                result.values.setdefault(column, number / divisor)
            elif key in _EARLY_STOP_KEYS:
                column, divisor = _EARLY_STOP_KEYS[key]
                early[column] = number / divisor
            else:
                column, divisor = _SETTING_KEYS[key]
                result.settings[column] = number / divisor
    if result.scenario is None or result.result_valid is None:
        raise LogFormatError("not a LoadGen summary (no 'Scenario' or 'Result is' line)")
    if not _COMPLETE.search(text):
        raise LogFormatError("truncated LoadGen summary (no final 'errors encountered' line)")
    if not result.values and not early:
        raise LogFormatError("LoadGen summary holds no throughput or latency value (truncated?)")
    # SingleStream/MultiStream publish the early-stopping estimate; prefer it to the plain percentile
    result.values.update(early)
    return result


def parse_detail(text: str) -> dict[str, Any]:
    """Parse `mlperf_log_detail.txt` (`:::MLLOG {json}` lines) into {key: value}; later lines win."""
    entries: dict[str, Any] = {}
    for line in text.splitlines():
        start = line.find(":::MLLOG")
        if start < 0:
            continue
        try:
            record = json.loads(line[start + len(":::MLLOG") :])
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run: keep what came before
        key = record.get("key")
        if key == "error":
            entries["error_count"] = int(entries.get("error_count", 0)) + 1
        if key:
            entries[key] = record.get("value")
    return entries


def result_from_detail(entries: dict[str, Any]) -> LoadGenResult:
    """Build a LoadGenResult from detail-log entries (used when no summary file exists)."""
    result = LoadGenResult()
    result.scenario = _str_or_none(entries.get("effective_scenario"))
    result.mode = _str_or_none(entries.get("effective_test_mode"))
    validity = entries.get("result_validity")
    result.result_valid = None if validity is None else str(validity).upper() == "VALID"
    result.errors = int(entries.get("error_count", 0) or 0)
    mapping = {
        "result_samples_per_second": "samples_per_s",
        "result_completed_samples_per_sec": "samples_per_s",
        "result_tokens_per_second": "tokens_per_s",
        "result_completed_tokens_per_second": "tokens_per_s",
    }
    for key, column in mapping.items():
        if isinstance(entries.get(key), (int, float)):
            result.values.setdefault(column, float(entries[key]))
    for pct, suffix in (("50.00", "p50"), ("90.00", "p90"), ("99.00", "p99")):
        for key, column in (
            (f"result_{pct}_percentile_latency_ns", f"latency_{suffix}_ms"),
            (f"result_first_token_{pct}_percentile_latency_ns", f"ttft_{suffix}_ms"),
            (f"result_time_per_output_token_{pct}_percentile_ns", f"tpot_{suffix}_ms"),
        ):
            if isinstance(entries.get(key), (int, float)):
                result.values[column] = float(entries[key]) / _NS_PER_MS
    if result.scenario is None or result.result_valid is None:
        raise LogFormatError("detail log has no effective_scenario/result_validity (truncated?)")
    return result


def _number(text: str) -> float | None:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)
