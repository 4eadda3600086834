"""Every catalog accelerator x every MLPerf LLM, through the shipped model: physics holds for every prediction.

A configuration that fits gets a finite throughput with its interval, below the roofline; power lies within its
bounds; energy per token is power over throughput; TTFT/TPOT lie between one decode step and the scenario's bound.
One that does not fit says so and gets no number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexpredict import catalogs
from flexpredict.configs import config_records
from flexpredict.features import RecordFeaturizer
from flexpredict.predictors.bundle import ModelBundle
from flexpredict.predictors.constraints import power_bounds
from flexpredict.predictors.targets import decode_step_ms

MLPERF_LLMS = ("llama2-70b", "llama3.1-405b", "llama3.1-8b", "mixtral-8x7b", "deepseek-r1", "gptj")


@pytest.fixture(scope="module")
def sweep():
    rows = [
        {
            "accelerator": acc["id"],
            "count": count,
            "nodes": 1,
            "model": model,
            "scenario": scenario,
            "precision": None,
            "engine": None,
        }
        for acc in catalogs.accelerators().rows
        if acc.get("kind") != "cpu"
        for model in MLPERF_LLMS
        for count in (1, 8)
        for scenario in ("Offline", "Server")
    ]
    records = RecordFeaturizer.complete(config_records(rows))
    return records, ModelBundle.load().predict(records)


def test_what_does_not_fit_says_so_and_gets_no_number(sweep):
    records, predicted = sweep
    need = pd.to_numeric(records["weights_gb"], errors="coerce")
    memory = pd.to_numeric(records["total_memory_gb"], errors="coerce")
    too_big = (need > memory).to_numpy()
    assert too_big.any() and (~too_big).any()
    assert not predicted.loc[too_big, "fits"].any()
    assert predicted.loc[too_big, [c for c in predicted if c.startswith("pred_")]].isna().all().all()


def test_every_fitting_configuration_gets_a_finite_throughput_below_the_roofline(sweep):
    records, predicted = sweep
    fit = predicted["fits"].to_numpy()
    pred, lo, hi = (predicted[f"pred_throughput_per_accelerator{s}"].to_numpy() for s in ("", "_lo", "_hi"))
    assert np.isfinite(pred[fit]).all() and (pred[fit] > 0).all()
    assert (lo[fit] <= pred[fit]).all() and (pred[fit] <= hi[fit]).all()
    roofline = pd.to_numeric(records["roofline_per_accelerator"], errors="coerce").to_numpy()
    known = fit & np.isfinite(roofline)
    assert (hi[known] <= roofline[known] * (1 + 1e-9)).all()


def test_power_within_bounds_and_energy_is_power_over_throughput(sweep):
    records, predicted = sweep
    floor, ceiling = power_bounds(records)
    power = predicted["pred_power_w"].to_numpy()
    known = np.isfinite(power) & np.isfinite(ceiling)
    assert known.sum() > 100
    assert (power[known] >= floor[known] * (1 - 1e-9)).all() and (power[known] <= ceiling[known] * (1 + 1e-9)).all()
    rate = predicted["pred_throughput_per_accelerator"].to_numpy() * records["accelerators_total"].to_numpy("float64")
    energy = predicted["pred_energy_j_per_token"].to_numpy()
    both = np.isfinite(energy) & np.isfinite(power) & np.isfinite(rate)
    assert both.sum() > 100
    np.testing.assert_allclose(energy[both], power[both] / rate[both], rtol=1e-9)


def test_token_latencies_between_one_decode_step_and_the_scenario_bound(sweep):
    records, predicted = sweep
    server = (records["scenario"] == "Server").to_numpy() & predicted["fits"].to_numpy()
    step = decode_step_ms(records)
    for target, bound_column in (("ttft_p99_ms", "ttft_bound_ms"), ("tpot_p99_ms", "tpot_bound_ms")):
        values = predicted[f"pred_{target}"].to_numpy()
        bound = pd.to_numeric(records[bound_column], errors="coerce").to_numpy()
        rows = server & np.isfinite(values)
        assert rows.sum() > 100
        assert (values[rows] >= np.nan_to_num(step[rows]) * (1 - 1e-9)).all()
        bounded = rows & np.isfinite(bound)
        # a part too slow to meet the bound at all stays at its floor: physics wins over the rules
        limit = np.maximum(bound, np.nan_to_num(step))
        assert bounded.sum() > 100 and (values[bounded] <= limit[bounded] * (1 + 1e-9)).all()
        assert (values[bounded & (step < bound)] <= bound[bounded & (step < bound)]).all()


def test_no_power_or_energy_for_a_part_without_tdp_never_measured(sweep):
    """Nothing says how such a part draws power: a number there would be other parts' watts. Parts with a TDP, or
    with measured power, keep theirs."""
    records, predicted = sweep
    power = ModelBundle.load(targets=("power_w",)).predictors["power_w"]
    tdp = pd.to_numeric(records["acc_tdp_w"], errors="coerce").to_numpy("float64")
    measured = records["accelerator"].isin(set(power.seen_accelerators_)).to_numpy()
    fits = predicted["fits"].to_numpy()
    unknowable = ~np.isfinite(tdp) & ~measured & fits
    assert unknowable.sum() >= 10 and (fits & ~unknowable).sum() > 100
    assert predicted["unknown_power_w"].to_numpy()[unknowable].all()
    assert not predicted["unknown_power_w"].to_numpy()[fits & ~unknowable].any()
    assert predicted.loc[unknowable, ["pred_power_w", "pred_energy_j_per_token"]].isna().all().all()
    assert predicted.loc[unknowable, "pred_throughput_per_accelerator"].gt(0).all()
    assert predicted.loc[fits & ~unknowable, "pred_power_w"].gt(0).all()


def test_latency_p99_is_never_below_p90():
    rows = [
        {"accelerator": acc["id"], "count": 1, "nodes": 1, "model": model, "scenario": "SingleStream"}
        for acc in catalogs.accelerators().rows
        for model in ("resnet50", "retinanet", "bert-99")
    ]
    predicted = ModelBundle.load().predict(config_records(rows))
    for end in ("", "_lo", "_hi"):
        p99, p90 = (predicted[f"pred_latency_p{q}_ms{end}"].to_numpy() for q in (99, 90))
        both = np.isfinite(p99) & np.isfinite(p90)
        assert both.sum() > 100 and (p99[both] >= p90[both]).all()
