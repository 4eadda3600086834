"""explain: SHAP values add up to the predictions (ours and shap's TreeExplainer), measured configurations are
explained by their measurements, plots are written, the CLI's JSON has its documented keys."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from flexpredict import catalogs, dataset, explain
from flexpredict.cli import app
from flexpredict.configs import config_records
from flexpredict.predictors.bundle import ModelBundle, training_rows
from flexpredict.predictors.xgboost_model import NOVELTIES, UNMEASURED

runner = CliRunner()
THROUGHPUT = "throughput_per_accelerator"
GLOBAL_SAMPLE = 600  # design rows the global view explains (of thousands)
LOCAL_KEYS = {
    "target",
    "unit",
    "configuration",
    "record_id",
    "prediction",
    "low",
    "high",
    "ood",
    "measured_configuration",
    "measured_value",
    "start",
    "trees_average",
    "contributions",
    "reasons",
}
H200 = [
    "--accelerator",
    "h200-sxm-141gb",
    "--count",
    "8",
    "--model",
    "llama2-70b",
    "--scenario",
    "Server",
    "--precision",
    "fp8",
]


@pytest.fixture(scope="module")
def bundle():
    return ModelBundle.load(targets=(THROUGHPUT, "tpot_p99_ms"))


@pytest.fixture(scope="module")
def records():
    return dataset.load()


@pytest.fixture(scope="module")
def grid():
    """8x every catalog accelerator running llama2-70b (Server, fp8): a few measured, most never."""
    return config_records(
        [
            {"accelerator": a["id"], "count": 8, "model": "llama2-70b", "scenario": "Server", "precision": "fp8"}
            for a in catalogs.accelerators().rows
            if a.get("kind") not in ("cpu", "soc")
        ]
    )


@pytest.fixture(scope="module")
def blended(bundle):
    """The shipped throughput predictor with the trees' correction at half weight in every blend (the learned
    weights may leave the trees out of some): the arithmetic must hold for any weights."""
    predictor = copy.copy(bundle.predictors[THROUGHPUT])
    predictor.blend_weights_ = {name: [0.25, 0.5, 0.125, 0.125] for name in NOVELTIES}
    return predictor


@pytest.fixture(scope="module")
def split(blended, grid):
    """(contributions, feature names, log predictions, measured mask, explained matrix) of the grid's throughput."""
    contributions, matrix = blended.explained(grid)
    features = [c for c in contributions.columns if c not in ("bias", "prior", "measured")]
    measured = contributions["measured"].to_numpy(dtype=bool)
    assert 0 < measured.sum() < len(grid) - 5, "the grid needs both measured and unmeasured configurations"
    return contributions, features, np.log(blended.predict(grid)), measured, matrix


@pytest.fixture(scope="module")
def global_throughput(bundle, records):
    return explain.explain_global(bundle, records, THROUGHPUT, sample=GLOBAL_SAMPLE)


def test_contributions_add_up_to_the_log_prediction(blended, grid, split):
    import xgboost as xgb

    contributions, features, log_pred, measured, matrix = split
    # measured: the prediction is the measured prior, the trees add nothing
    np.testing.assert_allclose(contributions.loc[measured, "prior"], log_pred[measured], atol=1e-9)
    assert (contributions.loc[measured, features] == 0).all().all()
    # unmeasured: the blend's start + the trees' average + SHAP (both at the trees' weight) = the blend with the
    # trees' own output on the transfer prior (exact TreeSHAP, scaled)
    rows = ~measured
    weight, margin = matrix.loc[rows, "blend_trees"].to_numpy(), matrix.loc[rows, "transfer_prior"].to_numpy()
    assert (weight > 0).all()
    total = (contributions["prior"] + contributions["bias"] + contributions[features].sum(axis=1)).to_numpy()
    trees = blended.booster_.predict(
        xgb.DMatrix(blended.feature_matrix(grid.loc[rows]), enable_categorical=True, base_margin=margin)
    )
    np.testing.assert_allclose(total[rows], contributions.loc[rows, "prior"] + weight * (trees - margin), atol=1e-3)
    # ... which is the prediction, unless the predictor capped the correction: then it lies between start and trees
    prior = contributions.loc[rows, "prior"].to_numpy()
    moved, wanted = log_pred[rows] - prior, total[rows] - prior
    assert np.all(np.abs(moved) <= np.abs(wanted) + 1e-3) and np.all(moved * wanted >= -1e-6)
    assert np.any(np.abs(moved - wanted) < 1e-3)  # and where nothing is capped, SHAP adds up to the prediction


