"""MLCommons' compact CM imports of rounds v3.1 and v4.0 (`cm4mlperf-results/experiment/*/*/cm-result.json`)."""

from __future__ import annotations

from pathlib import Path

from .base import register
from .summary_rows import SummaryFields, SummaryListReader

CM_FIELDS = SummaryFields(
    submitter="Organization",
    division="Division",
    system_type="SystemType",
    system_name="SystemName",
    platform="Platform",
    benchmark="MlperfModel",
    used_model="Model",
    scenario="Scenario",
    accuracy="Accuracy",
    nodes="number_of_nodes",
    host_cpu="host_processor_model_name",
    host_cpus="host_processors_per_node",
    host_cores="host_processor_core_count",
    accelerator="accelerator_model_name",
    accelerators="accelerators_per_node",
    location="Location",
    framework="framework",
    operating_system="operating_system",
    errors="errors",
    round="version",
    weights=None,
    availability="Availability",
    result="Result",
    units="Units",
    power_result="Result_Power",
    power_units="Result_Power_Units",
)


@register
class CmResultReader(SummaryListReader):
    """One experiment file per (round, suite, division, task, scenario); a result can sit in two experiments."""

    kind = "cm-result"
    filenames = ("cm-result.json",)
    fields = CM_FIELDS

    def read(self, path: Path) -> list[dict]:
        records = super().read(path)
        for record in records:
            _fix_llama_offline_unit(record)
        return records


def _fix_llama_offline_unit(record: dict) -> None:
    """The CM import labels llama2-70b Offline results 'Samples/s', but MLPerf published them in tokens/s
    (8x H100: about 22,000, which no system reaches in samples/s): read them as tokens/s."""
    if (
        (record.get("benchmark") or "").startswith("llama2-70b")
        and record.get("scenario") == "Offline"
        and record.get("throughput_unit") == "Samples/s"
    ):
        record["throughput_unit"] = "Tokens/s"
        record["tokens_per_s"] = record.pop("samples_per_s", None)
