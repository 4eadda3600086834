"""The capacity function on the real records: shape (monotone, floors, saturation), inverse consistency, persistence,
and accuracy on (model, system) groups it never saw."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold

from flexpredict import capacity


@pytest.fixture(scope="module")
def split(built):
    """Records with one fifth of the sample's (model, system) groups held out, and those held-out sweep points."""
    records = built[0]
    sample = records["scenario"].eq("ClosedLoop").to_numpy()
    groups = capacity.group_keys(records)
    index = np.where(sample)[0]
    _, test = next(GroupKFold(n_splits=5).split(index, groups=groups.iloc[index]))
    held_out = np.zeros(len(records), dtype=bool)
    held_out[index[test]] = True
    return records.loc[~held_out], capacity.curve_points(records.loc[held_out])


@pytest.fixture(scope="module")
def model(split):
    return capacity.fit_capacity(split[0])


@pytest.fixture(scope="module")
def configurations(built):
    """Whole MLPerf systems (llama2-70b Interactive results of v5.1) and stated sweep configurations (one per
    (model, system) of the sample)."""
    records = built[0]
    mlperf = records[
        records["model"].eq("llama2-70b") & records["scenario"].eq("Interactive") & records["round"].eq("v5.1")
    ].head(6)
    points = capacity.curve_points(records[records["scenario"].eq("ClosedLoop")])  # rows the physics can describe
    sweeps = points.groupby("group").head(1).head(12).drop(columns=["point_concurrency", "open_loop", "group"])
    return pd.concat([mlperf, sweeps], ignore_index=True)


def test_throughput_is_monotone_in_each_bound_and_saturates(model, configurations):
    bounds = [1.0, 5.0, 20.0, 40.0, 100.0, 300.0, 1e3, 1e4, 1e6]
    by_tpot = np.array(
        [
            model.throughput_at_slo(configurations, ttft_ms=2000.0, tpot_ms=b)[
                "pred_throughput_per_accelerator"
            ].to_numpy()
            for b in bounds
        ]
    )
    by_ttft = np.array(
        [
            model.throughput_at_slo(configurations, ttft_ms=b, tpot_ms=200.0)[
                "pred_throughput_per_accelerator"
            ].to_numpy()
            for b in bounds
        ]
    )
    for curve in (by_tpot, by_ttft):
        assert np.isfinite(curve).all()
        assert (np.diff(curve, axis=0) >= -1e-9 * curve.max()).all()
    unbounded = model.throughput_at_slo(configurations)["pred_throughput_per_accelerator"].to_numpy()
    loose = model.throughput_at_slo(configurations, ttft_ms=1e9, tpot_ms=1e9)["pred_throughput_per_accelerator"]
    np.testing.assert_allclose(loose.to_numpy(), unbounded, rtol=1e-9)
    assert (unbounded > 0).all()


def test_no_throughput_below_the_physical_floor(model, configurations):
    ttft_floor, tpot_floor = capacity.floors_ms(capacity.configuration(configurations))
    below = model.throughput_at_slo(configurations, ttft_ms=ttft_floor * 0.9, tpot_ms=1e6)
    assert (below["pred_throughput_per_accelerator"] == 0).all()
    below = model.throughput_at_slo(configurations, ttft_ms=1e6, tpot_ms=tpot_floor * 0.9)
    assert (below["pred_throughput_per_accelerator"] == 0).all()


def test_latency_grows_with_load_and_stays_above_the_floors(model, configurations):
    ttft_floor, tpot_floor = capacity.floors_ms(capacity.configuration(configurations))
    frames = [model.latency_at_load(configurations, concurrency=c) for c in (1, 4, 16, 64, 256, 1024, 4096)]
    for column, floor in (
        ("pred_ttft_p50_ms", ttft_floor),
        ("pred_tpot_p50_ms", tpot_floor),
        ("pred_tpot_p99_ms", tpot_floor),
    ):
        values = np.array([f[column].to_numpy() for f in frames])
        assert (np.diff(values, axis=0) >= -1e-9 * values[1:]).all(), column
        assert (values >= floor * (1 - 1e-9)).all(), column
    for frame in frames:
        assert (frame["pred_tpot_p99_ms_lo"] <= frame["pred_tpot_p99_ms"]).all()
        assert (frame["pred_tpot_p99_ms"] <= frame["pred_tpot_p99_ms_hi"]).all()