def test_shap_tree_explainer_gives_the_same_values(blended, grid, split):
    import shap
    import xgboost as xgb

    contributions, features, _, measured, matrix = split
    data = xgb.DMatrix(blended.feature_matrix(grid.loc[~measured]), enable_categorical=True)
    explainer = shap.TreeExplainer(blended.booster_)
    values = explainer.shap_values(data)
    raw = blended.booster_.predict(data, output_margin=True)
    np.testing.assert_allclose(values.sum(axis=1) + explainer.expected_value, raw, atol=1e-3)  # shap's additivity
    weight = matrix.loc[~measured, "blend_trees"].to_numpy()[:, None]
    np.testing.assert_allclose(values * weight, contributions.loc[~measured, features].to_numpy(), atol=1e-4)


def test_local_explanations_end_at_the_prediction(bundle, grid, split):
    """...at the number `predict` returns: the predictor's output, then what the constraints did to it (the
    roofline cap here), and no number (with the reason) where the configuration does not fit."""
    measured = split[3]
    predicted = bundle.predict(grid)
    explanations = explain.explain_configuration(bundle, grid, THROUGHPUT)
    assert len(explanations) == len(grid)
    assert not predicted["fits"].all(), "the grid needs a configuration that does not fit"
    for item, (_, row), was_measured in zip(explanations, predicted.iterrows(), measured):
        if not row["fits"]:
            assert math.isnan(item.prediction) and item.reasons() == [f"no prediction: {item.unknown}"]
            assert "does not fit" in str(item.unknown)
            continue
        assert item.unknown is None and item.prediction == pytest.approx(row[f"pred_{THROUGHPUT}"], rel=1e-9)
        log_value = math.log(row[f"pred_{THROUGHPUT}"] / item.scale)
        assert item.measured == was_measured
        assert item.log_prediction == pytest.approx(log_value, abs=1e-3)
        assert item.log_prediction == pytest.approx(math.log(item.prediction / item.scale), abs=1e-3)
        values = item.shap()
        assert values.base_values + values.values.sum() == pytest.approx(log_value, abs=1e-3)
        if was_measured:  # steps between measured medians and the trend, no tree term
            assert item.trees_average == 0 and "the trees are not used" in " ".join(item.reasons())
            assert set(item.contributions.index) <= {"trend", "same_precision", "same_engine"}
        else:
            assert item.start_words.startswith("never measured")
    for term in ("cap", "constraint"):
        moved = [e for e in explanations if term in e.contributions.index]
        assert all(e.phrases[term] in " ".join(e.reasons()) for e in moved)


def test_explain_and_predict_give_the_same_numbers_after_the_constraints():
    """Energy is power / throughput of the same prediction, power within its bounds: `explain` ends there too, and
    a part with no TDP and no measured power has no power or energy in either."""
    h100 = ["--accelerator", "h100-sxm-80gb", "--count", "8", "--model", "llama3.1-8b"]
    predicted = json.loads(runner.invoke(app, ["predict", *h100, "--format", "json"]).stdout)["predictions"]
    for row in predicted:
        result = runner.invoke(app, ["explain", *h100, "-t", row["target"], "--format", "json"])
        assert result.exit_code == 0, result.output
        explained = json.loads(result.stdout)["targets"][row["target"]]
        for key in ("prediction", "low", "high"):
            assert explained[key] == pytest.approx(row[key], rel=1e-9), (row["target"], key)
    energy = json.loads(runner.invoke(app, ["explain", *h100, "-t", "energy_j_per_token", "--format", "json"]).stdout)
    assert any(
        "predicted power / predicted throughput" in r for r in energy["targets"]["energy_j_per_token"]["reasons"]
    )
    tpu = ["--accelerator", "google-tpu-v6e-32gb", "--count", "8", "--model", "llama3.1-8b"]
    result = runner.invoke(app, ["explain", *tpu, "-t", "power_w"])
    assert result.exit_code == 0 and "no prediction: no TDP for google-tpu-v6e-32gb" in result.stdout
    rows = {
        r["target"]: r
        for r in json.loads(runner.invoke(app, ["predict", *tpu, "--format", "json"]).stdout)["predictions"]
    }
    assert rows["power_w"]["prediction"] is None and rows["energy_j_per_token"]["prediction"] is None
    assert "no TDP" in rows["power_w"]["note"] and rows["throughput_per_accelerator"]["prediction"] > 0


