"""The Open MLPerf dataset built from the real shared results: counts, keys, joins and hand-checked values."""

from __future__ import annotations

import pandas as pd
import pytest

from flexpredict import dataset
from flexpredict.schema import COLUMN_NAMES, KEY_COLUMNS

# result counts per round from ../shared/data/mlperf/README.md (section 2); v5.1 publishes 1,448 results and its tree
# holds one more log the table does not list (GATEOverflow pointpainting Offline), kept as published = False
README_COUNTS = {"v3.1": 3325, "v4.0": 9474, "v4.1": 937, "v5.0": 914, "v5.1": 1448}
README_WITH_POWER = {"v3.1": 2095, "v4.0": 984, "v4.1": 31, "v5.0": 19, "v5.1": 24}
AIC_SAMPLE_ROWS = 4078  # ../shared/data/aic_silicon_sample/README.md


def one(frame: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    rows = frame[mask]
    assert len(rows) == 1, f"{where}: {len(rows)} rows"
    return rows.iloc[0]


def test_every_round_with_readme_counts(built):
    frame, report = built
    published = frame[frame["published"].fillna(True) & frame["round"].str.startswith("v")]
    assert published.groupby("round").size().to_dict() == README_COUNTS
    assert (frame["published"] == False).sum() == 1  # noqa: E712  (the one v5.1 log without a published row)
    assert (frame["round"] == "aic-silicon").sum() == AIC_SAMPLE_ROWS
    assert report.skipped == []
    assert report.incomplete == []
    assert {t.label.split("/")[1].split()[0] for t in report.tables.values()} == set(README_COUNTS)


def test_v51_interactive_and_server_are_two_records(built):
    frame, _ = built
    v51 = frame[frame["round"] == "v5.1"]
    assert (v51["scenario"] == "Interactive").sum() == 68
    assert (v51["scenario"] == "Server").sum() == 229
    both = v51[v51["scenario"].isin(["Server", "Interactive"]) & v51["benchmark"].eq("llama2-70b-99")]
    pairs = both.groupby(["submitter", "system_id"])["scenario"].nunique()
    assert (pairs == 2).sum() >= 10
    interactive = both[both["scenario"] == "Interactive"]
    assert (interactive["ttft_bound_ms"] == 450).all() and (interactive["tpot_bound_ms"] == 40).all()
    assert (interactive.loc[interactive["valid"], "tpot_p99_ms"] <= 40).all()


def test_bounds_for_rounds_without_logs(built):
    frame, _ = built
    v50 = frame[
        (frame["round"] == "v5.0")
        & (frame["benchmark"] == "llama2-70b-interactive-99")
        & (frame["scenario"] == "Interactive")
    ]
    assert len(v50) == 20 and (v50["ttft_bound_ms"] == 450).all() and (v50["tpot_bound_ms"] == 40).all()
    server = frame[
        (frame["round"] == "v4.1") & (frame["benchmark"] == "llama2-70b-99") & (frame["scenario"] == "Server")
    ]
    assert (server["tpot_bound_ms"] == 200).all() and (server["ttft_bound_ms"] == 2000).all()


def test_latency_under_load_sample(built):
    frame, _ = built
    aic = frame[frame["source_kind"] == "aic-silicon"]
    assert set(aic["scenario"]) == {"ClosedLoop"} and aic["record_id"].is_unique
    assert set(aic["accelerator"]) == {
        "nvidia-h100-sxm-80gb",
        "nvidia-h200-sxm-141gb",
        "nvidia-b200-sxm-180gb",
        "nvidia-gb200-nvl72-186gb",
    }
    assert aic["ttft_p50_ms"].gt(0).all() and aic["tpot_p50_ms"].gt(0).all()
    assert aic["concurrency"].notna().sum() == AIC_SAMPLE_ROWS - 19  # README: 19 rows state no concurrency
    rate = (
        aic["concurrency"]
        * aic["output_tokens_mean"]
        * 1000
        / (aic["ttft_p50_ms"] + (aic["output_tokens_mean"] - 1) * aic["tpot_p50_ms"])
    )
    assert (aic["tokens_per_s"] - rate).abs().max() < 1e-6 * rate.max()
    assert set(aic["serving_mode"]) == {"aggregated", "disaggregated"}


def test_power_joined_to_every_result_that_has_it(built):
    frame, _ = built
    with_power = frame["power_w"].notna() | frame["energy_j_per_sample"].notna()
    published = frame["published"].fillna(True) & frame["round"].str.startswith("v")
    assert with_power[published].groupby(frame["round"]).sum().to_dict() == README_WITH_POWER


def test_schema_columns_and_unique_keys(built):
    frame, _ = built
    assert tuple(frame.columns) == COLUMN_NAMES
    mlperf = frame[frame["round"].str.startswith("v")]
    assert not mlperf.duplicated(list(KEY_COLUMNS)).any()
    assert frame["record_id"].is_unique


def test_accuracy_twins_share_run_group(built):
    frame, _ = built
    twins = frame[frame["benchmark"].str.endswith(("-99", "-99.9"), na=False) & (frame["division"] == "closed")].copy()
    twins["family"] = twins["benchmark"].str.replace(r"-99(\.9)?$", "", regex=True)
    pairs = twins.groupby(["round", "division", "submitter", "system_id", "family", "scenario"])
    sizes = pairs["run_group"].agg(["size", "nunique"])
    assert (sizes["size"] == 2).sum() > 300  # many results were submitted for both accuracy targets
    assert (sizes["nunique"] == 1).all()


def test_v50_fujitsu_h100_nvl_llama2_offline_with_power(built):
    frame, _ = built
    row = one(
        frame,
        round="v5.0",
        submitter="Fujitsu",
        system_id="H100-NVL-94GBx8_TRT",
        benchmark="llama2-70b-99",
        scenario="Offline",
    )
    assert row["tokens_per_s"] == pytest.approx(18084.9, rel=1e-4)
    assert row["power_w"] == pytest.approx(4952.05, rel=1e-4)
    assert row["accelerators_total"] == 8
    assert row["throughput_per_accelerator"] == pytest.approx(18084.9 / 8, rel=1e-4)
    assert row["energy_j_per_token"] == pytest.approx(4952.05 / 18084.9, rel=1e-4)
    assert row["precision"] == "fp8"
    assert row["engine"] == "tensorrt-llm"


def test_v41_log_with_ttft_tpot_from_lowercase_scenario_folder(built):
    # open/NeuralMagic/results/4xH100-SXM-80GB_vLLM_GPTQ-.../llama2-70b-99/server/performance/run_1/
    frame, _ = built
    row = one(
        frame,
        round="v4.1",
        submitter="NeuralMagic",
        system_id="4xH100-SXM-80GB_vLLM_GPTQ-reference-cpu-pytorch-v2.3.1-default_config",
        benchmark="llama2-70b-99",
        scenario="Server",
    )
    assert row["source_kind"] == "results-tree"
    assert row["tokens_per_s"] == pytest.approx(1164.04)
    assert row["ttft_p99_ms"] == pytest.approx(540.559390)
    assert row["tpot_p99_ms"] == pytest.approx(137.009732)
    assert row["ttft_p50_ms"] == pytest.approx(235.288548)
    assert row["target_qps"] == 4
    assert row["engine"] == "vllm"
    assert bool(row["valid"])


def test_v31_power_on_performance_row_and_v40_separate_power_row(built):
    frame, _ = built
    v31 = one(
        frame,
        round="v3.1",
        submitter="NVIDIA",
        system_id="H100-PCIe-80GBx8_TRT_MaxQ",
        benchmark="resnet",
        scenario="Offline",
    )
    assert v31["samples_per_s"] == 348572
    assert v31["power_w"] == pytest.approx(2268.11116)
    v40 = one(
        frame,
        round="v4.0",
        submitter="Dell",
        system_id="XE9680_H100_SXM_80GBx8_TRT_MaxQ",
        benchmark="resnet",
        scenario="Offline",
    )
    assert v40["samples_per_s"] == 456575
    assert v40["power_w"] == pytest.approx(4037.98674)


def test_llm_samples_converted_to_tokens_with_flag(built):
    frame, _ = built
    v31_gptj = frame[
        (frame["round"] == "v3.1") & frame["benchmark"].str.startswith("gptj") & frame["samples_per_s"].notna()
    ]
    assert len(v31_gptj) > 50
    assert v31_gptj["tokens_derived"].all()
    ratio = v31_gptj["tokens_per_s"] / v31_gptj["samples_per_s"]
    assert ratio.between(60, 80).all()  # GPT-J generates about 69 tokens per CNN/DailyMail sample
    v50 = frame[(frame["round"] == "v5.0") & frame["benchmark"].str.startswith("llama2")]
    assert not v50["tokens_derived"].any()


def test_interactive_benchmark_is_its_own_scenario(built):
    frame, _ = built
    interactive = frame[frame["benchmark"].str.contains("interactive", na=False)]
    assert len(interactive) > 40
    # the v5.0 import also lists Offline runs under the interactive benchmark: those stay Offline
    assert set(interactive["scenario"]) == {"Interactive", "Offline"}
    # v5.0 names an interactive benchmark; from v5.1 on Interactive is a scenario folder of the plain benchmark
    v50 = frame[frame["round"] == "v5.0"]
    assert (v50.loc[v50["scenario"] == "Interactive", "benchmark"].str.contains("interactive")).all()
    assert set(interactive.loc[interactive["division"] == "closed", "model"]) == {"llama2-70b"}


def test_shipped_dataset_is_reproduced_by_a_rebuild(built):
    frame, _ = built
    shipped = dataset.load()
    pd.testing.assert_frame_equal(frame, shipped, check_exact=False, rtol=1e-9)
