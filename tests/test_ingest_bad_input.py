"""Truncated, corrupted and unreadable copies of real files: skipped with path and reason, nothing else lost."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexpredict.cli import app
from flexpredict.ingest import NoInputError, build_dataset
from flexpredict.ingest.base import BuildReport
from flexpredict.ingest.cm_result import CmResultReader
from flexpredict.ingest.loadgen_log import LogFormatError, parse_summary

V41 = Path("raw/v4.1/inference_results_v4.1")


@pytest.fixture()
def small_tree(shared_mlperf, tmp_path):
    """Two submitters of the real v4.1 tree (no summary_results.json), copied so they can be damaged."""
    root = tmp_path / "inference_results_v4.1"
    for part in ("closed/Fujitsu", "open/NeuralMagic"):
        shutil.copytree(shared_mlperf / V41 / part, root / part)
    return root


def test_tree_without_summary_file_reads_logs_systems_and_measurements(small_tree):
    frame, report = build_dataset([small_tree])
    assert report.skipped == []
    assert set(frame["round"]) == {"v4.1"}  # from the folder name, as on a fresh clone
    assert set(frame["source_kind"]) == {"results-tree"}
    assert frame["accelerator_raw"].notna().all()
    assert frame["precision"].notna().mean() > 0.9
    assert (frame["throughput"] > 0).all()


def test_damaged_files_are_skipped_with_reason_and_nothing_else_is_lost(small_tree):
    clean, _ = build_dataset([small_tree])
    logs = sorted(small_tree.rglob("mlperf_log_summary.txt"))
    truncated = logs[0]
    text = truncated.read_text()
    truncated.write_text(text[: text.index("Result is")])
    binary = logs[1]
    binary.write_bytes(b"\x00\xff" * 50)
    broken_platforms = {logs[0].parents[4].name, logs[1].parents[4].name}
    system = next(p for p in sorted(small_tree.rglob("systems/*.json")) if p.stem not in broken_platforms)
    system.write_text('{"accelerator_model_name": "NVIDIA H100"')  # cut mid-object
    frame, report = build_dataset([small_tree])
    skipped = {Path(path).name: reason for path, reason in report.skipped}
    assert len(report.skipped) == 3
    assert "not a LoadGen summary" in skipped["mlperf_log_summary.txt"]
    assert "malformed JSON" in skipped[system.name]
    assert len(frame) == len(clean) - 2
    lost = set(clean["record_id"]) - set(frame["record_id"])
    assert len(lost) == 2
    platform = system.stem
    # results of the system whose JSON broke are kept, only their hardware fields are empty
    assert (frame["system_id"] == platform).sum() == (clean["system_id"] == platform).sum() > 0
    assert frame.loc[frame["system_id"] == platform, "accelerator_raw"].isna().all()


def test_random_truncations_of_a_real_log_parse_or_fail_cleanly(small_tree):
    text = sorted(small_tree.rglob("mlperf_log_summary.txt"))[0].read_text()
    full = parse_summary(text)
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(len(text)), 60)):
        try:
            partial = parse_summary(text[:cut])
        except LogFormatError:
            continue
        assert partial.values == full.values  # a cut file is rejected or complete: never a wrong number


def test_corrupted_cm_result_files_are_reported(shared_mlperf, tmp_path):
    source = sorted((shared_mlperf / "raw/v4.0").rglob("cm-result.json"))[:3]
    rng = random.Random(3)
    for i, path in enumerate(source):
        target = tmp_path / f"exp{i}" / "cm-result.json"
        target.parent.mkdir()
        data = path.read_bytes()
        target.write_bytes(data if i else data[: rng.randrange(1, len(data) - 1)])
    report = BuildReport()
    reader = CmResultReader(tmp_path, report)
    records = [r for path in reader.find() for r in reader.read(path)]
    assert [Path(p).parent.name for p, _ in report.skipped] == ["exp0"]
    expected = sum(
        len({(r["Location"], r["Scenario"]) for r in json.loads(p.read_text()) if r.get("Result")}) for p in source[1:]
    )
    assert len(records) == expected


def test_nothing_readable_is_an_error(tmp_path):
    (tmp_path / "cm-result.json").write_text("[{]")
    with pytest.raises(NoInputError):
        build_dataset([tmp_path])


def test_cli_strict_fails_and_writes_nothing(small_tree, tmp_path):
    sorted(small_tree.rglob("mlperf_log_summary.txt"))[0].write_text("garbage")
    out = tmp_path / "out.parquet"
    runner = CliRunner()
    lenient = runner.invoke(app, ["data", "build", "-q", "--source", str(small_tree), "--out", str(out)])
    assert lenient.exit_code == 0, lenient.output
    assert out.exists() and "skipped 1 files" in lenient.output
    out.unlink()
    strict = runner.invoke(app, ["data", "build", "-q", "--strict", "--source", str(small_tree), "--out", str(out)])
    assert strict.exit_code == 2
    assert not out.exists()


def test_cli_no_input_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["data", "build", "-q", "--source", str(tmp_path)])
    assert result.exit_code == 2
    assert "no records could be read" in result.output
    assert "Traceback" not in result.output
