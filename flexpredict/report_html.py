"""`flexpredict report`: one self-contained HTML page (images inlined as base64 PNG) for readers who will not run a
notebook: dataset coverage, model accuracy, parity plots, SHAP summaries and the latest measurement campaign."""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from . import explain

SECTIONS = {
    "coverage": "Dataset coverage",
    "accuracy": "Model accuracy",
    "parity": "Parity plots",
    "explanations": "SHAP explanations",
    "campaign": "Latest measurement campaign",
}
# `--evaluate`: throughput on the newest round, trained on the earlier ones, against the strongest baseline
QUICK_EVALUATION: dict[str, Any] = {
    "targets": ["throughput_per_accelerator"],
    "splits": ["forward-v5.0"],
    "predictors": ("xgboost", "lookup-median"),
}
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;
text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.note{color:#666;font-size:.9em}nav a{margin-right:1em}"""


def quick_evaluation(records: pd.DataFrame, on_progress: Callable[[int, int, str], None] | None = None):
    """(metrics, per-row predictions) of QUICK_EVALUATION: minutes instead of a full evaluation's hour."""
    from .evaluation import evaluate

    return evaluate(records, **QUICK_EVALUATION, on_progress=on_progress)


def build_report(
    path: Path | str,
    *,
    bundle,
    records: pd.DataFrame,
    targets: list[str] | None = None,
    evaluation: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    model_card: Path | None = None,
    sample: int | None = 2000,
) -> Path:
    """Write the report to `path`. `evaluation` is what `evaluation.evaluate` returns (parity plots need it);
    `model_card` is a Markdown model card whose held-out accuracy table is shown when it exists."""
    from .predictors import TARGETS

    explained = targets or [t for t in TARGETS if hasattr(bundle.predictors.get(t), "transfer_design")]
    body = {
        "coverage": _coverage(records),
        "accuracy": _accuracy(bundle, model_card),
        "parity": _parity(evaluation),
        "explanations": _explanations(bundle, records, explained, sample),
        "campaign": _campaign(),
    }
    manifest = bundle.manifest
    head = (
        f"<p class=note>Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by flexpredict from "
        f"{len(records):,} records; model: {escape(str(manifest.get('predictor', '?')))} trained "
        f"{escape(str(manifest.get('trained_at', '?')))} on {manifest.get('training_records', '?')} records "
        f"(data hash {escape(str(manifest.get('training_data_hash', '?')))}).</p>"
    )
    nav = "<nav>" + "".join(f"<a href='#{key}'>{title}</a>" for key, title in SECTIONS.items()) + "</nav>"
    sections = "".join(f"<section id='{key}'><h2>{SECTIONS[key]}</h2>{html}</section>" for key, html in body.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>flexpredict report</title>"
        f"<style>{_STYLE}</style></head><body><h1>flexpredict report</h1>{head}{nav}{sections}"
        "</body></html>",
        encoding="utf-8",
    )
    return path


def campaign_status() -> dict | str | None:
    """`campaign.status()`: the campaign most recently active under runs/campaigns; None when there is none, one
    line when its study cannot be read (a damaged study must not take the rest of the report down)."""
    from .campaign import status

    try:
        return status()
    except Exception as exc:
        return f"campaign status unavailable: {exc}"


def coverage_plot(records: pd.DataFrame, path=None, vendors: int = 6):
    """Records per MLPerf round, stacked by accelerator vendor (the most frequent ones, the rest as 'other');
    saved when given a path, the figure returned for notebooks."""
    import matplotlib.pyplot as plt

    vendor = records["accelerator_vendor"].astype("object").fillna("unknown")
    top = vendor.value_counts().index[:vendors]
    counts = pd.crosstab(records["round"], vendor.where(vendor.isin(top), "other"))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts.plot.bar(stacked=True, ax=ax, width=0.7)
    ax.set_xlabel("MLPerf Inference round")
    ax.set_ylabel("records")
    ax.legend(fontsize=7, ncols=2)
    ax.set_title("records per round by accelerator vendor", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


# -- sections ----------------------------------------------------------------------------------------------------


def _coverage(records: pd.DataFrame) -> str:
    from .dataset import coverage

    info = coverage(records)
    rounds = pd.DataFrame(
        {
            "round": list(info["rounds"]),
            "records": list(info["rounds"].values()),
            "with power": [info["with_power"].get(r, 0) for r in info["rounds"]],
            "with TTFT/TPOT": [info["with_ttft_tpot"].get(r, 0) for r in info["rounds"]],
        }
    )
    unknown = pd.DataFrame(
        list(info["unknown_accelerators"].items())[:10], columns=["accelerator (as submitted)", "records"]
    )
    return (
        f"<p>{info['rows']:,} records; accelerator mapped to the catalog: "
        f"{info['accelerator_mapped_share']:.1%} of all, {info['accelerator_mapped_share_datacenter']:.1%} of "
        "datacenter systems.</p>"
        + _table(rounds)
        + _image(lambda buffer: coverage_plot(records, buffer))
        + "<h3>Most frequent unmapped accelerators</h3>"
        + _table(unknown)
    )


def _accuracy(bundle, model_card: Path | None) -> str:
    from .predictors import TARGETS

    rows = []
    for name, predictor in ((n, bundle.predictors[n]) for n in TARGETS if n in bundle.predictors):
        oof = getattr(predictor, "oof_mdape_", None)
        rows.append(
            {
                "target": name,
                "unit": TARGETS[name].unit,
                "training rows": bundle.manifest.get("targets", {}).get(name, {}).get("rows"),
                "out-of-fold MdAPE": f"{oof:.1%}" if oof is not None else "-",
                "90% interval, seen pair": f"×/÷ {math.exp(predictor.quantile_seen_):.2f}",
                "unseen pair": f"×/÷ {math.exp(predictor.quantile_unseen_):.2f}",
            }
        )
    html = (
        "<p>Out-of-fold accuracy of the shipped predictors (grouped folds, computed when they were trained) and "
        "their calibrated 90 % interval widths.</p>" + _table(pd.DataFrame(rows))
    )
    held_out = _markdown_table(model_card.read_text(encoding="utf-8")) if model_card and model_card.exists() else None
    metrics = bundle.manifest.get("metrics")
    if held_out is not None and model_card is not None:
        html += f"<h3>Held-out accuracy ({escape(model_card.name)})</h3>" + _table(held_out)
    elif metrics:
        html += "<h3>Held-out accuracy (manifest)</h3><pre>" + escape(json.dumps(metrics, indent=1)) + "</pre>"
    else:
        html += (
            "<p class=note>No held-out metrics shipped: `flexpredict evaluate --model-card models/README.md` "
            "writes them, `flexpredict report --evaluate` runs a quick one.</p>"
        )
    return html


def _parity(evaluation) -> str:
    if evaluation is None:
        return "<p class=note>Run `flexpredict report --evaluate` for held-out parity plots.</p>"
    from .evaluation import parity_plot

    results, rows = evaluation
    shown = results[results["subset"].isin(["all", "llm", "non-llm"])]
    columns = [
        c
        for c in ("target", "split", "predictor", "subset", "n", "mdape", "within_25", "bias", "coverage")
        if c in shown
    ]
    html = _table(shown[columns].round(3))
    for (target, split), _ in rows.groupby(["target", "split"]) if len(rows) else []:
        html += _image(partial(parity_plot, rows, target, split))
    return html


def _explanations(bundle, records: pd.DataFrame, targets: list[str], sample: int | None) -> str:
    html = (
        "<p>Mean |SHAP| of each target's trees over the rows they learned from (every training record with its "
        "configuration, model+accelerator pair, model or accelerator hidden from its priors), in log units: "
        "0.1 is a typical effect of about 10 %. Trees only correct configurations nobody measured; a measured "
        "configuration is predicted by its measurements (see `flexpredict explain --accelerator ...`).</p>"
    )
    for target in targets:
        glob = explain.explain_global(bundle, records, target, sample=sample)
        top = ", ".join(f"{explain.feature_words(str(n))} ({v:.3f})" for n, v in glob.importance.head(3).items())
        html += (
            f"<h3>{escape(target)}</h3><p>{glob.records:,} training records, {len(glob.values):,} of "
            f"{glob.design_rows:,} design rows explained. Most important: {escape(top)}.</p>"
            + _image(partial(explain.summary_plot, glob))
        )
        if target == "throughput_per_accelerator":
            html += "".join(
                _image(partial(explain.dependence_plot, glob, feature))
                for feature in explain.DEPENDENCE
                if feature in glob.values.columns
            )
    return html


def _campaign() -> str:
    status = campaign_status()
    if status is None:
        return "<p class=note>No measurement campaign status available.</p>"
    if isinstance(status, str):
        return f"<pre>{escape(status)}</pre>"
    return _table(pd.DataFrame({"field": list(status), "value": [_text(v) for v in status.values()]}))


# -- helpers -----------------------------------------------------------------------------------------------------


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="-", escape=True)


def _image(draw: Callable[[io.BytesIO], object]) -> str:
    buffer = io.BytesIO()
    draw(buffer)
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _markdown_table(text: str) -> pd.DataFrame | None:
    """The first pipe table after the '## Held-out accuracy' heading of a model card."""
    _, found, rest = text.partition("## Held-out accuracy")
    lines = []
    for line in rest.splitlines() if found else []:
        if line.strip().startswith("|"):
            lines.append(line.strip())
        elif lines:
            break
    if len(lines) < 3:
        return None
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
