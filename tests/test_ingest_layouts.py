"""Results-tree layouts built by the test: every published result exactly once, whatever the round's layout.

One system with Server + Interactive (whose log says `Scenario : Server`) + a TEST07 compliance run, a `./`-prefixed
and `/performance/run_1`-suffixed `Location`, a `measurements.json` inside the results folder (newer rounds), a
published row without a log, a log without a published row, `Total Accelerators` and a `llama3_1-8b` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flexpredict import dataset
from flexpredict.cli import app
from flexpredict.ingest import build_dataset
from flexpredict.ingest.aic_silicon import REQUIRED

SYSTEM = "8xACC_TRT"
RESULTS = f"closed/Acme/results/{SYSTEM}"


def loadgen_summary(
    scenario_line: str,
    *,
    tokens: float,
    ttft_bound_ms: float | None = None,
    tpot_bound_ms: float | None = None,
    ttft_p99_ms: float = 300.0,
    tpot_p99_ms: float = 30.0,
) -> str:
    """A LoadGen summary as LoadGen writes it (the lines the reader uses)."""
    lines = [
        "================================================",
        "MLPerf Results Summary",
        "================================================",
        "SUT name : acme-sut",
        f"Scenario : {scenario_line}",
        "Mode     : PerformanceOnly",
    ]
    if scenario_line == "Offline":
        lines.append(f"Tokens per second: {tokens}")
    else:
        lines += [f"Completed tokens per second: {tokens}", "Completed samples per second : 10.0"]
    lines += [
        "Result is : VALID",
        "  Performance constraints satisfied : Yes",
        "  Min duration satisfied : Yes",
        "  Min queries satisfied : Yes",
        "  Early stopping satisfied: Yes",
        "",
        "================================================",
        "Additional Stats",
        "================================================",
    ]
    if scenario_line != "Offline":
        lines += [
            f"50.00 percentile first token latency (ns)   : {int(ttft_p99_ms * 0.5e6)}",
            f"90.00 percentile first token latency (ns)   : {int(ttft_p99_ms * 0.8e6)}",
            f"99.00 percentile first token latency (ns)   : {int(ttft_p99_ms * 1e6)}",
            f"50.00 percentile time to output token (ns)   : {int(tpot_p99_ms * 0.5e6)}",
            f"90.00 percentile time to output token (ns)   : {int(tpot_p99_ms * 0.8e6)}",
            f"99.00 percentile time to output token (ns)   : {int(tpot_p99_ms * 1e6)}",
        ]
    lines += [
        "",
        "================================================",
        "Test Parameters Used",
        "================================================",
        "samples_per_query : 1",
        "target_qps : 10",
    ]
    if ttft_bound_ms:
        lines += [f"ttft_latency (ns): {int(ttft_bound_ms * 1e6)}", f"tpot_latency (ns): {int(tpot_bound_ms * 1e6)}"]
    lines += ["", "No warnings encountered during test.", "", "No errors encountered during test."]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def published_row(location: str, benchmark: str, scenario: str, value: float, **extra) -> dict:
    return {
        "ID": f"5.9-{len(location)}",
        "Submitter": "Acme",
        "Availability": "available",
        "Category": "closed",
        "Suite": "datacenter",
        "System": "Acme box",
        "Platform": SYSTEM,
        "Nodes": 1,
        "Processor": "Acme CPU",
        "host_processors_per_node": 2,
        "host_processor_core_count": 64,
        "Accelerator": "NVIDIA H100-SXM-80GB",
        "a#": 8,
        "Model": benchmark,
        "UsedModel": benchmark,
        "Scenario": scenario,
        "Accuracy": "ROUGE1: 44.4",
        "Location": location,
        "Software": "TensorRT-LLM 0.20",
        "operating_system": "Linux",
        "errors": 0,
        "version": "v5.9",
        "weight_data_types": "fp8",
        "Performance_Result": value,
        "Performance_Units": "Tokens/s",
        **extra,
    }


@pytest.fixture
def tree(tmp_path) -> Path:
    """A round folder (`v5.9`, newer layout) with one system and the cases above."""
    root = tmp_path / "v5.9"
    write(
        root / "closed/Acme/systems" / f"{SYSTEM}.json",
        json.dumps(
            {
                "system_name": "Acme box",
                "accelerator_model_name": "NVIDIA H100-SXM-80GB",
                "accelerators_per_node": "8",
                "number_of_nodes": "1",
                "host_processor_model_name": "Acme CPU",
                "framework": "TensorRT-LLM 0.20",
                "system_type": "datacenter",
                "status": "available",
                "division": "closed",
                "submitter": "Acme",
            }
        ),
    )
    llama = f"{RESULTS}/llama2-70b-99"
    write(
        root / llama / "Server/performance/run_1/mlperf_log_summary.txt",
        loadgen_summary("Server", tokens=20000, ttft_bound_ms=2000, tpot_bound_ms=200, tpot_p99_ms=120),
    )
    write(
        root / llama / "Interactive/performance/run_1/mlperf_log_summary.txt",  # LoadGen logs it as Server
        loadgen_summary("Server", tokens=12000, ttft_bound_ms=450, tpot_bound_ms=40, tpot_p99_ms=35),
    )
    write(
        root / llama / "Interactive/TEST07/performance/run_1/mlperf_log_summary.txt",  # an audit, not a result
        loadgen_summary("Server", tokens=11000, ttft_bound_ms=450, tpot_bound_ms=40),
    )
    write(root / llama / "Offline/performance/run_1/mlperf_log_summary.txt", loadgen_summary("Offline", tokens=30000))
    write(root / llama / "Offline/measurements.json", json.dumps({"weight_data_types": "fp4"}))
    write(
        root / f"{RESULTS}/llama3_1-8b/Offline/performance/run_1/mlperf_log_summary.txt",
        loadgen_summary("Offline", tokens=90000),
    )
    write(
        root / f"{RESULTS}/resnet50/Offline/performance/run_1/mlperf_log_summary.txt",  # not in the table
        loadgen_summary("Offline", tokens=1).replace("Tokens per second: 1", "Samples per second: 50000"),
    )
    table = [
        published_row(f"./{llama}/Server/performance/run_1", "llama2-70b-99", "Server", 20000.0),
        published_row(f"{llama}/Interactive", "llama2-70b-99", "Interactive", 12000.0),
        published_row(f"./{llama}/Offline/", "llama2-70b-99", "Offline", 30000.0),
        published_row(f"{RESULTS}/llama3_1-8b/Offline", "llama3.1-8b", "Offline", 90000.0, **{"Total Accelerators": 8}),
        published_row(f"{RESULTS}/mixtral-8x7b/Server", "mixtral-8x7b", "Server", 40000.0),  # no log in the tree
    ]
    write(root / "summary_results.json", json.dumps(table))
    return root


def test_exactly_the_expected_records(tree):
    frame, report = build_dataset([tree])
    got = {(b, s): r for b, s, r in zip(frame["benchmark"], frame["scenario"], frame.to_dict("records"))}
    assert set(got) == {
        ("llama2-70b-99", "Server"),
        ("llama2-70b-99", "Interactive"),
        ("llama2-70b-99", "Offline"),
        ("llama3.1-8b", "Offline"),
        ("mixtral-8x7b", "Server"),
        ("resnet", "Offline"),
    }
    assert len(frame) == 6 and frame["round"].eq("v5.9").all()

    server, interactive = got[("llama2-70b-99", "Server")], got[("llama2-70b-99", "Interactive")]
    assert (server["tokens_per_s"], server["tpot_bound_ms"], server["ttft_bound_ms"]) == (20000, 200, 2000)
    assert (interactive["tokens_per_s"], interactive["tpot_bound_ms"], interactive["ttft_bound_ms"]) == (12000, 40, 450)
    assert interactive["tpot_p99_ms"] == pytest.approx(35) and interactive["tpot_p90_ms"] == pytest.approx(28)
    assert got[("llama2-70b-99", "Offline")]["precision"] == "fp4"  # measurements.json in the results folder wins
    assert server["precision"] == "fp8"  # the published weight_data_types where no measurements file says
    assert got[("llama3.1-8b", "Offline")]["model"] == "llama3.1-8b"  # the llama3_1-8b folder folds to one model
    assert got[("llama3.1-8b", "Offline")]["accelerators_total"] == 8
    assert got[("mixtral-8x7b", "Server")]["source_kind"] == "summary-results"  # published, no log
    assert got[("mixtral-8x7b", "Server")]["tpot_bound_ms"] == 200  # the benchmark's published bound
    assert got[("resnet", "Offline")]["published"] is False
    assert all(r["published"] is True for k, r in got.items() if k != ("resnet", "Offline"))

    (table,) = report.tables.values()
    assert (table.published, table.records, table.matched, table.table_only, table.log_only) == (5, 6, 4, 1, 1)
    assert report.incomplete == []


def test_strict_fails_on_a_doubled_published_result_and_writes_nothing(tree, tmp_path):
    rows = json.loads((tree / "summary_results.json").read_text())
    (tree / "summary_results.json").write_text(json.dumps(rows + [rows[1]]))
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(app, ["data", "build", "--source", str(tree), "--out", str(out), "--strict", "-q"])
    assert result.exit_code == 2, result.output
    assert "doubled 1" in result.output and "Interactive" in result.output
    assert not out.exists()
    relaxed = CliRunner().invoke(app, ["data", "build", "--source", str(tree), "--out", str(out), "-q"])
    assert relaxed.exit_code == 0 and len(dataset.load(out)) == 6


def test_reconciliation_printed_per_source(tree, tmp_path):
    result = CliRunner().invoke(
        app, ["data", "build", "--source", str(tree), "--out", str(tmp_path / "o.parquet"), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "published 5, records 6, matched to a log 4, from the table only 1, logs not in the table 1" in " ".join(
        result.output.split()
    )


def test_aic_silicon_csv(tmp_path):
    columns = list(REQUIRED) + [
        "silicon_data_source",
        "backend_version",
        "precision",
        "tp_size",
        "pp_size",
        "attention_dp_size",
        "moe_ep_size",
        "batch_size",
    ]
    rows = [
        {
            "id": "a",
            "model_path": "Qwen/Qwen3-32B",
            "system": "h200_sxm",
            "backend": "vllm",
            "mode": "agg",
            "isl": 1024,
            "osl": 1024,
            "silicon_ttft_ms": 100.0,
            "silicon_tpot_ms": 10.0,
            "silicon_data_source": "db; silicon_concurrency=8; measured=x",
            "backend_version": "0.17.0",
            "precision": "fp8",
            "tp_size": 2,
            "pp_size": 1,
            "attention_dp_size": 1,
            "moe_ep_size": "",
            "batch_size": 8,
        },
        {
            "id": "b",
            "model_path": "Qwen/Qwen3-32B",
            "system": "h200_sxm",
            "backend": "vllm",
            "mode": "agg",
            "isl": 1024,
            "osl": 1024,
            "silicon_ttft_ms": "",
            "silicon_tpot_ms": 10.0,
            "silicon_data_source": "",
            "backend_version": "",
            "precision": "",
            "tp_size": 2,
            "pp_size": 1,
            "attention_dp_size": 1,
            "moe_ep_size": "",
            "batch_size": 8,
        },
    ]
    path = tmp_path / "silicon_sample.csv"
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    frame, report = build_dataset([path])
    assert len(frame) == 1 and report.dropped  # the row without a TTFT is counted, not kept
    row = frame.iloc[0]
    assert (row["scenario"], row["engine"], row["accelerators_total"], row["concurrency"]) == (
        "ClosedLoop",
        "vllm",
        2,
        8,
    )
    assert row["tokens_per_s"] == pytest.approx(8 * 1024 * 1000 / (100 + 1023 * 10))
    assert row["throughput_per_accelerator"] == pytest.approx(row["tokens_per_s"] / 2)
    assert row["accelerator"] == "nvidia-h200-sxm-141gb"


def test_aic_silicon_csv_with_wrong_columns_is_skipped(tmp_path):
    path = tmp_path / "silicon_sample.csv"
    path.write_text("id,foo\n1,2\n")
    with pytest.raises(Exception, match="no records"):
        build_dataset([path])