def test_latency_at_the_capacity_the_inverse_returns_stays_within_the_bounds(model, configurations):
    """For configurations with stated parallelism (whole MLPerf systems add a throughput-only correction)."""
    configurations = configurations[configurations["tensor_parallel"].notna()].reset_index(drop=True)
    ttft_bound, tpot_bound = 2000.0, 60.0
    capacity_at = model.throughput_at_slo(configurations, ttft_ms=ttft_bound, tpot_ms=tpot_bound)
    gpus = capacity.configuration(configurations)["gpus"].to_numpy()
    feasible = capacity_at["pred_throughput_per_accelerator"].to_numpy() > 0
    assert feasible.sum() >= len(configurations) // 2
    rows = configurations.loc[feasible]
    rate = capacity_at["pred_throughput_per_accelerator"].to_numpy()[feasible] * gpus[feasible]
    at_capacity = model.latency_at_load(rows, tokens_per_s=rate * 0.999)
    assert not at_capacity["over_capacity"].any()
    assert (at_capacity["pred_ttft_p99_ms"] <= ttft_bound * 1.02).all()
    assert (at_capacity["pred_tpot_p99_ms"] <= tpot_bound * 1.02).all()
    over = model.latency_at_load(rows, tokens_per_s=rate * 1e3)
    assert over.loc[over["over_capacity"], "pred_tpot_p99_ms"].isna().all()


def test_save_load_round_trip_is_strict_json(model, configurations, tmp_path):
    folder = model.save(tmp_path / "capacity")
    document = json.loads(
        (folder / capacity.META_FILE).read_text(), parse_constant=lambda token: pytest.fail(f"non-JSON token {token}")
    )
    assert document["format_version"] == capacity.FORMAT_VERSION
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [capacity.META_FILE, capacity.BOUND_BOOSTER_FILE, *capacity.BOOSTER_FILES.values()]
    )
    loaded = capacity.CapacityModel.load(folder)
    pd.testing.assert_frame_equal(
        loaded.latency_at_load(configurations, concurrency=32), model.latency_at_load(configurations, concurrency=32)
    )
    pd.testing.assert_frame_equal(
        loaded.throughput_at_slo(configurations, ttft_ms=500.0, tpot_ms=50.0),
        model.throughput_at_slo(configurations, ttft_ms=500.0, tpot_ms=50.0),
    )


def test_held_out_groups_beat_the_physics_curve_with_one_median_correction(model, split):
    """On (model, system) groups never seen, the learned correction must beat the physics curve scaled by the
    training rows' median measured/physics ratio (the simplest calibrated baseline)."""
    train, test = split
    test = test[test["scenario"] == "ClosedLoop"]
    predicted = model.latency_at_load(test, concurrency=test["point_concurrency"].to_numpy())
    train_points = capacity.curve_points(train)
    for index, metric in enumerate(("ttft", "tpot")):
        physics_train = capacity.physics_latency(
            capacity.configuration(train_points), train_points["point_concurrency"].to_numpy()
        )[index]
        median_ratio = np.median(train_points[f"{metric}_p50_ms"].to_numpy(float) / physics_train)
        physics_test = capacity.physics_latency(capacity.configuration(test), test["point_concurrency"].to_numpy())[
            index
        ]
        measured = test[f"{metric}_p50_ms"].to_numpy(float)
        learned = np.median(np.abs(predicted[f"pred_{metric}_p50_ms"].to_numpy() / measured - 1))
        baseline = np.median(np.abs(physics_test * median_ratio / measured - 1))
        assert learned < baseline, (metric, learned, baseline)


def test_a_load_must_be_given_once_and_positive(model, configurations):
    with pytest.raises(ValueError, match="one load"):
        model.latency_at_load(configurations, concurrency=4, qps=1.0)
    with pytest.raises(ValueError, match="qps: expected a positive number"):
        model.latency_at_load(configurations, qps=0.0)
