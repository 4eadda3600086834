"""Candidate configurations: catalog accelerators x counts x precisions the part supports x engines seen on its
vendor in MLPerf, whose weights fit, priced; and the measured throughput beside each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from .. import catalogs
from ..configs import accelerator_row
from ..costs import PriceBook
from ..features.physics import BYTES_PER_PARAM, MEMORY_FOR_WEIGHTS_AND_KV
from ..normalize import is_llm_benchmark
from .request import Request, RequestError

COUNTS = (1, 2, 4, 8)

LLM_PRECISIONS = ("fp4", "fp8", "int8", "fp16")

OTHER_PRECISIONS = ("int8", "fp8", "fp16")


def engines_by_vendor(data: pd.DataFrame, llm: bool) -> dict[str, list[str]]:
    """Engines that ran this kind of workload on each vendor in MLPerf (at least 3 results), most used first."""
    kind = data["benchmark"].map(lambda b: is_llm_benchmark(b) if isinstance(b, str) else False) == llm
    seen = data[kind & data["engine"].notna() & data["accelerator_vendor"].notna() & ~data["cpu_only"].fillna(False)]
    counts = seen.groupby(["accelerator_vendor", "engine"]).size()
    engines: dict[str, list[str]] = {}
    for key, n in counts.sort_values(ascending=False).items():
        vendor, engine = cast("tuple[object, object]", key)  # a (vendor, engine) group of the two-key groupby
        if n >= 3:
            engines.setdefault(str(vendor), []).append(str(engine))
    return {vendor: names[:3] for vendor, names in engines.items()}


def candidate_frame(
    request: Request, model: dict, llm: bool, scenario: str, prices: PriceBook, records: pd.DataFrame
) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    engines = engines_by_vendor(records, llm)
    rows: Sequence[dict] = catalogs.accelerators().rows
    if request.accelerator:
        try:
            rows = [accelerator_row(request.accelerator)]
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
    if request.vendor:
        rows = [r for r in rows if str(r.get("vendor", "")).lower() == request.vendor.lower()]
        if not rows:
            vendors = sorted({str(r.get("vendor")) for r in catalogs.accelerators().rows})
            raise RequestError(f"--vendor: no accelerator of vendor '{request.vendor}' (known: {', '.join(vendors)})")
    rows = [r for r in rows if r.get("kind") not in ("cpu", "soc")] if not request.accelerator else rows
    counter: Counter[str] = Counter()
    out: list[dict] = []
    for acc in rows:
        counter["accelerator types"] += 1
        price = prices.get(acc["id"])
        hourly = price.usd_per_accelerator_hour if price else None
        purchase = price.purchase_usd if price else None
        if (request.pricing == "cloud" and hourly is None) or (request.pricing == "own" and purchase is None):
            counter["no price"] += 1
            continue
        priced = {
            "usd_per_accelerator_hour": hourly,
            "purchase_usd": purchase,
            "price_source": f"{price.provider} ({price.as_of})" if price else None,
        }
        out.extend(
            {**row, **priced}
            for row in configurations(acc, model, llm, scenario, engines, request.max_accelerators, counter)
        )
    frame = pd.DataFrame(out)
    funnel = [
        ("accelerator types considered", counter["accelerator types"]),
        ("  without a price", counter["no price"]),
        ("  configurations whose weights do not fit", counter["candidates that do not fit in memory"]),
        ("candidate configurations", len(frame)),
    ]
    if len(frame):
        frame = with_measured(frame, records, model, scenario)
    return frame, funnel


def configurations(
    acc: dict,
    model: dict,
    llm: bool,
    scenario: str,
    engines: dict[str, list[str]],
    max_accelerators: int,
    counter: Counter | None = None,
) -> list[dict]:
    """Counts x precisions the part supports x engines seen on its vendor, whose weights fit in memory."""
    tflops = acc.get("tflops") or {}
    supported = [p for p in (LLM_PRECISIONS if llm else OTHER_PRECISIONS) if tflops.get(p)]
    vendor_engines = engines.get(str(acc.get("vendor")), [None])
    out: list[dict] = []
    for per_node, nodes in [(c, 1) for c in COUNTS] + [(8, 2)]:
        total = per_node * nodes
        if total > max_accelerators:
            continue
        for precision in supported:
            needed = (model.get("params_total_b") or 0) * BYTES_PER_PARAM[precision]
            if needed > MEMORY_FOR_WEIGHTS_AND_KV * (acc.get("memory_gb") or 0) * total:
                if counter is not None:
                    counter["candidates that do not fit in memory"] += 1
                continue
            out.extend(
                {
                    "accelerator": acc["id"],
                    "vendor": acc.get("vendor"),
                    "count": per_node,
                    "nodes": nodes,
                    "accelerators_total": total,
                    "engine": engine,
                    "precision": precision,
                    "model": model["id"],
                    "scenario": scenario,
                    "tdp_w": acc.get("tdp_w"),
                    "accelerator_row": acc,
                    "model_row": model,
                }
                for engine in vendor_engines
            )
    return out


def catalog_candidates(model: dict, scenario: str, records: pd.DataFrame) -> pd.DataFrame:
    """Every datacenter configuration of a model the catalog allows, priced or not (what `prescore` remembers):
    accelerators x counts x precisions x the engines `records` show on each vendor, whose weights fit."""
    llm = model.get("kind") == "llm" or is_llm_benchmark(model["id"])
    engines = engines_by_vendor(records, llm)
    return pd.DataFrame(
        [
            row
            for acc in catalogs.accelerators().rows
            if acc.get("kind") not in ("cpu", "soc")
            for row in configurations(acc, model, llm, scenario, engines, max_accelerators=16)
        ]
    )


def with_measured(frame: pd.DataFrame, data: pd.DataFrame, model: dict, scenario: str) -> pd.DataFrame:
    """Median measured throughput per accelerator of matching MLPerf records (same model, accelerator, scenario,
    precision and accelerator count), shown beside the prediction."""
    data = data[
        (data["model"] == model["id"]) & (data["scenario"] == scenario) & data["throughput_per_accelerator"].notna()
    ]
    if data.empty:
        return frame.assign(measured_throughput_per_accelerator=np.nan, measured_runs=0)
    on = ["accelerator", "precision", "accelerators_total"]
    stats = data.astype({c: "object" for c in on}).groupby(on)["throughput_per_accelerator"].agg(["median", "count"])
    found = frame[on].astype("object").merge(stats, how="left", left_on=on, right_index=True)
    return frame.assign(
        measured_throughput_per_accelerator=found["median"].to_numpy(dtype="float64"),
        measured_runs=found["count"].fillna(0).astype(int).to_numpy(),
    )
