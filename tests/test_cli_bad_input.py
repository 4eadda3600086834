"""Issue 14: every bad input a user can type gives one line on stderr naming the option, file or column and what was
expected, exit 2 (1 for "no recommendation"), no traceback, and leaves what was already stored untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexpredict import catalogs, dataset
from flexpredict.cli import app

runner = CliRunner()
H100 = ["--accelerator", "h100-sxm-80gb", "--model", "llama2-70b"]
OWN = ["--pricing", "own"]
STORED = b"stored before the command ran"
CAMPAIGN = {  # a replay campaign over the shipped dataset: measures in milliseconds
    "backend": {"kind": "replay", "pool": {"model": "mixtral-8x7b"}, "delay_s": 0.0},
    "space": {
        "accelerator": {"similarity": 0.0},
        "accelerators_per_node": {"similarity": 0.8},
        "precision": {"similarity": 0.5},
        "engine": {"similarity": 0.5},
        "scenario": {"similarity": 0.3},
    },
    "objective": {"metric": "throughput_per_accelerator"},
    "budget": {"runs": 3},
    "batch_size": 2,
    "initial_trials": 2,
    "predictor": "knobs",
}


def files(tmp: Path) -> dict[str, Path]:
    """The inputs the table below refers to, written into `tmp`."""
    header = tmp / "header.csv"
    header.write_text("accelerator,count,model,scenario\n")
    unknown = tmp / "unknown.csv"
    unknown.write_text(
        "accelerator,count,model,scenario\nnosuch-gpu,1,llama2-70b,Offline\n"
        "h100-sxm-80gb,1,nosuch-model,Offline\nh100-sxm-80gb,1,llama2-70b,Weird\n"
        "h100-sxm-80gb,0,llama2-70b,Offline\nh100-sxm-80gb,-8,llama2-70b,Offline\n"
    )
    good = tmp / "good.csv"
    good.write_text("accelerator,count,model,scenario\nh100-sxm-80gb,8,llama2-70b,Offline\n")
    binary = tmp / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    campaign = tmp / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({**CAMPAIGN, "name": "never-created"}))
    zero = tmp / "zero.parquet"
    dataset.load().head(5).to_parquet(zero)  # 5 records: under the 20 rows any target needs
    (tmp / "folder.csv").mkdir()
    folder = tmp / "existing-folder"
    folder.mkdir()
    (folder / "keep.txt").write_bytes(STORED)
    for name in ("out.xlsx", "out.parquet"):
        (tmp / name).write_bytes(STORED)
    return {p.name: p for p in tmp.iterdir()} | {"tmp": tmp}


# (arguments, exit code, what the one line must name); <name> is a path from `files`
CASES = [
    (["recommend", "--top", "0"], 2, "--top: expected an integer >= 1, got 0"),
    (["recommend", "--top", "-1"], 2, "--top: expected an integer >= 1"),
    (["recommend", "--budget", "nan"], 2, "--budget: expected a finite positive number, got nan"),
    (["recommend", "--budget", "inf"], 2, "--budget: expected a finite positive number, got inf"),
    (["recommend", "--budget", "abc"], 2, "--budget: expected a number, got 'abc'"),
    (["recommend", "--budget=-5"], 2, "--budget: expected a finite positive number"),
    (["recommend", "--max-accelerators", "0"], 2, "--max-accelerators: expected an integer >= 1"),
    (["recommend", *OWN, "--electricity", "-1"], 2, "--electricity: expected a finite number >= 0"),
    (["recommend", *OWN, "--amortize-years", "-3"], 2, "--amortize-years: expected a finite positive number"),
    (["recommend", *OWN, "--amortize-years", "0"], 2, "--amortize-years: expected a finite positive number"),
    (["recommend", "--format", "xml"], 2, "--format: expected one of table, json, csv, got 'xml'"),
    (["recommend", "--plot", "/nonexistent/dir/p.png"], 2, "--plot: expected a file in an existing folder"),
    (["recommend", "--plot", "<out.parquet>"], 2, "--plot: expected a .png, .svg, .pdf file"),
    (["recommend", "--nosuch-option"], 2, "No such option: --nosuch-option"),
    (["recommend", "--budget", "1", "--latency-slo", "1ms"], 1, "no recommendation: "),
    (["predict", *H100, "--count", "0"], 2, "--count: expected an integer >= 1, got 0"),
    (["predict", *H100, "--count", "-1"], 2, "--count: expected an integer >= 1, got -1"),
    (["predict", *H100, "--nodes", "0"], 2, "--nodes: expected an integer >= 1"),
    (
        ["predict", "--accelerator", "h100-pcie-80gb", "--model", "llama3.1-405b"],
        1,
        "llama3.1-405b does not fit in 1x nvidia-h100-pcie-80gb",
    ),
    (["predict", *H100, "--precision", "fp3"], 2, "--precision: expected a precision (did you mean"),
    (["predict", *H100, "--engine", "nosuch"], 2, "--engine: expected an engine"),
    (["predict", "--input", "<header.csv>", "--out", "<out.parquet>"], 2, "header.csv: no rows to predict"),
    (
        ["predict", "--input", "<unknown.csv>", "--out", "<out.parquet>"],
        2,
        "unknown.csv: none of 5 row(s) could be resolved (row 1: unknown accelerator 'nosuch-gpu'",
    ),
    (["predict", "--input", "<good.csv>", "--out", "<out.xlsx>"], 2, "--out: expected a .parquet, .csv, .json, .jsonl"),
    (["predict", "--input", "<good.csv>", "--out", "<folder.csv>"], 2, "folder.csv'"),
    (["data", "export", "--out", "<out.xlsx>"], 2, "--out: "),
    (["data", "export", "--out", "<folder.csv>", "--format", "csv"], 2, "--out: "),
    (
        ["campaign", "export", "<campaign.yaml>", "--dir", "<tmp>/missing", "--out", "<folder.csv>"],
        2,
        "no campaign study at",
    ),
    (["predict", *H100, "--model-dir", "<existing-folder>"], 2, "existing-folder: no trained model here"),
    (["train", "--dataset", "<zero.parquet>", "--quiet"], 2, "0 usable rows for every target (5 records read)"),
    (["train", "--out", "<existing-folder>", "--quiet"], 2, "--out: "),
    (["train", "--predictor", "nosuch", "--quiet"], 2, "--predictor: expected one of knobs, lookup-median"),
    (["train", "--name", "../escape", "--quiet"], 2, "--name: expected a plain folder name, got '../escape'"),
    (["evaluate", "--target", "speed", "--quiet"], 2, "--target: expected one of throughput_per_accelerator"),
    (["evaluate", "--split", "random", "--quiet"], 2, "--split: expected one of"),
    (["data", "build", "--quiet", "--source", "<header.csv>", "--out", "<existing-folder>"], 2, "--out: expected a"),
    (["campaign", "create", "<binary.yaml>"], 2, "binary.yaml: not a text (UTF-8) YAML file"),
    (["recommend", "--prices", "<binary.yaml>"], 2, "--prices: "),
    (["explain", "--sample", "-5"], 2, "--sample: expected an integer >= 0, got -5"),
    (["report", "--out", "<tmp>", "--sample", "-1"], 2, "--sample: expected an integer >= 0"),
    (["campaign", "status", "<campaign.yaml>", "--top", "0"], 2, "--top: expected an integer >= 1"),
    (["campaign", "run", "<campaign.yaml>", "--trials", "-1"], 2, "--trials: expected an integer >= 1"),
    (["campaign", "status", "<campaign.yaml>", "--dir", "<tmp>/missing"], 2, "no campaign study at"),
    (
        ["campaign", "export", "<campaign.yaml>", "--dir", "<tmp>/missing", "--out", "<out.parquet>"],
        2,
        "no campaign study at",
    ),
    (["campaign", "status", "<campaign.yaml>", "--storage", "sqlite:///<tmp>/no/dir/s.db"], 2, "no campaign study"),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, args, code, message):
    paths = files(tmp_path)
    for name, path in paths.items():
        args = [a.replace(f"<{name}>", str(path)) for a in args]
    before = snapshot(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before  # nothing stored was replaced, nothing was created (no study, no folder)


def test_some_unresolved_rows_are_reported_and_marked_unknown(tmp_path):
    source = tmp_path / "mixed.csv"
    source.write_text(
        "accelerator,count,model,scenario\nh100-sxm-80gb,8,llama2-70b,Offline\n"
        "nosuch-gpu,1,llama2-70b,Offline\nh100-sxm-80gb,-8,llama2-70b,Offline\n"
        "h100-sxm-80gb,eight,llama2-70b,Offline\n"
    )
    out = tmp_path / "predicted.csv"
    result = runner.invoke(app, ["predict", "--input", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    warning = result.stderr.strip().splitlines()
    assert warning[0].endswith("3 of 4 row(s) not resolved (match = unknown, no prediction):")
    assert warning[1].strip().startswith("row 2: unknown accelerator 'nosuch-gpu'")
    assert (
        warning[2].strip() == "row 3: count: expected whole numbers >= 1 of accelerators per node and nodes, got -8 x 1"
    )
    assert warning[3].strip().endswith("got eight x 1")
    frame = pd.read_csv(out)
    assert list(frame["match"]) == ["resolved", "unknown", "unknown", "unknown"]
    assert frame["pred_throughput_per_accelerator"].notna().tolist() == [True, False, False, False]


def test_damaged_model_folder_names_the_file_and_the_fix(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(catalogs.default_model_dir(), folder, ignore=shutil.ignore_patterns("scores"))
    (folder / "manifest.json").write_text("{not json")
    result = runner.invoke(app, ["predict", *H100, "--model-dir", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: {folder / 'manifest.json'}: damaged model file")
    assert "retrain it with `flexpredict train --out" in result.stderr
    broken = next(p for p in (folder / "throughput_per_accelerator").iterdir() if p.is_file())
    (folder / "manifest.json").write_bytes((catalogs.default_model_dir() / "manifest.json").read_bytes())
    broken.write_bytes(b"\0garbage")
    again = runner.invoke(app, ["predict", *H100, "--model-dir", str(folder)])
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1, again.output
    assert "throughput_per_accelerator" in again.stderr and "damaged model file" in again.stderr


def test_model_without_a_throughput_predictor_is_one_line_for_recommend(tmp_path):
    """What a model trained on a few runs looked like before `train` refused it: recommend crashed (KeyError)."""
    folder = tmp_path / "model"
    shutil.copytree(catalogs.default_model_dir(), folder, ignore=shutil.ignore_patterns("scores"))
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["targets"]["throughput_per_accelerator"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["recommend", "--budget", "2000", "--latency-slo", "200ms", "--model-dir", str(folder)])
    assert result.exit_code == 2, result.output
    assert (
        result.stderr.strip() == f"error: {folder}: predicts no throughput_per_accelerator (trained on too few "
        "records); retrain it or pass another --model-dir"
    )


def test_model_dir_comes_from_the_environment(tmp_path):
    result = runner.invoke(app, ["predict", *H100], env={"FLEXPREDICT_MODEL_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: {tmp_path}: no trained model here (run `flexpredict train --out {tmp_path}`)"
    )


def test_unwritable_output_names_the_file(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    if shutil.which("chattr") is None or not _immutable(folder, True):
        pytest.skip("chattr +i is not available here")
    try:
        result = runner.invoke(app, ["data", "export", "--out", str(folder / "records.parquet")])
    finally:
        _immutable(folder, False)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {folder / 'records.parquet'}: Operation not permitted", result.output
    assert not list(folder.iterdir())


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i: read-only even for root (the test machine runs as root); False where the filesystem refuses."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


def test_campaign_on_read_only_storage(tmp_path):
    """status and export read a read-only study; run refuses it in one line before measuring anything."""
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({**CAMPAIGN, "name": "read-only"}))
    study_dir = tmp_path / "study"
    assert runner.invoke(app, ["campaign", "run", str(path), "--dir", str(study_dir), "--trials", "1"]).exit_code == 0
    if shutil.which("chattr") is None or not _immutable(study_dir / "study.db", True):
        pytest.skip("chattr +i is not available here")
    try:
        _immutable(study_dir, True)
        before = snapshot(study_dir)
        status = runner.invoke(app, ["campaign", "status", str(path), "--dir", str(study_dir), "--format", "json"])
        assert status.exit_code == 0, status.output
        document = json.loads(status.stdout, parse_constant=lambda token: pytest.fail(f"not strict JSON: {token}"))
        assert document["states"]["complete"] == 1
        exported = runner.invoke(
            app, ["campaign", "export", str(path), "--dir", str(study_dir), "--out", str(tmp_path / "records.csv")]
        )
        assert exported.exit_code == 0 and len(pd.read_csv(tmp_path / "records.csv")) == 1, exported.output
        refused = runner.invoke(app, ["campaign", "run", str(path), "--dir", str(study_dir), "--trials", "1"])
        assert refused.exit_code == 2
        assert (
            refused.stderr.strip() == f"error: storage: {study_dir / 'study.db'} is read-only (workers write "
            "their trials there)"
        )
        assert snapshot(study_dir) == before
    finally:
        _immutable(study_dir, False)
        _immutable(study_dir / "study.db", False)


def test_postgresql_url_uses_the_installed_driver():
    from flexpredict.campaign.study import plain_postgresql

    url = plain_postgresql("postgresql://user:secret@db.example:5432/campaigns")
    try:
        import psycopg  # noqa: F401  (v3: SQLAlchemy's default for postgresql://)

        assert url == "postgresql://user:secret@db.example:5432/campaigns"
    except ImportError:
        assert url == "postgresql+psycopg2://user:secret@db.example:5432/campaigns"
    assert plain_postgresql("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert plain_postgresql("sqlite:///x.db") == "sqlite:///x.db"
