"""The v5.0 CMX import (`cmx-result-summary.json`): one row per result, the systems JSON merged as `system.*`."""

from __future__ import annotations

from dataclasses import replace

from .base import register
from .cm_result import CM_FIELDS
from .summary_rows import SummaryListReader

# cm-result's keys, with the weight formats and the memory sizes of the merged systems JSON, and no power columns
CMX_FIELDS = replace(
    CM_FIELDS,
    weights="weight_data_types",
    power_result=None,
    power_units=None,
    accelerator_memory="system.accelerator_memory_capacity",
    host_memory="system.host_memory_capacity",
)


@register
class CmxSummaryReader(SummaryListReader):
    kind = "cmx-summary"
    filenames = ("cmx-result-summary.json",)
    fields = CMX_FIELDS
