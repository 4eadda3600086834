"""The v5.0 CMX import (`cmx-result-summary.json`): one row per result, the systems JSON merged as `system.*`."""

from __future__ import annotations

from .base import register
from .summary_rows import SummaryFields, SummaryListReader

CMX_FIELDS = SummaryFields(
    submitter="Organization", division="Division", system_type="SystemType", system_name="SystemName",
    platform="Platform", benchmark="MlperfModel", used_model="Model", scenario="Scenario", accuracy="Accuracy",
    nodes="number_of_nodes", host_cpu="host_processor_model_name", host_cpus="host_processors_per_node",
    host_cores="host_processor_core_count", accelerator="accelerator_model_name",
    accelerators="accelerators_per_node", location="Location", framework="framework",
    operating_system="operating_system", errors="errors", round="version", weights="weight_data_types",
    availability="Availability", result="Result", units="Units",
    accelerator_memory="system.accelerator_memory_capacity", host_memory="system.host_memory_capacity",
)


@register
class CmxSummaryReader(SummaryListReader):
    kind = "cmx-summary"
    filename = "cmx-result-summary.json"
    fields = CMX_FIELDS
