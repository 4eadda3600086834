"""Measured latency under load: NVIDIA AIConfigurator's `silicon_sample.csv` (TTFT/TPOT at many concurrencies).

Each row is one closed-loop run of a deployment (model, system, engine, precision, parallelism, aggregated or
disaggregated serving) at a fixed input/output length and concurrency: a point on the latency-load curve that MLPerf,
with one operating point per system and scenario, does not give. Rows become records of scenario `ClosedLoop`:

- accelerators: the GPUs of the measured deployment. Aggregated: one replica, tensor x pipeline x attention-DP.
  Disaggregated: every prefill and decode worker, workers x (tensor x pipeline x attention-DP) each. Per node: 8 on
  HGX systems, 4 on a GB200 NVL72 compute tray. A disaggregated row without worker counts has no GPU total (its
  TTFT/TPOT still count; its throughput per accelerator is unknown).
- TTFT/TPOT: the file's run statistic (it does not say mean or median) goes into `ttft_p50_ms`/`tpot_p50_ms`.
- output tokens/s (Little's law for a closed loop): concurrency x osl / (ttft + (osl - 1) x tpot), whole deployment;
  rows without a stated concurrency have none.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from .. import normalize as norm
from .base import Reader, register
from .records import record_hash

FILENAME = "silicon_sample.csv"
REQUIRED = ("id", "model_path", "system", "backend", "mode", "isl", "osl", "silicon_ttft_ms", "silicon_tpot_ms")
_CONCURRENCY = re.compile(r"silicon_concurrency=(\d+)")
_ENGINES = {"trtllm": "tensorrt-llm", "sglang": "sglang", "vllm": "vllm"}
_QUANT_PRECISION = {
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "fp8_block": "fp8",
    "fp8": "fp8",
    "int4_wo": "int4",
    "int8_wo": "int8",
    "bf16": "bf16",
    "fp16": "fp16",
}
_SYSTEMS = {  # system -> (description, accelerators per node)
    "h100_sxm": ("NVIDIA HGX H100 (H100 SXM 80GB)", 8),
    "h200_sxm": ("NVIDIA HGX H200 (H200 SXM 141GB)", 8),
    "b200_sxm": ("NVIDIA HGX B200 (B200 SXM 180GB)", 8),
    "b300_sxm": ("NVIDIA HGX B300 (B300 SXM 288GB)", 8),
    "gb200": ("NVIDIA GB200 NVL72", 4),
    "gb300": ("NVIDIA GB300 NVL72", 4),
}


@register
class AicSiliconReader(Reader):
    kind = "aic-silicon"
    filenames = (FILENAME,)

    def read(self, path: Path) -> list[dict]:
        source = self.relative(path)
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            self.report.skip(source, f"unreadable: {exc.__class__.__name__}: {exc}")
            return []
        missing = [c for c in REQUIRED if rows and c not in rows[0]]
        if not rows or missing:
            self.report.skip(
                source,
                f"expected the columns {', '.join(REQUIRED)}"
                + (f" (missing: {', '.join(missing)})" if missing else " and at least one row"),
            )
            return []
        self.report.rows_read[self.kind] += len(rows)
        records = []
        for row in rows:
            record = self._record(row, source)
            if record is None:
                self.report.dropped.update(["aic-silicon row without positive TTFT/TPOT or lengths"])
            else:
                records.append(record)
        return records

    @staticmethod
    def _record(row: dict, source: str) -> dict | None:
        ttft, tpot = norm.to_float(row.get("silicon_ttft_ms")), norm.to_float(row.get("silicon_tpot_ms"))
        isl, osl = norm.to_float(row.get("isl")), norm.to_float(row.get("osl"))
        disaggregated = str(row.get("mode")).strip().lower() == "disagg"
        gpus = _deployment_gpus(row, disaggregated)
        if not (ttft and tpot and isl and osl) or min(ttft, tpot, isl, osl) <= 0:
            return None
        match = _CONCURRENCY.search(str(row.get("silicon_data_source") or ""))
        concurrency = int(match.group(1)) if match else None
        system = str(row.get("system") or "").strip()
        description, per_node = _SYSTEMS.get(system, (system, 8))
        role = "decode_" if disaggregated else ""
        quant = str(row.get("gemm_quant_mode") or "").strip().lower()
        record = {
            "record_id": record_hash("aic-silicon", row.get("id")),
            "run_group": record_hash(
                "aic-silicon",
                row.get("model_path"),
                system,
                row.get("backend"),
                row.get("backend_version"),
                row.get("precision"),
                row.get("mode"),
                *(
                    row.get(f"{p}{k}")
                    for p in ("", "prefill_", "decode_")
                    for k in ("tp_size", "pp_size", "attention_dp_size", "moe_ep_size", "num_workers")
                ),
            ),
            "round": "aic-silicon",
            "division": "aic-silicon",
            "submitter": "NVIDIA AIConfigurator",
            "system_id": system,
            "system_name": description,
            "system_type": "datacenter",
            "availability": "available",
            "used_model": row.get("model_path"),
            "scenario": "ClosedLoop",
            "valid": True,
            "source": source,
            "source_kind": "aic-silicon",
            "accelerator_raw": system,
            "accelerators_total": gpus,
            "accelerators_per_node": min(gpus, per_node) if gpus else None,
            "nodes": math.ceil(gpus / per_node) if gpus else None,
            "engine": _ENGINES.get(str(row.get("backend")).strip().lower()),
            "engine_version": norm.clean_text(row.get("backend_version")),
            "precision": norm.precision(row.get("precision")) or _QUANT_PRECISION.get(quant),
            "serving_mode": "disaggregated" if disaggregated else "aggregated",
            "tensor_parallel": norm.to_int(row.get(f"{role}tp_size")),
            "pipeline_parallel": norm.to_int(row.get(f"{role}pp_size")),
            "expert_parallel": norm.to_int(row.get(f"{role}moe_ep_size")),
            "attention_dp": norm.to_int(row.get(f"{role}attention_dp_size")),
            "max_num_seqs": norm.to_int(row.get(f"{role}batch_size")),
            "concurrency": concurrency,
            "input_tokens_mean": isl,
            "output_tokens_mean": osl,
            "ttft_p50_ms": ttft,
            "tpot_p50_ms": tpot,
        }
        if concurrency:
            record["tokens_per_s"] = concurrency * osl * 1000.0 / (ttft + (osl - 1) * tpot)
        return record


def _deployment_gpus(row: dict, disaggregated: bool) -> int | None:
    """GPUs of the measured deployment: one aggregated replica, or every prefill and decode worker."""

    def replica(prefix: str) -> int | None:
        sizes = [norm.to_int(row.get(f"{prefix}{k}")) or 1 for k in ("tp_size", "pp_size", "attention_dp_size")]
        return math.prod(sizes) if norm.to_int(row.get(f"{prefix}tp_size")) else None

    if not disaggregated:
        return replica("")
    parts = [(norm.to_int(row.get(f"{p}num_workers")) or 0) * (replica(p) or 0) for p in ("prefill_", "decode_")]
    return sum(parts) or None