def test_measured_configuration_starts_from_the_newest_round_median(bundle, records):
    """8x H200, llama2-70b, Server, fp8: the explanation's start is the median of the newest round's H200 runs."""
    item = explain.explain_configuration(
        bundle,
        config_records(
            [
                {
                    "accelerator": "h200-sxm-141gb",
                    "count": 8,
                    "model": "llama2-70b",
                    "scenario": "Server",
                    "precision": "fp8",
                }
            ]
        ),
        THROUGHPUT,
    )[0]
    rows, y = training_rows(records, THROUGHPUT)
    same = (
        (rows["model"] == "llama2-70b")
        & (rows["accelerator"] == "nvidia-h200-sxm-141gb")
        & (rows["scenario"] == "Server")
    ).to_numpy()
    newest = same & (rows["round"] == rows.loc[same, "round"].max()).to_numpy()
    assert item.measured and item.to_dict()["start"]["value"] == pytest.approx(np.exp(np.median(np.log(y[newest]))))
    assert item.start_words.startswith("measured: newest-round median with the same model, accelerator and scenario")


def test_global_view_explains_the_rows_the_trees_learned_from(bundle, records, global_throughput):
    glob = global_throughput
    assert glob.design_rows == len(UNMEASURED) * glob.records and len(glob.values) == GLOBAL_SAMPLE
    importance = glob.importance
    assert (importance >= 0).all() and importance.is_monotonic_decreasing and importance.iloc[0] > 0.05
    # why not the training records themselves: every one of them is measured, so the trees never touch them
    rows, _ = training_rows(records, THROUGHPUT)
    assert bundle.predictors[THROUGHPUT].contributions(rows.sample(300, random_state=0))["measured"].all()
    document = glob.to_dict(top=5)
    assert {"target", "unit", "records", "design_rows", "explained_rows", "same_data", "importance"} <= set(document)
    assert [row["feature"] for row in document["importance"]] == list(importance.index[:5])


def test_plots_are_written(bundle, grid, global_throughput, tmp_path):
    explanations = explain.explain_configuration(bundle, grid, THROUGHPUT)
    paths = [tmp_path / "bar.png", tmp_path / "beeswarm.png", tmp_path / "measured.png", tmp_path / "unmeasured.png"]
    explain.summary_plot(global_throughput, paths[0], kind="bar")
    explain.summary_plot(global_throughput, paths[1], kind="beeswarm")
    explain.waterfall_plot(next(e for e in explanations if e.measured), paths[2])
    explain.waterfall_plot(next(e for e in explanations if not e.measured), paths[3])
    for feature in explain.DEPENDENCE:
        paths.append(tmp_path / f"dependence_{feature}.png")
        explain.dependence_plot(global_throughput, feature, paths[-1])
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 8_000, path
    with pytest.raises(explain.ExplainError, match="unknown feature"):
        explain.dependence_plot(global_throughput, "no_such_feature")


def test_cli_local_json_has_the_documented_keys(tmp_path):
    result = runner.invoke(
        app, ["explain", *H200, "-t", THROUGHPUT, "-t", "tpot_p99_ms", "--format", "json", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["view"] == "local" and set(document["targets"]) == {THROUGHPUT, "tpot_p99_ms"}
    for target in document["targets"].values():
        assert set(target) == LOCAL_KEYS and target["measured_configuration"] is True
        assert target["low"] <= target["prediction"] <= target["high"]
    assert len(document["plots"]) == 2 and all(
        (tmp_path / p.split("/")[-1]).stat().st_size > 8_000 for p in document["plots"]
    )


def test_cli_explains_a_dataset_record(records):
    learned = records["scenario"].isin(["Offline", "Server", "Interactive"])  # the target's scenarios
    record = records[records[THROUGHPUT].notna() & learned].iloc[0]
    result = runner.invoke(app, ["explain", "--record-id", record["record_id"], "-t", THROUGHPUT, "--format", "json"])
    assert result.exit_code == 0, result.output
    target = json.loads(result.stdout)["targets"][THROUGHPUT]
    assert target["record_id"] == record["record_id"]
    assert target["measured_value"] == pytest.approx(record[THROUGHPUT])


def test_cli_global_table_names_features_in_words():
    result = runner.invoke(app, ["explain", "-t", "tpot_p99_ms", "--sample", "200"])
    assert result.exit_code == 0, result.output
    assert re.search(r"tpot_p99_ms: [\d,]+ training records, [\d,]+ of [\d,]+ design rows", result.stdout)
    assert "mean |SHAP|" in result.stdout and "median of runs with the same" in result.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--record-id", "no-such-record"], "no record 'no-such-record'"),
        (["--record-id", "x", "--model", "llama2-70b"], "not both"),
        (["--accelerator", "h200-sxm-141gb"], "needs --accelerator and --model"),
        (["-t", "speed"], "--target: expected one of throughput_per_accelerator"),
        (
            ["--accelerator", "h200-sxm-141gb", "--model", "resnet50", "--scenario", "Server", "-t", "tpot_p99_ms"],
            "none of tpot_p99_ms is predicted",
        ),
    ],
)
def test_cli_errors_are_one_line(arguments, message):
    result = runner.invoke(app, ["explain", *arguments])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
