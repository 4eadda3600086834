"""recommend: units, the cost formula, budget/SLO/load filtering, explanations, JSON schema, and honesty vs data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from flexpredict import capacity, catalogs, dataset, scores
from flexpredict.cli import app
from flexpredict.costs import usd_per_million
from flexpredict.predictors.bundle import ModelBundle
from flexpredict.recommend import TARGETS_USED, Load, Request, RequestError, parse_duration_ms, parse_load, recommend

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle():
    return ModelBundle.load(targets=TARGETS_USED)


@pytest.fixture(scope="module")
def records():
    return dataset.load()


@pytest.mark.parametrize(
    "text, ms", [("200ms", 200), ("0.2s", 200), ("200", 200), ("1.5 s", 1500), (" 40 ms ", 40), ("2sec", 2000)]
)
def test_durations(text, ms):
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["fast", "200 us", "-5ms", "0", "ms", "2h"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(RequestError, match="--tpot-slo"):
        parse_duration_ms(text, "--tpot-slo")


@pytest.mark.parametrize(
    "text, value, kind",
    [
        ("5000tok/s", 5000, "tokens_per_s"),
        ("5k tok/s", 5000, "tokens_per_s"),
        ("20 samples/s", 20, "qps"),
        ("3req/s", 3, "qps"),
        ("2 qps", 2, "qps"),
        ("64users", 64, "concurrency"),
        ("300", 300, None),
    ],
)
def test_loads(text, value, kind):
    assert parse_load(text) == Load(value, kind)


@pytest.mark.parametrize("text", ["lots", "0tok/s", "5 parsecs", "-3users"])
def test_bad_loads_name_the_option(text):
    with pytest.raises(RequestError, match="--load"):
        parse_load(text)


def test_cost_per_million_tokens_includes_the_3600():
    # $3.6/h at 1 token/s: 3600 tokens an hour cost $3.6, a million cost $1000
    assert usd_per_million(3.6, 1.0) == pytest.approx(1000.0)
    assert usd_per_million(10.0, 2500.0) == pytest.approx(10.0 / (2500.0 * 3600.0) * 1e6)
    assert usd_per_million(10.0, 0) == math.inf


def test_default_request_ranks_within_budget_and_slo(bundle, records):
    result = recommend(Request(budget=2000, latency_slo_ms=200), bundle=bundle, records=records)
    assert result.model["id"] == "llama2-70b" and result.scenario == "Server"
    top = result.top
    assert len(top) >= 3
    assert (top["period_cost"] <= 2000 + 1e-6).all()
    assert (top["p_slo"] >= 0.8).all()
    assert top["total_throughput"].is_monotonic_decreasing
    np.testing.assert_allclose(top["usd_per_million"], top["usd_per_hour"] / (top["throughput"] * 3600) * 1e6)
    assert result.reasons and all(result.reasons.values())


def test_a_candidate_just_over_budget_is_excluded(bundle, records):
    base = Request(accelerator="nvidia-h100-sxm-80gb", latency_slo_ms=200, max_accelerators=8)
    cheapest = recommend(base, bundle=bundle, records=records).ranked["usd_per_hour"].min()
    monthly = cheapest * 730
    fits = recommend(Request(**{**base.__dict__, "budget": monthly * 1.001}), bundle=bundle, records=records)
    assert len(fits.ranked) >= 1 and (fits.ranked["usd_per_hour"] <= cheapest + 1e-9).all()
    over = recommend(Request(**{**base.__dict__, "budget": monthly * 0.999}), bundle=bundle, records=records)
    assert over.ranked.empty
    assert "budget" in over.explanation and f"{math.ceil(monthly):,}" in over.explanation


def test_unaffordable_candidates_are_not_scored_and_the_answer_is_the_same(bundle, records):
    """A candidate whose one replica costs more than the budget is dropped before scoring (most of a first
    request's time): the ranking equals the one that scored everything, and the funnel says how many."""
    request = Request(budget=2000, latency_slo_ms=200)
    fast = recommend(request, bundle=bundle, records=records)
    full = recommend(request, bundle=bundle, records=records, score_over_budget=True)
    skipped = dict(fast.funnel)["  one replica over budget (not scored)"]
    assert 0 < skipped < len(full.candidates) and "  one replica over budget (not scored)" not in dict(full.funnel)
    columns = ["accelerator", "accelerators_total", "precision", "engine", "throughput", "period_cost", "p_slo"]
    assert fast.ranked[columns].reset_index(drop=True).equals(full.ranked[columns].reset_index(drop=True))
    unscored = fast.candidates[fast.candidates["throughput"].isna()]
    assert len(unscored) == skipped and (unscored["dropped"] == "over budget").all()
    assert full.candidates.loc[unscored.index, "dropped"].notna().all()  # over budget, or the SLO went first


def test_a_candidate_just_over_the_slo_is_excluded(bundle, records):
    base = Request(accelerator="nvidia-h200-sxm-141gb", max_accelerators=8, scenario="Server")
    scored = recommend(base, bundle=bundle, records=records).candidates
    tpot = float(scored["pred_tpot_p99_ms"].min())
    # a bound at the predicted p99 is met with P = 0.5, below the default 0.8 confidence
    tight = recommend(Request(**{**base.__dict__, "tpot_slo_ms": tpot}), bundle=bundle, records=records)
    assert tight.ranked.empty and "SLO" in tight.explanation
    loose = recommend(Request(**{**base.__dict__, "tpot_slo_ms": tpot * 3}), bundle=bundle, records=records)
    assert not loose.ranked.empty


def test_load_mode_minimises_cost_of_enough_replicas(bundle, records):
    result = recommend(Request(load=20000, latency_slo_ms=200), bundle=bundle, records=records)
    top = result.top
    assert (top["replicas"] * top["throughput"] >= 20000 - 1e-6).all()
    assert ((top["replicas"] - 1) * top["throughput"] < 20000).all()
    assert top["period_cost"].is_monotonic_increasing


def test_unknown_model_suggests_names(bundle, records):
    with pytest.raises(RequestError, match="did you mean"):
        recommend(Request(model="lama2-70b"), bundle=bundle, records=records)


def test_cli_json_schema():
    result = runner.invoke(
        app, ["recommend", "--budget", "2000", "--latency-slo", "200ms", "--format", "json", "--top", "5"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert set(document) == {"request", "funnel", "recommendations", "explanation"}
    assert document["request"]["model"] == "llama2-70b" and document["request"]["model_is_default"]
    first = document["recommendations"][0]
    for key in (
        "rank",
        "accelerator",
        "accelerators_total",
        "engine",
        "precision",
        "throughput",
        "throughput_lo",
        "throughput_hi",
        "pred_tpot_p99_ms",
        "p_slo",
        "replicas",
        "usd_per_hour",
        "usd_per_month",
        "usd_per_million",
        "energy_j_per_unit",
        "ood",
        "reasons",
    ):
        assert key in first
    assert len(document["recommendations"]) <= 5


def test_cli_table_and_bad_unit():
    result = runner.invoke(app, ["recommend", "--budget", "2000", "--latency-slo", "200ms"])
    assert result.exit_code == 0, result.output
    assert "llama2-70b (default model" in result.output and "$/M tok" in result.output
    bad = runner.invoke(app, ["recommend", "--latency-slo", "fast"])
    assert bad.exit_code == 2 and "--latency-slo" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_plot_is_written(tmp_path):
    path = tmp_path / "pareto.png"
    result = runner.invoke(app, ["recommend", "--budget", "20000", "--latency-slo", "200ms", "--plot", str(path)])
    assert result.exit_code == 0, result.output
    assert path.stat().st_size > 10_000


def test_measured_values_fall_inside_predicted_intervals(bundle, records):
    """Where MLPerf measured a recommended configuration, the measurement lies in the 90 % interval."""
    result = recommend(Request(budget=200000, latency_slo_ms=200, top=200), bundle=bundle, records=records)
    checked = result.ranked[result.ranked["measured_runs"] > 0]
    assert len(checked) >= 5
    measured = checked["measured_throughput_per_accelerator"] * checked["accelerators_total"]
    inside = (measured >= checked["throughput_lo"]) & (measured <= checked["throughput_hi"])
    assert inside.mean() >= 0.8


def test_shipped_score_tables_are_current():
    """`train` pre-scores the default model; a catalog or model edit without retraining would leave them stale and
    silently slow the first `recommend` (and this test names the fix)."""
    folder = catalogs.default_model_dir()
    current = folder / scores.FOLDER / scores.fingerprint(folder)
    assert {p.name for p in current.glob("*.parquet")} >= {
        "llama2-70b__Server.parquet",
        "llama2-70b__Offline.parquet",
    }, (
        "stale score tables (a catalog, the model or the scoring code changed): refresh them with `python -c 'from "
        "flexpredict import catalogs, dataset; from flexpredict.predictors.bundle import ModelBundle; from "
        "flexpredict.recommend import prescore; prescore(ModelBundle.load(), catalogs.default_model_dir(), "
        "dataset.load())'` (flexpredict train does it too)"
    )


def test_remembered_scores_equal_live_scores(bundle, records, tmp_path):
    """The same request answered from the shipped tables, from the user cache and live gives the same ranking."""
    request = Request(budget=20000, latency_slo_ms=200, top=50)
    sizing = capacity.load_beside(catalogs.default_model_dir())  # the shipped model sizes by its capacity function
    live = recommend(request, bundle=bundle, records=records, capacity_model=sizing)
    shipped = recommend(request, records=records)
    assert list(shipped.ranked.index) == list(live.ranked.index) and len(live.ranked) > 10
    columns = ["throughput", "throughput_lo", "throughput_hi", "pred_tpot_p99_ms", "p_slo", "usd_per_million"]
    np.testing.assert_allclose(shipped.ranked[columns].to_numpy(float), live.ranked[columns].to_numpy(float))
    assert shipped.reasons == live.reasons

    other = Request(model="llama3.1-8b", budget=20000, latency_slo_ms=200, top=50)
    first = recommend(other, model_dir=catalogs.default_model_dir(), records=records)  # live, then remembered
    cached = list(scores.user_cache_dir().rglob("llama3.1-8b__Server.parquet"))
    assert len(cached) == 1
    again = recommend(other, records=records)
    assert list(again.ranked.index) == list(first.ranked.index)
    np.testing.assert_allclose(again.ranked[columns].to_numpy(float), first.ranked[columns].to_numpy(float))
    assert again.reasons == first.reasons


def test_damaged_score_cache_is_ignored(records):
    request = Request(model="llama3.1-8b", scenario="Offline", budget=20000, top=20)
    first = recommend(request, records=records)
    for path in scores.user_cache_dir().rglob("llama3.1-8b__Offline.parquet"):
        path.write_bytes(b"not parquet")
    again = recommend(request, records=records)
    assert list(again.ranked.index) == list(first.ranked.index)


def test_unwritable_cache_only_costs_time(records, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("FLEXPREDICT_CACHE_DIR", str(blocker))
    result = recommend(Request(model="gptj", scenario="Offline", budget=20000, top=5), records=records)
    assert len(result.ranked) > 0 and blocker.read_text().startswith("a file")


def test_a_tight_tpot_slo_uses_the_interactive_evidence(bundle, records):
    """40 ms TPOT for llama2-70b: MLPerf's Interactive results met exactly that bound (Server: 200 ms)."""
    result = recommend(Request(budget=20000, latency_slo_ms=40), bundle=bundle, records=records)
    assert result.scenario == "Interactive"
    assert len(result.ranked) >= 3
    server = recommend(Request(budget=20000, latency_slo_ms=200), bundle=bundle, records=records)
    assert server.scenario == "Server"
