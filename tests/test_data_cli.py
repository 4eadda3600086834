"""`data info` and `data export` on the shipped dataset, and OpenMLPerf round trips."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from flexpredict import dataset
from flexpredict.cli import app
from flexpredict.ingest import build_dataset

runner = CliRunner()


def test_info_prints_counts_per_round_and_mapping():
    result = runner.invoke(app, ["data", "info"])
    assert result.exit_code == 0, result.output
    shipped = dataset.load()
    for rnd, count in shipped["round"].value_counts().items():
        assert rnd in result.output and str(count) in result.output
    assert "accelerator names mapped" in result.output and "records per source" in result.output
    as_json = json.loads(runner.invoke(app, ["data", "info", "--json"]).output)
    assert as_json["rows"] == len(shipped)
    assert as_json["accelerator_mapped"] == int(shipped["accelerator"].notna().sum())
    assert sum(as_json["sources"].values()) == len(shipped)


def test_info_on_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("round,throughput\nv4.1,fast\n")
    result = runner.invoke(app, ["data", "info", str(bad)])
    assert result.exit_code == 2
    assert "column 'throughput'" in result.output and "fast" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_openmlperf_reads_back_as_openmlperf(tmp_path):
    out = tmp_path / "openmlperf.parquet"
    result = runner.invoke(app, ["data", "export", "--format", "openmlperf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    exported = pd.read_parquet(out)
    assert {"metrics.result", "system.accelerator.name", "submission.scenario"} <= set(exported.columns)
    shipped = dataset.load()
    assert len(exported) == int(dataset.mlperf_results(shipped).sum()) < len(shipped)
    back, report = build_dataset([out])
    assert report.skipped == []
    assert len(back) == len(exported)
    assert set(back["source_kind"]) == {"openmlperf"}


def test_openmlperf_rows_do_not_duplicate_tree_rows(shared_mlperf):
    tree = shared_mlperf / "raw/v4.1/inference_results_v4.1"
    omlp = shared_mlperf / "raw/openmlperf/flexbench/OpenMLPerf-dataset/data.parquet"
    alone, _ = build_dataset([tree])
    both, _ = build_dataset([tree, omlp])
    extra = both[both["source_kind"] == "openmlperf"]
    assert set(extra["round"]) <= {"v5.0", "v4.1"}
    assert (extra["round"] == "v4.1").sum() < 315 * 0.2  # most v4.1 OpenMLPerf rows matched a tree record
    assert len(both) - len(alone) == len(extra)


def test_csv_export_roundtrip(tmp_path):
    out = tmp_path / "records.csv"
    assert runner.invoke(app, ["data", "export", "--format", "csv", "--out", str(out)]).exit_code == 0
    again = dataset.load(out)
    original = dataset.load()
    pd.testing.assert_series_equal(again["throughput"], original["throughput"])
    assert again["valid"].all()
