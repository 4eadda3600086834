"""Scored candidates, remembered: the predictions `recommend` needs for one model and scenario, kept as a parquet
table, so a fresh process answers without loading the predictors (importing XGBoost pulls in scikit-learn and
SciPy: about 0.9 s of a 2 s budget on two cores).

A table belongs to the exact model bundle and catalogs that produced it, and to the format of its columns (the
fingerprint: SCORE_FORMAT_VERSION plus the content of the model's files and of the catalogs; retraining or editing a
catalog starts afresh). Source edits do not: a change to what a remembered row holds bumps SCORE_FORMAT_VERSION.
`flexpredict train` writes tables for the documented default model beside the bundle (and, with a capacity function,
its sizing at MLPerf's Server and Interactive bounds: keyed by `capacity_fingerprint`); every other (model, scenario)
or sizing is scored live the first time and kept in the user's cache (`$FLEXPREDICT_CACHE_DIR`, else
`$XDG_CACHE_HOME/flexpredict` or `~/.cache/flexpredict`). A configuration missing from a table (e.g. an engine that
appeared in a rebuilt dataset) is scored live and added.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from . import capacity, catalogs
from .io import atomic_write

FOLDER = "scores"
KEY = ("accelerator", "count", "nodes", "precision", "engine")

# bump when what a remembered row holds or means changes (its columns, the featurisation or scoring behind them)
SCORE_FORMAT_VERSION = 2  # 2: unknown_power_w (no power or energy on a part with no TDP and no measured power)


def fingerprint(model_dir: Path) -> str:
    """Hash of what a prediction depends on: the score format version, the content of the bundle's files (the
    remembered tables and the capacity function beside them excluded) and of the accelerator, model and workload
    catalogs. Source files are not hashed: editing a comment keeps the shipped tables."""
    digest = hashlib.sha256(f"score-format-{SCORE_FORMAT_VERSION}".encode())
    model_files = sorted(
        path
        for path in model_dir.rglob("*")
        if path.is_file() and path.relative_to(model_dir).parts[0] not in (FOLDER, capacity.FOLDER)
    )
    features = catalogs.resource_dir("features")
    catalog_files = [
        features / "accelerators.yaml",
        features / "models.yaml",
        features / "workloads.yaml",
        *sorted(features.glob("hf_configs/*/*/config.json")),
    ]
    for root, paths in ((model_dir, model_files), (features, catalog_files)):
        for path in paths:  # names too: a file moved is another model
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def capacity_fingerprint(model_dir: Path) -> str:
    """`fingerprint` plus the content of the model's capacity function: the key of remembered capacity sizings."""
    digest = hashlib.sha256(fingerprint(model_dir).encode())
    folder = model_dir / capacity.FOLDER
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def user_cache_dir() -> Path:
    explicit = os.environ.get("FLEXPREDICT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flexpredict"


def row_keys(frame: pd.DataFrame) -> pd.Index:
    """One string per configuration (`engine` may be missing)."""
    parts = [frame[c].astype("object").where(frame[c].notna(), "").astype(str) for c in KEY]
    # pandas-stubs: `others` may be a list of Series at run time (aligned on the index), the stubs do not say so
    return pd.Index(parts[0].str.cat(parts[1:], sep="|"), name="key")  # type: ignore[arg-type]


def _file(folder: Path, model_id: str, scenario: str) -> Path:
    return folder / f"{model_id}__{scenario}.parquet"


def read(model_dir: Path, key: str, model_id: str, scenario: str) -> pd.DataFrame | None:
    """The remembered table (index: row key), from beside the bundle and the user cache together; None if none."""
    tables = []
    for folder in (model_dir / FOLDER / key, user_cache_dir() / FOLDER / key):
        path = _file(folder, model_id, scenario)
        if path.exists():
            try:
                tables.append(pd.read_parquet(path))
            except (OSError, ValueError):  # a damaged cache file is only a lost shortcut
                continue
    if not tables:
        return None
    table = pd.concat(tables) if len(tables) > 1 else tables[0]
    return table[~table.index.duplicated(keep="first")]


def write(table: pd.DataFrame, folder: Path, model_id: str, scenario: str) -> Path | None:
    """Write atomically; a folder we may not write to is skipped (the table is only a shortcut)."""
    try:
        return atomic_write(_file(folder, model_id, scenario), table.to_parquet)
    except OSError:
        return None
