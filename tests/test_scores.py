"""Remembered score tables are keyed by SCORE_FORMAT_VERSION and the content of the model and catalogs, not by
source files: a copied model folder keeps its key, a changed model file or format version gets a new one."""

from __future__ import annotations

import shutil

from flexpredict import catalogs, scores


def test_the_key_follows_content_not_folder_names_or_source(tmp_path, monkeypatch):
    shipped = catalogs.default_model_dir()
    copy = tmp_path / "another-name"
    shutil.copytree(shipped, copy, ignore=shutil.ignore_patterns(scores.FOLDER, "capacity"))
    key = scores.fingerprint(shipped)
    assert scores.fingerprint(copy) == key  # the tables beside it do not count, nor the folder's name
    (copy / "capacity").mkdir()
    (copy / "capacity" / "capacity.json").write_text("{}")
    assert scores.fingerprint(copy) == key  # the capacity function is not what the tables remember
    monkeypatch.setattr(scores, "SCORE_FORMAT_VERSION", scores.SCORE_FORMAT_VERSION + 1)
    assert scores.fingerprint(copy) != key
    monkeypatch.undo()
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"xgboost"', '"xgboost "', 1))
    assert scores.fingerprint(copy) != key
