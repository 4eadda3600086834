"""`flexpredict board`: a local Streamlit app over the dataset, predictions, recommendations and campaigns.

Streamlit because FlexBoard (the FlexBench app this follows) is one, it ships Vega-Lite charts (altair) for the
interactive Pareto front, and `streamlit.testing.v1.AppTest` runs every page headless in the unit tests. The pages
(`views/`) call the same library functions as the CLI through `queries`; `resources` caches the dataset and the
model once per server. The server gets its options through the environment, so `streamlit run` and `AppTest` see
the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
MODEL_DIR_ENV = "FLEXPREDICT_BOARD_MODEL_DIR"
STORAGE_ENV = "FLEXPREDICT_BOARD_STORAGE"


def server_command(port: int, model_dir: Path, storage: str | None) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and environment of a local, offline board on `port`."""
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.showErrorDetails",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    env = {**os.environ, MODEL_DIR_ENV: str(model_dir), STORAGE_ENV: storage or ""}
    return argv, env
