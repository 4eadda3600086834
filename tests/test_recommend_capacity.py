"""recommend on the capacity function: any SLO, workload shape and load; candidates sized by their throughput at the
SLO at the requested confidence, the evidence marked, latencies shown at the sized load and never below the floor."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from flexpredict import capacity, catalogs
from flexpredict.cli import app
from flexpredict.configs import config_records
from flexpredict.predictors.bundle import ModelBundle
from flexpredict.recommend import TARGETS_USED, Load, Request, RequestError, recommend

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle():
    return ModelBundle.load(targets=TARGETS_USED)


@pytest.fixture(scope="module")
def records(built):
    return built[0]


@pytest.fixture(scope="module")
def capacity_model(records):
    """Fitted on a slice (the two models asked about, a few sample sweeps): about 10 s on 2 cores."""
    sweeps = records["scenario"].eq("ClosedLoop") & records["model"].isin(["llama3.1-8b", "qwen3-32b", "llama3.1-70b"])
    mlperf = records["model"].isin(["llama2-70b", "llama3.1-8b"]) & records["round"].isin(["v5.0", "v5.1"])
    return capacity.fit_capacity(records[sweeps | mlperf])


def ask(request, bundle, records, capacity_model):
    return recommend(request, bundle=bundle, records=records, capacity_model=capacity_model)


def test_a_40ms_tpot_uses_the_interactive_evidence(bundle, records, capacity_model):
    result = ask(Request(budget=20000, latency_slo_ms=40), bundle, records, capacity_model)
    assert result.scenario == "Interactive" and result.capacity_bounds == {"tpot_ms": 40.0, "ttft_ms": 450.0}
    top = result.top
    assert len(top) >= 3 and (top["evidence"] == "measured").sum() >= 3
    assert (top["period_cost"] <= 20000 + 1e-6).all() and (top["throughput_at_confidence"] > 0).all()
    assert result.workload == {"isl": 222.0, "osl": 294.0, "source": "llama2-70b's MLPerf workload"}


def test_100ms_lies_between_interactive_and_server(bundle, records, capacity_model):
    tight, middle, loose = (
        ask(Request(budget=20000, latency_slo_ms=bound, top=500), bundle, records, capacity_model).candidates
        for bound in (40, 100, 200)
    )
    assert (middle["evidence"] == "interpolated").any()
    for lower, upper in ((tight, middle), (middle, loose)):
        feasible = lower["pred_throughput_per_accelerator"] > 0
        assert feasible.sum() >= 10
        assert (
            upper.loc[feasible, "pred_throughput_per_accelerator"]
            >= lower.loc[feasible, "pred_throughput_per_accelerator"] * (1 - 1e-9)
        ).all()


def test_llama3_8b_latencies_are_under_the_sized_load_and_above_the_floor(bundle, records, capacity_model):
    result = ask(Request(model="llama3.1-8b", latency_slo_ms=100), bundle, records, capacity_model)
    top = result.top
    assert len(top) >= 3
    config = capacity.configuration(
        config_records(top.to_dict("records")).assign(
            input_tokens_mean=result.workload["isl"], output_tokens_mean=result.workload["osl"]
        )
    )
    ttft_floor, tpot_floor = capacity.floors_ms(config)
    assert (top["pred_tpot_p99_ms"].to_numpy() >= tpot_floor * (1 - 1e-9)).all()
    assert (top["pred_ttft_p99_ms"].to_numpy() >= ttft_floor * (1 - 1e-9)).all()
    assert (top["pred_tpot_p99_ms"] <= 100 * 1.02).all()
    np.testing.assert_allclose(top["replica_load"], top["throughput_at_confidence"])  # budget-free: one replica


def test_ranking_uses_the_lower_bound_at_the_confidence(bundle, records, capacity_model):
    confident = ask(
        Request(budget=50000, latency_slo_ms=100, confidence=0.95, top=50), bundle, records, capacity_model
    ).ranked
    assert confident["total_throughput"].is_monotonic_decreasing
    assert (confident["throughput_at_confidence"] <= confident["throughput"] + 1e-9).all()
    even = ask(Request(budget=50000, latency_slo_ms=100, confidence=0.5, top=50), bundle, records, capacity_model)
    np.testing.assert_allclose(even.ranked["throughput_at_confidence"], even.ranked["throughput"])


@pytest.mark.parametrize(
    "load, per_replica",
    [
        (Load(20000, "tokens_per_s"), lambda row: row["throughput_at_confidence"]),
        (Load(50, "qps"), lambda row: row["throughput_at_confidence"] / 294),  # requests/s: 294 output tokens each
    ],
)
def test_candidates_are_sized_for_the_load(bundle, records, capacity_model, load, per_replica):
    top = ask(Request(load=load, latency_slo_ms=100), bundle, records, capacity_model).top
    assert len(top) >= 3 and top["period_cost"].is_monotonic_increasing
    for _, row in top.iterrows():
        capacity_each = per_replica(row)
        assert row["replicas"] * capacity_each >= load.value * (1 - 1e-9)
        assert (row["replicas"] - 1) * capacity_each < load.value


def test_users_and_workload_shape(bundle, records, capacity_model):
    result = ask(
        Request(load=Load(256, "concurrency"), latency_slo_ms=100, isl=8000, osl=300), bundle, records, capacity_model
    )
    assert result.workload == {"isl": 8000.0, "osl": 300.0, "source": "requested"}
    assert len(result.top) >= 1 and (result.top["replicas"] >= 1).all()


def test_a_shape_or_users_without_the_capacity_function_is_a_request_error(bundle, records):
    with pytest.raises(RequestError, match="capacity function"):
        recommend(Request(latency_slo_ms=100, isl=8000), bundle=bundle, records=records)
    with pytest.raises(RequestError, match="capacity function"):
        recommend(Request(load=Load(64, "concurrency")), bundle=bundle, records=records)


def test_cli_shape_on_a_model_without_it_is_one_line(tmp_path):
    older = tmp_path / "model-without-capacity"  # as trained before the capacity function existed
    shutil.copytree(catalogs.default_model_dir(), older, ignore=shutil.ignore_patterns("capacity"))
    result = runner.invoke(app, ["recommend", "--latency-slo", "100ms", "--isl", "8000", "--model-dir", str(older)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "capacity function" in lines[0]
