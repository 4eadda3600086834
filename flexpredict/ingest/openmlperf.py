"""The OpenMLPerf dataset (`data.parquet` / `data.json`, dotted column names), and the column map used to export
our records in its format so the two datasets interoperate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import normalize as norm
from .base import Reader, register
from .summary_rows import apply_result

# our column -> OpenMLPerf column (export writes these; import reads them back)
OPENMLPERF_COLUMNS = {
    "benchmark": "model.mlperf_name",
    "used_model": "model.name",
    "accuracy_raw": "metrics.accuracy",
    "throughput": "metrics.result",
    "throughput_per_accelerator": "metrics.result_per_accelerator",
    "throughput_unit": "metrics.units",
    "weight_data_types": "model.weight_data_types",
    "framework_raw": "software.framework",
    "operating_system": "software.operating_system",
    "availability": "submission.availability",
    "division": "submission.division",
    "submitter": "submission.organization",
    "scenario": "submission.scenario",
    "accelerators_per_node": "system.accelerator.count_per_node",
    "accelerator_memory_gb": "system.accelerator.memory_capacity",
    "accelerator_raw": "system.accelerator.name",
    "accelerators_total": "system.accelerator.total_count",
    "accelerator_vendor": "system.accelerator.vendor",
    "host_cpu_cores": "system.cpu.core_count",
    "host_cpus_per_node": "system.cpu.count_per_node",
    "host_cpu": "system.cpu.model",
    "host_memory_gb": "system.memory.capacity",
    "system_name": "system.name",
    "system_id": "system.platform",  # not in OpenMLPerf: our export adds it so a round trip keeps every record
    "nodes": "system.number_of_nodes",
    "system_type": "system.type",
}


def is_openmlperf(columns) -> bool:
    return {"metrics.result", "submission.scenario", "model.mlperf_name"} <= set(columns)


@register
class OpenMLPerfReader(Reader):
    kind = "openmlperf"
    filenames = ("data.parquet", "data.json")

    def find(self) -> list[Path]:
        if not self.path.is_dir():
            return [self.path]
        found = self.files_named(*self.filenames)
        present = set(found)
        return [p for p in found if p.suffix == ".parquet" or p.with_suffix(".parquet") not in present]  # same rows

    def read(self, path: Path) -> list[dict]:
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path)
        except Exception as exc:  # pyarrow/json raise many types for a damaged file
            self.report.skip(
                self.relative(path),
                f"unreadable {path.suffix[1:]}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
            )
            return []
        if not is_openmlperf(frame.columns):
            self.report.skip(
                self.relative(path),
                "not OpenMLPerf data (missing metrics.result / submission.scenario / model.mlperf_name)",
            )
            return []
        self.report.rows_read[self.kind] += len(frame)
        source = self.relative(path)
        records = []
        for row in frame.to_dict("records"):
            record = {ours: _value(row.get(theirs)) for ours, theirs in OPENMLPERF_COLUMNS.items()}
            record.pop("throughput_per_accelerator")
            record.pop("accelerators_total")
            version = _value(row.get("benchmark.version"))
            record.update(
                {
                    "round": f"v{version}" if version else None,
                    "system_id": record.get("system_id") or record.get("system_name"),
                    "benchmark": norm.benchmark(record["benchmark"]),
                    "scenario": norm.scenario(record["scenario"]),
                    "valid": True,
                    "source": source,
                    "source_kind": self.kind,
                }
            )
            apply_result(record, norm.to_float(record["throughput"]), record["throughput_unit"])
            records.append(record)
        return records


def _value(value):
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
