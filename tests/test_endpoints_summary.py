"""`data build` reads an MLPerf Endpoints `result_summary.json` into records.

The fixture documents the fields the reader uses (assumed from the tool's reported metrics: TTFT/TPOT/latency
percentiles, qps, tps); anything else in the file is ignored.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from flexpredict.cli import app
from flexpredict.ingest import build_dataset

cli = CliRunner()
SERVER_RUN = {
    "scenario": "server",  # offline / server (online, poisson) / concurrency
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "endpoint": "http://gpu-node-3:8000",
    "target_qps": 12.0,
    "results": {
        "qps": 11.8,  # completed queries per second
        "tps": 2310.5,  # output tokens per second
        "n_errors": 0,
        "result_valid": True,
        "input_tokens_mean": 512.0,
        "output_tokens_mean": 195.8,
        "ttft": {"unit": "ms", "p50": 41.0, "p90": 77.5, "p99": 130.2},
        "tpot": {"unit": "ns", "p50": 18_400_000, "p90": 21_000_000, "p99": 25_900_000},
        "latency": {"unit": "s", "p50": 3.61, "p90": 4.4, "p99": 5.02},
    },
}
OFFLINE_RUN = {
    "scenario": "offline",
    "model": "tiny",
    "qps": 30.0,
    "tps": 1920.0,
    "n_errors": 4,
    "result_valid": True,
    "latency": {"50": 900.0, "99.0": 2100.0},
}


@pytest.fixture
def endpoints_results(tmp_path):
    for name, run in (("server", SERVER_RUN), ("offline", OFFLINE_RUN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result_summary.json").write_text(json.dumps(run))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result_summary.json").write_text(json.dumps({"scenario": "server", "ttft": {}}))
    return tmp_path


def test_result_summaries_become_records_in_schema_units(endpoints_results):
    frame, report = build_dataset([endpoints_results])
    rows = frame[frame["source_kind"] == "mlperf-endpoints"].set_index("source")
    assert sorted(rows.index) == ["offline/result_summary.json", "server/result_summary.json"]
    server, offline = rows.loc["server/result_summary.json"], rows.loc["offline/result_summary.json"]
    assert (server["scenario"], server["target_qps"], server["samples_per_s"]) == ("Server", 12.0, 11.8)
    assert server["tokens_per_s"] == server["throughput"] == 2310.5 and server["throughput_unit"] == "Tokens/s"
    assert (server["ttft_p50_ms"], server["ttft_p90_ms"], server["ttft_p99_ms"]) == (41.0, 77.5, 130.2)
    assert server["tpot_p99_ms"] == pytest.approx(25.9) and server["latency_p99_ms"] == pytest.approx(5020)
    assert (server["input_tokens_mean"], server["output_tokens_mean"]) == (512.0, 195.8)
    assert bool(server["valid"]) and pd.isna(server["accelerator_raw"])  # the file does not say what served it
    assert offline["scenario"] == "Offline" and offline["latency_p50_ms"] == 900.0
    assert not offline["valid"]  # "valid" with 4 failed requests is not a valid result
    assert report.skipped == [
        ("broken/result_summary.json", "no 'qps' or 'tps' (MLPerf Endpoints result_summary.json)")
    ]


def test_data_build_reads_one_summary_file(endpoints_results, tmp_path):
    out = tmp_path / "endpoints.parquet"
    result = cli.invoke(
        app,
        [
            "data",
            "build",
            "--source",
            str(endpoints_results / "server" / "result_summary.json"),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame["source_kind"]) == ["mlperf-endpoints"] and frame["ttft_p99_ms"].iloc[0] == 130.2
