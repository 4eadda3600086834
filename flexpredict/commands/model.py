"""`flexpredict train | evaluate | predict`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from .. import capacity
from ..io import strict_json
from .common import (
    ISL_OPTION,
    OSL_OPTION,
    PRECISIONS,
    console,
    err_console,
    fail,
    known_engine,
    known_precision,
    known_targets,
    load_model,
    load_records,
    model_folder,
    positive_count,
    positive_number,
    progress_bar,
    require_known,
)

SCENARIO_HELP = "Offline, Server, Interactive, SingleStream or MultiStream."
# one configuration, as `predict` and `explain` take it
COUNT = typer.Option(1, help="Accelerators per node.", callback=positive_count)
NODES = typer.Option(1, help="Nodes.", callback=positive_count)
MODEL = typer.Option(
    None,
    help="Model id, MLPerf benchmark, Hugging Face id (Qwen/Qwen3-32B) or a config.json "
    "(or its folder), e.g. llama2-70b.",
)
SCENARIO = typer.Option("Offline", help=SCENARIO_HELP)
PRECISION = typer.Option(None, help="fp4, fp8, int8, int4, bf16, fp16 or fp32.", callback=known_precision)
ENGINE = typer.Option(None, help="tensorrt-llm, vllm, sglang, ... (default: unknown).", callback=known_engine)
MODEL_DIR = typer.Option(
    None, "--model-dir", help="Trained model folder (default: $FLEXPREDICT_MODEL_DIR, else the shipped model)."
)
RECORD_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl")
UNRESOLVED_SHOWN = 5


def train(
    dataset_file: Path = typer.Option(None, "--dataset", help="Records to learn from (default: the shipped dataset)."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Model folder (default: $FLEXPREDICT_HOME/models/NAME, "
        "else ~/.local/share/flexpredict/models/NAME). The shipped models/default is "
        "replaced only when named here.",
    ),
    name: str = typer.Option("default", "--name", help="The user model folder's name when --out is not given."),
    predictor: str = typer.Option("xgboost", help="xgboost, lookup-median, roofline or public-recipe."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train one predictor per target (throughput, TTFT/TPOT, latency, power, energy) with 90 % intervals."""
    from ..io import replaced_folder, user_model_dir
    from ..predictors import PREDICTORS
    from ..predictors.bundle import ModelBundle
    from ..recommend import prescore

    require_known("--predictor", [predictor], PREDICTORS)
    if not out and (not name or Path(name).name != name or name.startswith(".")):
        fail(f"--name: expected a plain folder name, got '{name}'")
    target = out or user_model_dir(name)
    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or (target / "manifest.json").exists())):
        fail(f"--out: {target} is not a model folder (expected a new folder or one `train` wrote); nothing written")
    records = load_records(dataset_file)
    started = time.perf_counter()
    with progress_bar("training", enabled=not quiet) as update:
        bundle = ModelBundle.train(records, predictor=predictor, on_progress=update)
    try:
        bundle.check_replaces(target)
    except ValueError as exc:
        fail(str(exc))
    with replaced_folder(target) as fresh:  # the old model stays whole until the new one is complete
        bundle.save(fresh)
        capacity_note = _train_capacity(records, fresh / capacity.FOLDER)
        prescore(bundle, fresh, records)  # the default model's candidates: a fresh `recommend` needs no predictors
    table = Table(
        title=f"trained {predictor} in {time.perf_counter() - started:.1f} s -> {target}", title_justify="left"
    )
    for column in ("target", "rows", "out-of-fold MdAPE", "90% interval (seen pair)", "(unseen pair)"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for name, model in bundle.predictors.items():
        mdape = f"{model.oof_mdape_:.1%}" if model.oof_mdape_ is not None else "-"
        table.add_row(
            name,
            str(bundle.manifest["targets"][name]["rows"]),
            mdape,
            f"x/÷ {_factor(model.quantile_seen_)}",
            f"x/÷ {_factor(model.quantile_unseen_)}",
        )
    console.print(table)
    console.print(capacity_note, highlight=False)
    console.print(f"use it with --model-dir {target} (or FLEXPREDICT_MODEL_DIR={target})", highlight=False)


def _train_capacity(records, folder: Path) -> str:
    """Fit the capacity function (latency at a load, throughput under a bound) into the model's subfolder; records
    without latency curves leave it out (predict --load and SLO sizing then ask for a retrain). One line on it."""
    try:
        model = capacity.fit_capacity(records)
    except ValueError as exc:
        return f"no capacity function: {exc}"
    model.save(folder)
    widths = ", ".join(
        f"{metric.replace('_', ' ')} x/÷ {_factor(model.half_width[metric])}" for metric in ("ttft_p50", "tpot_p50")
    )
    return (
        f"capacity function: {model.training_rows['curve_points']} latency-curve points, "
        f"{model.training_rows.get('speed_results', 0)} MLPerf results for speed factors; 90% interval {widths}"
    )


def _factor(log_half_width: float) -> str:
    import math

    return f"{math.exp(log_half_width):.2f}" if math.isfinite(log_half_width) else "inf"


def evaluate(
    dataset_file: Path = typer.Option(None, "--dataset", help="Records (default: the shipped dataset)."),
    target: list[str] = typer.Option(
        None, "--target", "-t", callback=known_targets, help="Targets to evaluate (repeatable; default all)."
    ),
    split: list[str] = typer.Option(
        None,
        "--split",
        "-s",
        help="forward-v4.1, forward-v5.0, grouped-kfold, "
        "leave-one-accelerator-out, leave-one-model-out (repeatable; default all).",
    ),
    predictor: list[str] = typer.Option(
        None, "--predictor", "-p", help="Predictors to compare (default: xgboost and every baseline)."
    ),
    out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Folder for parity plots and tables."),
    model_card: Path = typer.Option(None, help="Also write this model card (Markdown), e.g. models/README.md."),
    json_out: Path = typer.Option(None, "--json", help="Write the metrics table as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Accuracy of every predictor on leak-free splits: MdAPE, MAPE, within 10/25 %, bias, interval coverage."""
    from ..evaluation import DEFAULT_PREDICTORS, SPLITS, parity_plot
    from ..evaluation import evaluate as run
    from ..predictors import PREDICTORS, TARGETS
    from ..report import metrics_table, model_card_markdown

    targets = list(target or TARGETS)
    require_known("--split", split, SPLITS)
    require_known("--predictor", predictor, PREDICTORS)
    records = load_records(dataset_file)
    with progress_bar("evaluating", enabled=not quiet) as update:
        results, rows = run(
            records,
            targets=targets,
            splits=list(split) if split else None,
            predictors=tuple(predictor) if predictor else DEFAULT_PREDICTORS,
            on_progress=update,
        )
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "metrics.csv", index=False)
    plots = []
    for (name, split_name), _ in rows.groupby(["target", "split"]) if len(rows) else []:
        path = out / f"parity_{name}_{split_name}.png"
        parity_plot(rows, str(name), str(split_name), path)
        plots.append(path)
    for name in targets:
        part = results[results["target"] == name]
        if len(part):
            console.print(metrics_table(part, title=f"{name}"))
    console.print(f"wrote {out / 'metrics.csv'} and {len(plots)} parity plots in {out}", highlight=False)
    if json_out:
        json_out.write_text(strict_json(results.to_dict("records"), indent=1))
    if model_card:
        model_card.write_text(model_card_markdown(results))
        console.print(f"wrote model card {model_card}", highlight=False)


def predict(
    input_file: Path = typer.Option(
        None,
        "--input",
        "-i",
        help="Records (parquet/CSV/JSON) in the dataset schema; "
        "raw MLPerf-style fields are enough, metric columns may be missing. Rows with "
        "concurrency or target_qps (and input/output_tokens_mean) also get TTFT/TPOT at "
        "that load.",
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where to write the input plus pred_* columns (.parquet, .csv, .json or .jsonl)."
    ),
    accelerator: str = typer.Option(None, help="One configuration: accelerator id or name, e.g. h100-sxm-80gb."),
    count: int = COUNT,
    nodes: int = NODES,
    model: str = MODEL,
    scenario: str = SCENARIO,
    precision: str = PRECISION,
    engine: str = ENGINE,
    model_dir: Path = MODEL_DIR,
    load: str = typer.Option(
        None, "--load", help="Latency at this load: 20000tok/s (generated tokens/s), 5req/s or 64users."
    ),
    qps: float = typer.Option(
        None, "--qps", help="Latency at this arrival rate (requests/s).", callback=positive_number
    ),
    concurrency: float = typer.Option(
        None, "--concurrency", help="Latency with this many requests in flight.", callback=positive_number
    ),
    isl: int = ISL_OPTION,
    osl: int = OSL_OPTION,
    output_format: str = typer.Option("table", "--format", help="table or json (the single configuration)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Predict throughput, latency, power and energy (with 90 % intervals) for records or one configuration; with a
    load, TTFT and TPOT p50/p99 at that load."""
    from .. import dataset
    from ..schema import SchemaError

    require_known("--format", [output_format], ("table", "json"))
    as_json = as_json or output_format == "json"

    if input_file is not None:
        if out is None:
            fail("--input needs --out FILE")
        if out.suffix.lower() not in RECORD_SUFFIXES or out.is_dir():
            fail(f"--out: expected a {', '.join(RECORD_SUFFIXES)} file, got '{out}'")
        try:
            records = dataset.load(input_file, extra=True)
            _require_columns(input_file)
        except SchemaError as exc:
            fail(str(exc))
        loads = _load_columns(records, input_file)
        capacity_model = _capacity_model(model_dir) if loads is not None else None
        bundle = load_model(model_dir)
        started = time.perf_counter()
        result = predict_records(bundle, records, input_file, capacity_model)
        dataset.save(result, out)
        console.print(
            f"predicted {int((result['match'] == 'resolved').sum())} of {len(records)} records in "
            f"{time.perf_counter() - started:.2f} s -> {out}",
            highlight=False,
        )
        return
    if accelerator is None or model is None:
        fail("give --input FILE --out FILE, or one configuration with --accelerator and --model")
    at_load = _one_load(load, qps, concurrency)
    if at_load is None and (isl or osl):
        fail("--isl/--osl: give a load too (--load, --qps or --concurrency)")
    records = configuration_record(accelerator, count, nodes, model, scenario, precision, engine)
    if at_load is not None:
        _predict_at_load(
            records.assign(input_tokens_mean=isl, output_tokens_mean=osl),
            at_load,
            _capacity_model(model_dir),
            f"{precision or 'any precision'} · {engine or 'any engine'}",
            as_json,
        )
        return
    bundle = load_model(model_dir)
    prediction = bundle.predict(records).iloc[0]
    from ..predictors.constraints import unknown_power_reason

    rows = []
    for name in bundle.predictors:
        value = prediction[f"pred_{name}"]
        if value == value:
            rows.append(
                {
                    "target": name,
                    "prediction": value,
                    "low": prediction[f"pred_{name}_lo"],
                    "high": prediction[f"pred_{name}_hi"],
                    "ood": bool(prediction[f"ood_{name}"]),
                    "note": None,
                }
            )
        elif bool(prediction.get(f"unknown_{name}", False)):
            note = f"unknown: {unknown_power_reason(records.iloc[0]['accelerator'])}"
            rows.append({"target": name, "prediction": None, "low": None, "high": None, "ood": True, "note": note})
    if not rows and not prediction.get("fits", True):
        rec = records.iloc[0]
        fail(
            f"{rec['model']} does not fit in {rec['accelerators_total']}x {rec['accelerator']} (weights and one "
            "sequence's KV cache exceed the memory): try a larger --count or a narrower --precision",
            code=1,
        )
    if not rows:
        fail(
            f"{model_folder(model_dir)}: none of the model's targets ({', '.join(bundle.predictors)}) applies to "
            "this configuration",
            code=1,
        )
    if as_json:
        configuration = records.iloc[0][
            ["accelerator", "accelerators_total", "model", "scenario", "precision", "engine"]
        ].to_dict()
        print(strict_json({"configuration": configuration, "predictions": rows}, indent=1))
        return
    rec = records.iloc[0]
    table = Table(
        title=f"{rec['accelerators_total']}x {rec['accelerator']} · {rec['model']} · {rec['scenario']}"
        f" · {precision or 'any precision'} · {engine or 'any engine'}",
        title_justify="left",
    )
    for column in ("target", "prediction", "90% interval", "note"):
        table.add_column(column, justify="left" if column in ("target", "note") else "right")
    for row in rows:
        if row["prediction"] is None:
            table.add_row(row["target"], "–", "–", row["note"])
            continue
        table.add_row(
            row["target"],
            f"{row['prediction']:,.4g}",
            f"{row['low']:,.4g} – {row['high']:,.4g}",
            "out of distribution" if row["ood"] else "",
        )
    console.print(table)


def _one_load(load: str | None, qps: float | None, concurrency: float | None):
    """The one load given (--load, --qps or --concurrency) as a `Load`, or None; two of them is an error."""
    from ..recommend import Load, RequestError, parse_load

    given = [name for name, value in (("--load", load), ("--qps", qps), ("--concurrency", concurrency)) if value]
    if len(given) > 1:
        fail(f"{given[1]}: give one load ({' or '.join(given)}), not both")
    try:
        parsed = parse_load(load)
    except RequestError as exc:
        fail(str(exc))
    if parsed is not None:
        return parsed.resolved(llm=True)
    return Load(qps, "qps") if qps else Load(concurrency, "concurrency") if concurrency else None


def _capacity_model(model_dir: Path | None):
    """The model folder's capacity function, or one line saying to retrain."""
    try:
        return capacity.load_beside(model_folder(model_dir))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))


LATENCY_ROWS = (
    ("TTFT p50", "pred_ttft_p50_ms"),
    ("TTFT p99", "pred_ttft_p99_ms"),
    ("TPOT p50", "pred_tpot_p50_ms"),
    ("TPOT p99", "pred_tpot_p99_ms"),
)


def _predict_at_load(records, at_load, capacity_model, variant: str, as_json: bool) -> None:
    """TTFT/TPOT p50/p99 with intervals of one configuration at a load, and whether the load exceeds its capacity."""
    from ..normalize import is_llm_benchmark

    config = capacity.configuration(records)
    rec = records.iloc[0]
    if not is_llm_benchmark(str(rec["benchmark"])):
        fail(f"--load: latency at a load is for LLMs (tokens); {rec['model']} is not one")
    if not capacity.covers(records, config).all():
        fail(
            f"{rec['model']} does not fit in {rec['accelerators_total']}x {rec['accelerator']} with room for a KV "
            f"cache (about {config['gpus'].iloc[0]:.0f} needed): try a larger --count or a narrower --precision",
            code=1,
        )
    frame = capacity_model.latency_at_load(records, **{at_load.kind: at_load.value}).iloc[0]
    saturated = float(
        capacity_model.throughput_at_slo(records)["pred_throughput_per_accelerator"].iloc[0] * config["gpus"].iloc[0]
    )
    over = bool(frame["over_capacity"])
    note = _capacity_note(at_load, over, saturated, float(config["max_batch"].iloc[0]))
    rec, lengths = records.iloc[0], config.iloc[0]
    rows = [
        {
            "metric": name,
            "prediction_ms": frame[column],
            "low_ms": frame[f"{column}_lo"],
            "high_ms": frame[f"{column}_hi"],
        }
        for name, column in LATENCY_ROWS
    ]
    if as_json:
        print(
            strict_json(
                {
                    "configuration": {
                        **rec[["accelerator", "accelerators_total", "model", "precision", "engine"]].to_dict(),
                        "isl": lengths["isl"],
                        "osl": lengths["osl"],
                    },
                    "load": {"kind": at_load.kind, "value": at_load.value},
                    "latencies": rows,
                    "output_tokens_per_s": frame["pred_output_tokens_per_s"],
                    "concurrency": frame["pred_concurrency"],
                    "over_capacity": over,
                    "saturated_tokens_per_s": saturated,
                    "note": note,
                },
                indent=1,
            )
        )
        return
    table = Table(
        title=f"{rec['accelerators_total']}x {rec['accelerator']} · {rec['model']} · {variant} · "
        f"{at_load} · ISL/OSL {lengths['isl']:.0f}/{lengths['osl']:.0f}",
        title_justify="left",
    )
    for column in ("latency", "prediction (ms)", "90% interval"):
        table.add_column(column, justify="left" if column == "latency" else "right")
    for row in rows:
        table.add_row(row["metric"], _ms(row["prediction_ms"]), f"{_ms(row['low_ms'])} – {_ms(row['high_ms'])}")
    console.print(table)
    console.print(
        f"output tokens/s: {_ms(frame['pred_output_tokens_per_s'])} · requests in flight: "
        f"{_ms(frame['pred_concurrency'])} · saturated throughput: {saturated:,.0f} tok/s",
        highlight=False,
    )
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False)


def _capacity_note(at_load, over: bool, saturated: float, max_batch: float) -> str | None:
    if not over:
        return None
    if at_load.kind == "concurrency":
        return (
            f"over capacity: {at_load} exceeds the batch limit (about {max_batch:,.0f} sequences); the rest queue "
            f"for a slot, so TTFT grows with the load while throughput stays near {saturated:,.0f} tok/s"
        )
    return (
        f"over capacity: {at_load} exceeds what this configuration sustains (about {saturated:,.0f} tok/s "
        "saturated); no steady state, so no latency: add accelerators or replicas"
    )


def _ms(value) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


LOAD_COLUMNS = ("concurrency", "target_qps")
SHAPE_COLUMNS = ("input_tokens_mean", "output_tokens_mean")
CARRIED_COLUMNS = (
    *LOAD_COLUMNS,
    *SHAPE_COLUMNS,
    "tensor_parallel",
    "expert_parallel",
    "pipeline_parallel",
    "attention_dp",
    "serving_mode",
    "max_num_seqs",
)


def _load_columns(records, source: Path):
    """The rows' load (concurrency, else target_qps) when the input has either column, else None; a value that is
    not a positive number is a one-line error naming the column and row."""
    import pandas as pd

    present = [
        column for column in (*LOAD_COLUMNS, *SHAPE_COLUMNS) if column in records and records[column].notna().any()
    ]
    for column in present:
        values = pd.to_numeric(records[column], errors="coerce")
        bad = records[column].notna() & ~(values > 0)
        if bad.any():
            position = int(bad.to_numpy().nonzero()[0][0])
            fail(
                f"{source}: column '{column}', row {position + 1}: expected a positive number, got "
                f"'{records[column].iloc[position]}'"
            )
    if not set(present) & set(LOAD_COLUMNS):
        return None
    return present


def predict_records(bundle, records, source: Path, capacity_model=None):
    """Input rows resolved as the single configuration is (ids, short ids, vendor names, HF ids), predicted; the
    output carries the resolved accelerator, model, accelerators_total, the prediction's `fits` and `match`
    (resolved / unknown). With `capacity_model`, rows with a `concurrency` (else `target_qps`) also get TTFT/TPOT
    p50/p99 (+ _lo/_hi), output tokens/s and `over_capacity` at that load.
    Unresolved rows are reported on stderr; if none resolves, nothing is written."""
    import pandas as pd

    from ..configs import config_records

    if records.empty:
        fail(f"{source}: no rows to predict")
    configurations, problems = [], []
    for position, row in enumerate(records.to_dict("records")):
        configuration = _row_configuration(row)
        if isinstance(configuration, str):
            problems.append(f"row {position + 1}: {configuration}")
        else:
            configurations.append((position, configuration))
    if not configurations:
        fail(f"{source}: none of {len(records)} row(s) could be resolved ({'; '.join(problems[:3])})")
    if problems:
        err_console.print(
            f"[yellow]warning:[/] {source}: {len(problems)} of {len(records)} row(s) not resolved "
            "(match = unknown, no prediction):",
            highlight=False,
        )
        for line in problems[:UNRESOLVED_SHOWN]:
            err_console.print(f"  {line}", highlight=False, markup=False)
    positions = [position for position, _ in configurations]
    resolved = config_records([cfg for _, cfg in configurations])
    for column in (c for c in CARRIED_COLUMNS if c in records):  # the workload and parallelism the row states
        resolved[column] = records[column].iloc[positions].set_axis(resolved.index)
    predicted = bundle.predict(resolved)
    if capacity_model is not None:  # at the row's load, TTFT/TPOT p99 are the capacity function's, not MLPerf's
        at_load, loaded = _latencies_at_row_loads(capacity_model, resolved)
        predicted = predicted.drop(columns=[c for c in at_load.columns if c in predicted]).join(
            at_load.where(loaded, predicted.reindex(columns=at_load.columns), axis=0)
        )
    predicted.index = records.index[positions]
    identity = resolved[["accelerator", "model", "accelerators_total"]].set_axis(records.index[positions])
    replaced = {*identity.columns, *predicted.columns, "match"}  # an earlier prediction's columns are replaced
    result = records.drop(columns=[c for c in records.columns if c in replaced]).join(identity).join(predicted)
    result["match"] = pd.Series("unknown", index=records.index).where(~records.index.isin(identity.index), "resolved")
    return result


def _latencies_at_row_loads(capacity_model, records):
    """Latency at each row's load: its concurrency where given, else its target_qps (requests/s); rows with neither,
    or that the capacity function does not describe (not an LLM, weights that do not fit), get none. A new frame on
    the records' index, and which rows got one."""
    import pandas as pd

    parts = []
    remaining = pd.Series(capacity.covers(records), index=records.index)  # rows it does not describe: no load
    for column, kind in (("concurrency", "concurrency"), ("target_qps", "qps")):
        if column not in records:
            continue
        values = pd.to_numeric(records[column], errors="coerce").astype("float64")
        rows = remaining & values.gt(0)
        if rows.any():
            parts.append(capacity_model.latency_at_load(records.loc[rows], **{kind: values[rows].to_numpy()}))
        remaining &= ~rows
    columns = [
        f"pred_{metric}_{stat}_ms{end}"
        for metric in ("ttft", "tpot")
        for stat in ("p50", "p99")
        for end in ("", "_lo", "_hi")
    ] + ["pred_output_tokens_per_s", "over_capacity"]
    at_load = (pd.concat(parts) if parts else pd.DataFrame(columns=columns)).reindex(records.index)[columns]
    return at_load, at_load["over_capacity"].notna()


def _row_configuration(row: dict) -> dict | str:
    """One input row as a `config_records` configuration, or why it cannot be one."""
    import pandas as pd

    from ..configs import ConfigError, accelerator_row, resolve_model
    from ..normalize import engine as canonical_engine
    from ..normalize import precision as canonical_precision
    from ..normalize import scenario as scenario_of

    def given(*names):
        return next((row[n] for n in names if n in row and not pd.isna(row[n]) and str(row[n]).strip()), None)

    try:
        acc = accelerator_row(str(given("accelerator", "accelerator_raw")))
        model = resolve_model(str(given("model", "benchmark")))
    except ConfigError as exc:
        return str(exc)
    scenario = scenario_of(given("scenario"))
    if scenario is None:
        return f"scenario: expected {SCENARIO_HELP[:-1]}, got '{given('scenario')}'"
    try:
        nodes = float(_first(given("nodes"), 1))
        per_node = float(
            _first(given("accelerators_per_node", "count"), float(_first(given("accelerators_total"), 1)) / nodes)
        )
    except (TypeError, ValueError):
        per_node = nodes = float("nan")
    if not (per_node.is_integer() and nodes.is_integer() and per_node >= 1 and nodes >= 1):
        return (
            f"count: expected whole numbers >= 1 of accelerators per node and nodes, got "
            f"{given('accelerators_per_node', 'count', 'accelerators_total')} x {given('nodes') or 1}"
        )
    precision, engine = given("precision"), given("engine")
    if precision is not None and canonical_precision(precision) is None:
        return f"precision: expected one of {', '.join(PRECISIONS)}, got '{precision}'"
    if engine is not None and canonical_engine(engine)[0] is None:
        return f"engine: expected a known engine (vllm, tensorrt-llm, sglang, ...), got '{engine}'"
    return {
        "accelerator_row": acc,
        "model_row": model,
        "count": int(per_node),
        "nodes": int(nodes),
        "scenario": scenario,
        "precision": canonical_precision(precision),
        "engine": canonical_engine(engine)[0],
    }


def configuration_record(accelerator, count, nodes, model, scenario, precision, engine):
    """One configuration from command-line options as a schema record (one-line errors for unknown names)."""
    from ..configs import ConfigError, config_records
    from ..normalize import scenario as canonical_scenario

    canonical = canonical_scenario(scenario)
    if canonical is None:
        fail(f"--scenario: expected Offline, Server, Interactive, SingleStream or MultiStream, got '{scenario}'")
    try:
        return config_records(
            [
                {
                    "accelerator": accelerator,
                    "count": count,
                    "nodes": nodes,
                    "model": model,
                    "scenario": canonical,
                    "precision": precision,
                    "engine": engine,
                }
            ]
        )
    except ConfigError as exc:
        fail(str(exc))


def _first(value, default):
    return default if value is None else value


def _require_columns(path: Path) -> None:
    """A predict input must say what runs where: scenario, model (or benchmark), accelerator (or its name)."""
    import pandas as pd

    from ..schema import SchemaError

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = set(pq.read_schema(path).names)
    elif suffix == ".csv":
        columns = set(pd.read_csv(path, nrows=0).columns)
    else:
        columns = set(pd.read_json(path, lines=suffix == ".jsonl").columns)
    for needed in (("scenario",), ("model", "benchmark"), ("accelerator", "accelerator_raw")):
        if not columns & set(needed):
            raise SchemaError(
                f"{path}: missing column '{needed[0]}'" + (f" (or '{needed[1]}')" if len(needed) > 1 else "")
            )
