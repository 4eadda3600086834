"""What every page shares, loaded once per server process: the dataset, the model, the catalogs' choices."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from . import MODEL_DIR_ENV, STORAGE_ENV


def model_dir() -> Path:
    """The --model-dir the board was started with, else what the CLI would use."""
    from ..commands.common import model_folder

    return model_folder(Path(os.environ[MODEL_DIR_ENV]) if os.environ.get(MODEL_DIR_ENV) else None)


def storage() -> str:
    """The --storage URL the board was started with ('' when none)."""
    return os.environ.get(STORAGE_ENV, "")


@st.cache_resource(show_spinner="loading the dataset")
def records():
    from .. import dataset

    return dataset.load()


@st.cache_resource(show_spinner="loading the model")
def bundle(folder: Path):
    from ..predictors.bundle import ModelBundle

    return ModelBundle.load(folder)


@st.cache_resource
def catalog_ids() -> dict[str, list[str]]:
    """Accelerator and model ids of the catalogs, for the select boxes."""
    from .. import catalogs

    return {
        "accelerators": sorted(r["id"] for r in catalogs.accelerators().rows),
        "models": sorted(r["id"] for r in catalogs.models().rows),
    }
