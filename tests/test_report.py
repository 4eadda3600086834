"""report: one self-contained HTML page with every section and its images inlined; the campaign section shows the
latest campaign's status, a note when there is none, one line when its study cannot be read."""

from __future__ import annotations

import base64
import re
from html import escape

import pytest
from typer.testing import CliRunner

from flexpredict import dataset, explain, report_html
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
    path = report_html.build_report(
        tmp_path / "out" / "report.html",
        bundle=ModelBundle.load(targets=(THROUGHPUT,)),
        records=records,
        targets=[THROUGHPUT],
        evaluation=evaluation,
        model_card=card,
        sample=300,
    )
    html = path.read_text(encoding="utf-8")
    for key, title in report_html.SECTIONS.items():
        assert f"<section id='{key}'><h2>{title}</h2>" in html
    images = _images(html)
    # coverage, parity, SHAP summary and the three dependence plots of throughput
    assert len(images) == 6 and all(image[:4] == b"\x89PNG" and len(image) > 8_000 for image in images)
    assert "<script" not in html and "src='http" not in html and 'src="http' not in html  # nothing fetched
    assert f"{len(records):,} records" in html and "v5.0" in html  # coverage by round
    assert "Held-out accuracy (README.md)" in html and "forward-v5.0" in html and "lookup-median" in html
    # the three most important features, in the words `explain` gives them
    named = re.search(r"Most important: (.*?)\.</p>", html).group(1)
    trees = ModelBundle.load(targets=(THROUGHPUT,)).predictors[THROUGHPUT].booster_
    words = {escape(explain.feature_words(name)) for name in trees.feature_names}
    shown = [re.sub(r" \([-0-9.]+\)$", "", part) for part in named.split(", ")]
    assert len(shown) == 3 and set(shown) <= words


def test_campaign_section_shows_the_latest_campaign(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # campaign.status() looks under ./runs/campaigns
    assert "No measurement campaign status available" in report_html._campaign()

    damaged = tmp_path / "runs" / "campaigns" / "sweep" / "study.db"
    damaged.parent.mkdir(parents=True)
    damaged.write_text("not a SQLite file")
    assert "<pre>campaign status unavailable: " in report_html._campaign()

    from flexpredict.campaign import study

    monkeypatch.setattr(study, "status", lambda: {"campaign": "<h200> sweep", "trials": 3, "best": [{"ok": True}]})
    html = report_html._campaign()
    assert "&lt;h200&gt; sweep" in html and "<td>trials</td>" in html and '[{"ok": true}]' in html


def test_cli_report_with_quick_evaluation(tmp_path, monkeypatch):
    monkeypatch.setitem(report_html.QUICK_EVALUATION, "predictors", ("lookup-median",))  # seconds, not minutes
    result = runner.invoke(
        app, ["report", "--out", str(tmp_path), "-t", "tpot_p99_ms", "--sample", "200", "--evaluate", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "MdAPE" in html and "Run `flexpredict report --evaluate`" not in html
    assert len(_images(html)) == 3  # coverage, parity, tpot summary
    bad = runner.invoke(app, ["report", "--out", str(tmp_path), "-t", "speed"])
    assert bad.exit_code == 2 and "--target: expected one of" in bad.output and "got 'speed'" in bad.output
