"""`result_summary.json` of MLPerf Inference Endpoints (github.com/mlcommons/endpoints): one run of an LLM endpoint.

Written without the tool at hand, from what its summary reports; the field names read are assumptions, kept in
one place (`FIELDS`, `PERCENTILES`, `SCENARIOS`) so a real file that differs is a one-line change:
- `qps`, `tps`: completed queries and output tokens per second;
- `ttft`, `tpot`, `latency`: objects of percentiles (`p50`/`p90`/`p99`, also `50`, `50.0`, `median`) with an optional
  `unit` (`ns`, `us`, `ms` default, `s`);
- optional: `scenario` (offline / server / online / concurrency), `model`, `target_qps`, `concurrency`,
  `n_errors`, `result_valid` (or `valid`), input/output token means, `endpoint`.
Metrics may sit at the top level or under `results` / `metrics`. The file says nothing about the hardware behind the
endpoint, so those columns stay null.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .base import Reader, register

FILENAME = "result_summary.json"
FIELDS = {
    "samples_per_s": ("qps", "queries_per_second", "completed_qps"),
    "tokens_per_s": ("tps", "tokens_per_second", "output_tps"),
    "target_qps": ("target_qps",),
    "concurrency": ("concurrency", "max_concurrency"),
    "input_tokens_mean": ("input_tokens_mean", "mean_input_tokens", "isl"),
    "output_tokens_mean": ("output_tokens_mean", "mean_output_tokens", "osl"),
    "errors": ("n_errors", "errors", "failed_requests"),
    "valid": ("result_valid", "valid"),
}
PERCENTILES = {"p50": ("p50", "50", "50.0", "median"), "p90": ("p90", "90", "90.0"), "p99": ("p99", "99", "99.0")}
LATENCY_GROUPS = ("ttft", "tpot", "latency")
SCENARIOS = {
    "offline": "Offline",
    "server": "Server",
    "online": "Server",
    "poisson": "Server",
    "concurrency": "ClosedLoop",
    "closed_loop": "ClosedLoop",
    "closedloop": "ClosedLoop",
}
_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


@register
class EndpointsSummaryReader(Reader):
    kind = "mlperf-endpoints"
    filenames = (FILENAME,)

    def read(self, path: Path) -> list[dict]:
        data = self.load_json(path, dict, "a JSON object (MLPerf Endpoints result_summary.json)")
        if data is None:
            return []
        metrics = data.get("results") or data.get("metrics") or data
        record = {column: _first(metrics, data, names) for column, names in FIELDS.items()}
        if record["samples_per_s"] is None and record["tokens_per_s"] is None:
            self.report.skip(self.relative(path), "no 'qps' or 'tps' (MLPerf Endpoints result_summary.json)")
            return []
        for group in LATENCY_GROUPS:
            values = metrics.get(group)
            if isinstance(values, dict):
                scale = _TO_MS.get(str(values.get("unit") or values.get("units") or "ms").lower())
                if scale is None:
                    self.report.skip(self.relative(path), f"'{group}.unit' must be one of {', '.join(_TO_MS)}")
                    return []
                for suffix, keys in PERCENTILES.items():
                    value = _first(values, {}, keys)
                    record[f"{group}_{suffix}_ms"] = None if value is None else float(value) * scale
        source = self.relative(path)
        identity = hashlib.sha1(f"{self.kind}|{source}".encode()).hexdigest()[:16]
        errors = record.pop("errors")
        valid = record["valid"]
        scenario = str(data.get("scenario") or metrics.get("scenario") or "").lower()
        model = data.get("model") or data.get("model_name")
        self.report.rows_read[self.kind] += 1
        return [
            {
                **record,
                "record_id": identity,
                "run_group": identity,
                "round": "bench",
                "division": "bench",
                "submitter": "mlperf-endpoints",
                "system_id": data.get("endpoint"),
                "benchmark": model,
                "model": model,
                "used_model": model,
                "scenario": SCENARIOS.get(scenario, scenario.title() or None),
                "valid": None if valid is None else bool(valid) and not errors,
                "throughput": record["tokens_per_s"] if record["tokens_per_s"] is not None else record["samples_per_s"],
                "throughput_unit": "Tokens/s" if record["tokens_per_s"] is not None else "Samples/s",
                "source": source,
                "source_kind": self.kind,
            }
        ]


def _first(primary: dict, fallback: dict, names: tuple[str, ...]):
    """The first of `names` present in `primary`, else in `fallback`."""
    for where in (primary, fallback):
        for name in names:
            if where.get(name) is not None:
                return where[name]
    return None
