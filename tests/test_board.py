"""`flexpredict board`, page by page through Streamlit's headless AppTest: every page renders its title, table and
chart, shows the CLI's numbers, and answers bad form input with an inline message instead of a traceback."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from flexpredict import dataset
from flexpredict.board import STORAGE_ENV, queries
from flexpredict.campaign import Worker, load_campaign
from flexpredict.cli import app

VIEWS = Path(__file__).resolve().parents[1] / "flexpredict" / "board" / "views"
cli = CliRunner()


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    """The Vega-Lite specs of the page's charts."""
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def chart_data(at: AppTest, position: int = 0) -> pd.DataFrame:
    """The rows a chart plots (Streamlit ships them beside the spec, as Arrow)."""
    return pa.ipc.open_stream(at.get("vega_lite_chart")[position].proto.datasets[0].data.data).read_pandas()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


# -- dataset -----------------------------------------------------------------------------------------------------


def test_dataset_page_filters_charts_and_downloads_the_records_with_their_source():
    at = page("dataset")
    records = dataset.load()
    assert at.title[0].value == "Dataset"
    assert at.caption[0].value.startswith(f"{len(records):,} of {len(records):,} records")
    assert len(charts(at)) == len(queries.METRICS)

    model = next(m for m in at.sidebar.multiselect if m.label == "Model")
    model.set_value(["llama2-70b"]).run()
    scenario = next(m for m in at.sidebar.multiselect if m.label == "Scenario")
    scenario.set_value(["Offline"]).run()
    chosen = records[(records["model"] == "llama2-70b") & (records["scenario"] == "Offline")]
    table = at.dataframe[0].value
    assert len(table) == len(chosen) > 0 and table.columns[0] == "source" and table["source"].notna().all()
    assert set(table["model"]) == {"llama2-70b"}
    assert at.download_button[0].proto.url.endswith(".csv")  # its content is checked in the browser test
    medians = queries.per_accelerator(chosen, "throughput_per_accelerator")
    plotted = chart_data(at)
    assert sorted(plotted["accelerator"]) == sorted(medians["accelerator"])
    assert plotted.set_index("accelerator")["median"].to_dict() == pytest.approx(
        medians.set_index("accelerator")["median"].to_dict()
    )


def test_dataset_page_says_when_no_record_matches():
    at = page("dataset")
    for label, value in (("Model", ["resnet50"]), ("Scenario", ["Interactive"])):
        next(m for m in at.sidebar.multiselect if m.label == label).set_value(value).run()
    assert "no record matches" in at.warning[0].value and not at.dataframe and not at.exception


# -- predict -----------------------------------------------------------------------------------------------------


