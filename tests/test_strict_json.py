"""`--format json` is strict JSON for recommend, predict and explain: missing values are null, never NaN/Infinity
(JavaScript's JSON.parse and jq reject those tokens)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flexpredict.cli import app

runner = CliRunner()
H100 = ["--accelerator", "h100-sxm-80gb", "--count", "8", "--model", "llama2-70b"]


def strict(text: str):
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"non-JSON token {token}"))


def nulls(value) -> int:
    if isinstance(value, dict):
        return sum(nulls(v) for v in value.values())
    if isinstance(value, list):
        return sum(nulls(v) for v in value)
    return value is None


@pytest.mark.parametrize(
    "args, code",
    [
        (["recommend", "--budget", "20000", "--latency-slo", "200ms", "--format", "json", "--top", "20"], 0),
        (["recommend", "--model", "llama3.1-8b", "--scenario", "Offline", "--format", "json", "--top", "20"], 0),
        (["recommend", "--budget", "1", "--format", "json"], 1),  # no recommendation: the explanation, as JSON
        (["predict", *H100, "--scenario", "Server", "--format", "json"], 0),
        (["predict", *H100, "--scenario", "Offline", "--json"], 0),
        (["explain", *H100, "--scenario", "Server", "--format", "json"], 0),
    ],
)
def test_json_output_parses_strictly(args, code):
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    document = strict(result.stdout)
    assert isinstance(document, dict) and document


def test_missing_values_are_null():
    """Offline llama3.1-8b rows have no TTFT/TPOT prediction: those fields are null, not NaN."""
    result = runner.invoke(app, ["recommend", "--model", "llama3.1-8b", "--scenario", "Offline", "--format", "json"])
    document = strict(result.stdout)
    assert document["recommendations"] and nulls(document["recommendations"]) > 0
