"""`flexpredict recommend`: ranked deployments that meet an SLO within a budget."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from .common import (
    ISL_OPTION,
    OSL_OPTION,
    console,
    existing_folder_file,
    fail,
    model_folder,
    non_negative_number,
    positive_count,
    positive_number,
)


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


OUTPUT_COLUMNS = (
    "rank",
    "accelerator",
    "vendor",
    "count",
    "nodes",
    "accelerators_total",
    "engine",
    "precision",
    "scenario",
    "throughput",
    "throughput_lo",
    "throughput_hi",
    "throughput_at_confidence",
    "evidence",
    "replica_load",
    "pred_throughput_per_accelerator",
    "measured_throughput_per_accelerator",
    "measured_runs",
    "pred_ttft_p99_ms",
    "pred_ttft_p99_ms_lo",
    "pred_ttft_p99_ms_hi",
    "pred_tpot_p99_ms",
    "pred_tpot_p99_ms_lo",
    "pred_tpot_p99_ms_hi",
    "pred_latency_p99_ms",
    "pred_latency_p99_ms_lo",
    "pred_latency_p99_ms_hi",
    "p_slo",
    "replicas",
    "total_throughput",
    "usd_per_hour",
    "usd_per_month",
    "period_cost",
    "usd_per_million",
    "power_w",
    "power_from_tdp",
    "energy_j_per_unit",
    "ood",
    "price_source",
)


def recommend(
    budget: float = typer.Option(
        None, help="Budget in USD per --budget-period (default period: month).", callback=positive_number
    ),
    latency_slo: str = typer.Option(
        None,
        help="p99 latency bound: for LLMs the time per output token (TPOT), "
        "otherwise the query latency. 200ms, 0.2s or 200 (ms).",
    ),
    model: str = typer.Option(
        None, help="Model id, MLPerf benchmark, Hugging Face id or config.json path (default: llama2-70b)."
    ),
    budget_period: str = typer.Option("month", help="hour, month (730 h) or year."),
    pricing: str = typer.Option(
        "cloud",
        help="cloud (on-demand $/accelerator-hour) or own (purchase price "
        "amortised over --amortize-years plus electricity).",
    ),
    amortize_years: float = typer.Option(
        3.0, help="Years to amortise a purchase over (--pricing own).", callback=positive_number
    ),
    electricity: float = typer.Option(
        0.15, help="Electricity price in USD/kWh (--pricing own).", callback=non_negative_number
    ),
    prices: Path = typer.Option(
        None, help="YAML price file overriding the catalog (same format as features/prices.yaml)."
    ),
    ttft_slo: str = typer.Option(None, help="p99 time-to-first-token bound (LLMs), e.g. 2s."),
    tpot_slo: str = typer.Option(None, help="p99 time-per-output-token bound (LLMs), e.g. 200ms."),
    slo_preset: str = typer.Option(None, help="server or interactive: MLPerf's bounds for the model."),
    scenario: str = typer.Option(
        None, help="Server, Interactive or Offline (default: Server for LLMs or with an SLO, else Offline)."
    ),
    load: str = typer.Option(
        None,
        help="Required load: 5000tok/s (generated tokens/s), 20req/s or 64users "
        "(concurrent requests); then the cheapest deployment that sustains it wins.",
    ),
    isl: int = ISL_OPTION,
    osl: int = OSL_OPTION,
    objective: str = typer.Option(
        "throughput", help="throughput (most within budget), cost ($ per million tokens) or energy (J per token)."
    ),
    vendor: str = typer.Option(None, help="Only this vendor (nvidia, amd, intel, google, ...)."),
    accelerator: str = typer.Option(None, help="Only this accelerator (id or name)."),
    max_accelerators: int = typer.Option(
        16, help="Most accelerators in one deployment replica.", callback=positive_count
    ),
    top: int = typer.Option(10, help="How many to show.", callback=positive_count),
    confidence: float = typer.Option(0.8, help="Minimum probability that the SLO is met."),
    output_format: Format = typer.Option(Format.table, "--format", help="table, json or csv."),
    plot: Path = typer.Option(
        None, help="Write the cost-throughput Pareto front to this PNG (or .svg, .pdf).", callback=existing_folder_file
    ),
    model_dir: Path = typer.Option(
        None, "--model-dir", help="Trained model folder (default: $FLEXPREDICT_MODEL_DIR, else the shipped model)."
    ),
) -> None:
    """Rank deployable configurations (hardware, count, engine, precision) that meet the SLO within the budget."""
    from ..catalogs import CatalogError
    from ..io import strict_json
    from ..normalize import scenario as canonical_scenario
    from ..predictors.bundle import DamagedModelError
    from ..recommend import Request, RequestError, parse_duration_ms, parse_load
    from ..recommend import recommend as run

    try:
        canonical = canonical_scenario(scenario) if scenario else None
        if scenario and canonical not in ("Server", "Interactive", "Offline", "SingleStream", "MultiStream"):
            raise RequestError(f"--scenario: expected Server, Interactive or Offline, got '{scenario}'")
        request = Request(
            model=model,
            budget=budget,
            budget_period=budget_period,
            pricing=pricing,
            amortize_years=amortize_years,
            electricity_usd_per_kwh=electricity,
            prices_file=prices,
            latency_slo_ms=parse_duration_ms(latency_slo, "--latency-slo"),
            ttft_slo_ms=parse_duration_ms(ttft_slo, "--ttft-slo"),
            tpot_slo_ms=parse_duration_ms(tpot_slo, "--tpot-slo"),
            slo_preset=slo_preset,
            scenario=canonical,
            load=parse_load(load),
            isl=isl,
            osl=osl,
            objective=objective,
            vendor=vendor,
            accelerator=accelerator,
            max_accelerators=max_accelerators,
            top=top,
            confidence=confidence,
        )
        result = run(request, model_dir=model_folder(model_dir))
    except (RequestError, CatalogError, FileNotFoundError, DamagedModelError) as exc:
        fail(str(exc))
    except UnicodeDecodeError:
        fail(f"--prices: {prices}: not a text (UTF-8) YAML file")
    rows = _rows(result)
    if output_format is Format.json:
        print(strict_json(_document(result, rows), indent=1))
    elif output_format is Format.csv:
        print(rows.to_csv(index=False), end="")
    else:
        _print_table(result, rows)
    if plot:
        from ..plots import pareto_plot

        pareto_plot(result, plot)
        if output_format is Format.table:
            console.print(f"wrote {plot}", highlight=False)
    if result.explanation:
        fail(f"no recommendation: {result.explanation}", code=1)


def _rows(result):
    ranked = result.top.copy()
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked[[c for c in OUTPUT_COLUMNS if c in ranked.columns]]


def _header(result) -> dict:
    req = result.request
    return {
        "model": result.model["id"],
        "model_is_default": req.model is None,
        "scenario": result.scenario,
        "unit": result.unit,
        "slo_ms": result.slo,
        "budget_usd": req.budget,
        "budget_period": req.budget_period,
        "pricing": req.pricing,
        "load": str(req.load) if req.load is not None else None,
        "objective": req.objective,
        "confidence": req.confidence,
        "workload": result.workload,
        "sized_for_ms": result.capacity_bounds,
        "prices_as_of": _price_dates(result),
    }


def _price_dates(result) -> dict | None:
    """Date range of the prices behind the ranked rows, and a warning when even the newest is over 6 months old."""
    from ..costs import PriceBook

    dates = (
        PriceBook.load(result.request.prices_file).dates(result.top["accelerator"], result.request.pricing)
        if len(result.top)
        else None
    )
    return (
        {
            "kind": dates.kind,
            "oldest": str(dates.oldest),
            "newest": str(dates.newest),
            "stale": dates.stale,
            "warning": dates.warning(),
        }
        if dates
        else None
    )


def _document(result, rows) -> dict:
    records = rows.to_dict("records")
    for record, index in zip(records, result.top.index):
        record["reasons"] = result.reasons.get(index, [])
    return {
        "request": _header(result),
        "funnel": [{"stage": s.strip(), "count": n} for s, n in result.funnel],
        "recommendations": records,
        "explanation": result.explanation,
    }


def _print_table(result, rows) -> None:
    req = result.request
    slo = ", ".join(f"{k.replace('_ms', '').upper()} p99 <= {v:g} ms" for k, v in result.slo.items()) or "none"
    budget = f"${req.budget:,.0f}/{req.budget_period}" if req.budget is not None else "no budget"
    named = "default model, --model to change" if req.model is None else "model"
    console.print(
        f"[bold]{result.model['id']}[/] ({named}) · {result.scenario} · SLO: {slo} · {budget} · "
        f"{req.pricing} pricing · objective: "
        f"{'cost at ' + str(req.load) if req.load else req.objective}",
        highlight=False,
    )
    workload = result.workload
    if workload and result.unit == "tokens/s":
        sized = result.capacity_bounds
        bounds = (
            (
                " · sized for "
                + ", ".join(
                    f"{k.replace('_ms', '').upper()} p99 <= {v:g} ms" for k, v in sized.items() if v != float("inf")
                )
                + f" at P >= {req.confidence:.0%} (capacity function)"
            )
            if sized
            else " · MLPerf operating-point predictions (this model has no capacity function)"
        )
        console.print(
            f"workload: ISL/OSL {workload['isl']:.0f}/{workload['osl']:.0f} ({workload['source']}){bounds}",
            highlight=False,
        )
    if result.explanation:
        _print_funnel(result)
        return
    dates = _price_dates(result)
    if dates:
        console.print(f"{dates['kind']} prices as of {dates['oldest']} to {dates['newest']}", highlight=False)
    if dates and dates["warning"]:
        console.print(f"[yellow]warning: {dates['warning']}[/]", highlight=False)
    llm = result.unit == "tokens/s"
    unit = "tok/s" if llm else "samples/s"
    table = Table(show_lines=False, pad_edge=False)
    sized = result.capacity_bounds is not None
    columns = [
        "#",
        "configuration",
        f"{unit}/replica [90%]",
        *([f"at P{req.confidence:.0%}", "evidence"] if sized else []),
        "measured/acc",
        "TTFT|TPOT p99 ms" if llm else "p99 ms",
        "P(SLO)",
        "repl.",
        "$/h",
        f"$/M {'tok' if llm else 'smp'}",
        f"J/{'tok' if llm else 'smp'}",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for _, row in rows.iterrows():
        name = str(row["accelerator"]).split("-", 1)[-1]
        config = f"{row['accelerators_total']}x {name} {row['precision']} {_short(row['engine'])}" + (
            " [OOD]" if row.get("ood") else ""
        )
        measured = (
            f"{row['measured_throughput_per_accelerator']:,.0f} ({row['measured_runs']})"
            if row.get("measured_runs")
            else "-"
        )
        latency = f"{_ms(row, 'ttft_p99_ms')}|{_ms(row, 'tpot_p99_ms')}" if llm else _ms(row, "latency_p99_ms")
        table.add_row(
            str(row["rank"]),
            config,
            f"{row['throughput']:,.0f} [{row['throughput_lo']:,.0f}-{row['throughput_hi']:,.0f}]",
            *([f"{row['throughput_at_confidence']:,.0f}", str(row["evidence"])] if sized else []),
            measured,
            latency,
            f"{row['p_slo']:.0%}",
            f"{row['replicas']:.0f}",
            f"{row['usd_per_hour']:,.2f}",
            f"{row['usd_per_million']:,.3g}",
            f"{row['energy_j_per_unit']:.2g}",
        )
    console.print(table)
    for index, lines in result.reasons.items():
        position = list(result.top.index).index(index) + 1
        console.print(f"  #{position}: " + "; ".join(lines), highlight=False)
    console.print(
        "measured/acc: median of matching MLPerf runs (count). OOD: model or accelerator never measured, "
        "trust the interval rather than the point.",
        style="dim",
        highlight=False,
    )
    if sized:
        console.print(
            f"at P{req.confidence:.0%}: throughput sustained within the bounds with that probability (sizes "
            "and ranks). evidence: measured = MLPerf ran the model on this part at these bounds; "
            "interpolated = at other bounds (the curve between them); transferred = never on this part. "
            "TTFT|TPOT: at the load one replica carries.",
            style="dim",
            highlight=False,
        )


def _short(engine) -> str:
    return {"tensorrt-llm": "trt-llm", None: "-"}.get(engine, str(engine)) if engine == engine else "-"


def _ms(row, target: str) -> str:
    value = row.get(f"pred_{target}")
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _print_funnel(result) -> None:
    for stage, count in result.funnel:
        console.print(f"  {stage}: {count}", highlight=False)