def test_predict_page_shows_the_cli_predictions_a_waterfall_and_the_nearest_runs():
    at = page("predict")
    assert at.title[0].value == "Predict"
    shown = at.dataframe[0].value.set_index("target")
    result = cli.invoke(
        app,
        [
            "predict",
            "--accelerator",
            "nvidia-h100-sxm-80gb",
            "--count",
            "8",
            "--model",
            "llama2-70b",
            "--scenario",
            "Server",
            "--precision",
            "fp8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = pd.DataFrame(json.loads(result.stdout)["predictions"]).set_index("target")
    assert sorted(shown.index) == sorted(printed.index)
    for column in ("prediction", "low", "high"):
        assert shown.loc[printed.index, column].to_numpy() == pytest.approx(printed[column].to_numpy(), rel=1e-9)
    assert at.get("image"), "the SHAP waterfall is drawn"
    assert any("predicted" in m.value for m in at.markdown)
    nearest = at.dataframe[1].value
    assert len(nearest) and set(nearest["model"]) == {"llama2-70b"} and set(nearest["scenario"]) == {"Server"}
    assert nearest["differences"].is_monotonic_increasing and nearest["differences"].iloc[0] == 0
    assert nearest.iloc[0][["accelerator", "precision", "accelerators_total"]].tolist() == [
        "nvidia-h100-sxm-80gb",
        "fp8",
        8,
    ]


def test_predict_page_marks_inputs_without_an_api_as_not_available():
    at = page("predict")
    unavailable = [t for t in at.sidebar.text_input if t.disabled]
    assert {t.label for t in unavailable} == {"Input / output tokens (ISL/OSL)", "Load"}
    assert all("not yet available" in t.placeholder for t in unavailable)


@pytest.mark.parametrize(
    "upload, message",
    [
        (b"{not json", "config.json: not valid JSON"),
        (b"[1, 2]", "config.json: expected a JSON object"),
        (json.dumps({"model_type": "llama"}).encode(), "config.json"),
    ],
)
def test_predict_page_refuses_an_unusable_model_file_inline(upload, message):
    at = page("predict")
    at.sidebar.file_uploader[0].set_value(("config.json", upload, "application/json")).run()
    assert not at.exception and message in errors(at)[0] and not at.dataframe


def test_predict_page_takes_an_uploaded_hugging_face_config():
    config = (
        Path(__file__).resolve().parents[1]
        / "features"
        / "hf_configs"
        / "meta-llama"
        / "Llama-3.1-8B-Instruct"
        / "config.json"
    )
    at = page("predict")
    at.sidebar.file_uploader[0].set_value(("config.json", config.read_bytes(), "application/json")).run()
    next(t for t in at.sidebar.text_input if t.label == "Name of the uploaded model").set_value("my-llama-8b").run()
    assert not at.exception and not at.error
    assert " · my-llama-8b · " in at.caption[0].value
    assert "throughput_per_accelerator" in set(at.dataframe[0].value["target"])


def test_predict_page_refuses_a_bad_name_for_the_uploaded_model_inline():
    at = page("predict")
    at.sidebar.file_uploader[0].set_value(("config.json", b"{}", "application/json"))
    next(t for t in at.sidebar.text_input if t.label == "Name of the uploaded model").set_value("../x").run()
    assert errors(at) == ["model name: expected letters, digits, '.', '-' or '_', got '../x'"] and not at.exception


def test_predict_page_refuses_zero_accelerators_inline():
    at = page("predict")
    at.sidebar.number_input[0].set_value(0).run()
    assert errors(at) == ["count and nodes: expected at least 1, got 0 x 1"] and not at.exception


# -- recommend ---------------------------------------------------------------------------------------------------


def test_recommend_page_ranks_as_the_cli_and_draws_the_pareto_front():
    at = page("recommend")
    assert at.title[0].value == "Recommend"
    shown = at.dataframe[0].value
    result = cli.invoke(
        app, ["recommend", "--budget", "2000", "--latency-slo", "200ms", "--model", "llama2-70b", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout))
    assert list(shown.columns) == list(printed.columns) and len(shown) == len(printed) > 0
    assert list(shown["accelerator"]) == list(printed["accelerator"])
    assert shown["throughput"].to_numpy() == pytest.approx(printed["throughput"].to_numpy(), rel=1e-9)
    assert shown["usd_per_hour"].to_numpy() == pytest.approx(printed["usd_per_hour"].to_numpy(), rel=1e-9)

    spec = charts(at)[0]
    dots = spec["layer"][0]["encoding"]
    assert dots["color"]["field"] == "origin" and {t["field"] for t in dots["tooltip"]} >= {
        "configuration",
        "usd_per_hour",
        "throughput",
        "origin",
    }
    assert spec["params"], "zoom and pan (interactive)"
    plotted = chart_data(at)
    assert set(plotted["origin"]) == {"measured", "transferred"}
    assert (
        plotted["front"].sum() >= 1 and (plotted.loc[plotted["front"], "qualifies"] == "meets SLO within budget").all()
    )

    funnel = at.dataframe[1].value
    assert "candidate configurations" in list(funnel["stage"]) and funnel["removed"].notna().any()


def test_recommend_page_refuses_a_negative_budget_inline():
    at = page("recommend")
    at.sidebar.number_input[0].set_value(-100.0).run()
    assert errors(at) == ["budget: expected a finite positive number, got -100"] and not at.exception
    assert not at.dataframe


def test_recommend_page_explains_an_empty_result_and_still_shows_the_funnel():
    at = page("recommend")
    at.sidebar.number_input[0].set_value(5.0).run()
    assert at.warning[0].value.startswith("no recommendation: the budget removed every candidate")
    assert charts(at) and len(at.dataframe) == 1  # the Pareto chart and the funnel


def test_recommend_page_reports_a_bad_slo_inline():
    at = page("recommend")
    next(t for t in at.sidebar.text_input if t.label.startswith("Latency SLO")).set_value("fast").run()
    assert errors(at) == ["latency SLO: expected a duration like 200ms, 0.2s or 200 (ms), got 'fast'"]


# -- campaigns ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign_storage(tmp_path_factory, crashing_replay) -> str:
    """A real campaign (replay backend, 6 runs, some crashing) in a SQLite study."""
    folder = tmp_path_factory.mktemp("campaign")
    definition = {
        "name": "mixtral-board",
        "acquisition": "random",
        "backend": {"kind": crashing_replay, "pool": {"model": "mixtral-8x7b", "scenario": "Server"}, "holdout": 0.2},
        "space": {
            "accelerator": {"similarity": 0.0},
            "accelerators_per_node": {"similarity": 0.8},
            "precision": {"similarity": 0.5},
            "engine": {"similarity": 0.5},
            "scenario": {"similarity": 0.3},
        },
        "objective": {"metric": "throughput_per_accelerator", "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 200}},
        "budget": {"runs": 6},
        "batch_size": 2,
        "initial_trials": 2,
        "predictor": "knobs",
        "seed": 3,
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(definition))
    worker = Worker(load_campaign(path), workdir=folder / "run")
    worker.run()
    return worker.url


def test_campaigns_page_shows_progress_error_best_and_failures_read_only(campaign_storage, monkeypatch):
    database = Path(campaign_storage.removeprefix("sqlite:///"))
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    monkeypatch.setenv(STORAGE_ENV, campaign_storage)
    at = page("campaigns")
    assert at.title[0].value == "Campaigns" and at.header[0].value == "mixtral-board"
    report = queries.campaign_reports(campaign_storage)[0]
    assert report["spent"]["runs"] == 6 and at.get("progress")[0].proto.value == 100
    assert {m.label: int(m.value) for m in at.metric}["complete"] == report["states"]["complete"]
    best, failures = at.dataframe[0].value, at.dataframe[1].value
    assert best["trial"].tolist() == [b["trial"] for b in report["best"]]
    assert failures["reason"].str.startswith("engine crashed").all() and len(failures) == report["states"]["fail"] > 0
    error_chart = chart_data(at)
    assert len(error_chart) == report["prediction_error"]["measured_with_prediction"] > 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before, "the board never writes the storage"


@pytest.mark.parametrize(
    "url, message",
    [
        ("nonsense", "storage: not a database URL: 'nonsense'"),
        ("sqlite:///{tmp}/missing.db", "storage: no SQLite database at"),
        ("sqlite:///{tmp}/empty.db", "storage: no Optuna studies in sqlite:///"),
    ],
)
def test_campaigns_page_refuses_a_bad_storage_inline_and_creates_nothing(url, message, tmp_path, monkeypatch):
    (tmp_path / "empty.db").touch()
    monkeypatch.setenv(STORAGE_ENV, url.format(tmp=tmp_path))
    at = page("campaigns")
    assert errors(at)[0].startswith(message) and not at.exception
    assert not (tmp_path / "missing.db").exists() and (tmp_path / "empty.db").stat().st_size == 0


def test_campaigns_page_asks_for_a_storage_when_started_without_one(monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    at = page("campaigns")
    assert "storage URL" in at.info[0].value and not at.error


# -- the command -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "0"], "--port: expected 1 to 65535, got 0"),
        (["--model-dir", "{tmp}"], "no trained model"),
        (["--storage", "nonsense"], "--storage: not a database URL"),
        (["--storage", "sqlite:///{tmp}/missing.db"], "--storage: no SQLite database at"),
    ],
)
def test_board_command_refuses_bad_options_in_one_line(args, message, tmp_path):
    result = cli.invoke(app, ["board", *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not (tmp_path / "missing.db").exists()
