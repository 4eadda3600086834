"""report: one self-contained HTML page with every section and its images inlined; the campaign section appears
only when a campaign module says something."""

from __future__ import annotations

import base64
import re
import sys
import types

import pytest
from typer.testing import CliRunner

import flexpredict
from flexpredict import dataset, report_html
from flexpredict.cli import app
from flexpredict.evaluation import evaluate
from flexpredict.predictors.bundle import ModelBundle
from flexpredict.report import model_card_markdown

runner = CliRunner()
THROUGHPUT = "throughput_per_accelerator"


@pytest.fixture(scope="module")
def records():
    return dataset.load()


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_has_every_section_with_inlined_images(records, tmp_path):
    evaluation = evaluate(records, targets=[THROUGHPUT], splits=["forward-v5.0"], predictors=("lookup-median",))
    card = tmp_path / "README.md"
    card.write_text(model_card_markdown(evaluation[0]))
    path = report_html.build_report(tmp_path / "out" / "report.html", bundle=ModelBundle.load(targets=(THROUGHPUT,)),
                                    records=records, targets=[THROUGHPUT], evaluation=evaluation, model_card=card,
                                    sample=300)
    html = path.read_text(encoding="utf-8")
    for key, title in report_html.SECTIONS.items():
        assert f"<section id='{key}'><h2>{title}</h2>" in html
    images = _images(html)
    # coverage, parity, SHAP summary and the three dependence plots of throughput
    assert len(images) == 6 and all(image[:4] == b"\x89PNG" and len(image) > 8_000 for image in images)
    assert "<script" not in html and "src='http" not in html and 'src="http' not in html  # nothing fetched
    assert f"{len(records):,} records" in html and "v5.0" in html  # coverage by round
    assert "Held-out accuracy (README.md)" in html and "forward-v5.0" in html and "lookup-median" in html
    assert "architecture" in html or "model kind" in html or "roofline estimate" in html  # features in words


def test_campaign_section_shows_what_the_campaign_module_reports(monkeypatch):
    module = types.ModuleType("flexpredict.campaign")
    module.status = lambda: {"campaign": "<h200> sweep", "runs_done": 3, "runs_planned": 5, "last": {"ok": True}}
    monkeypatch.setitem(sys.modules, "flexpredict.campaign", module)
    monkeypatch.setattr(flexpredict, "campaign", module, raising=False)
    html = report_html._campaign()
    assert "&lt;h200&gt; sweep" in html and "runs_planned" in html and '{"ok": true}' in html

    def broken():
        raise RuntimeError("no campaign folder")

    module.status = broken
    assert "campaign status unavailable: no campaign folder" in report_html._campaign()
    del module.status
    assert "No measurement campaign status available" in report_html._campaign()


def test_cli_report_with_quick_evaluation(tmp_path, monkeypatch):
    monkeypatch.setitem(report_html.QUICK_EVALUATION, "predictors", ("lookup-median",))  # seconds, not minutes
    result = runner.invoke(app, ["report", "--out", str(tmp_path), "-t", "tpot_p99_ms", "--sample", "200",
                                 "--evaluate", "--quiet"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "MdAPE" in html and "Run `flexpredict report --evaluate`" not in html
    assert len(_images(html)) == 3  # coverage, parity, tpot summary
    bad = runner.invoke(app, ["report", "--out", str(tmp_path), "-t", "speed"])
    assert bad.exit_code == 2 and "--target: expected one of" in bad.output and "got 'speed'" in bad.output
