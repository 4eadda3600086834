"""`flexpredict board`: check the options, then serve the app with `streamlit run` until interrupted."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
from pathlib import Path

import typer

from ..commands.common import console, fail, load_model, model_folder
from . import server_command


def board(
    port: int = typer.Option(8501, help="Local port to serve on (127.0.0.1 only)."),
    model_dir: Path = typer.Option(
        None, "--model-dir", help="Trained model folder (default: $FLEXPREDICT_MODEL_DIR, else the shipped model)."
    ),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Campaign storage to show read-only, e.g. "
        "sqlite:///runs/campaigns/<name>/study.db or postgresql://user@host/db.",
    ),
) -> None:
    """A local web app: the dataset, predictions, recommendations and campaigns, on the shipped data, offline."""
    if importlib.util.find_spec("streamlit") is None:
        fail("the board needs Streamlit: pip install 'flexpredict[board]'")
    if not 0 < port < 65536:
        fail(f"--port: expected 1 to 65535, got {port}")
    if not _free(port):
        fail(f"--port: {port} is already in use on 127.0.0.1 (pick another with --port)")
    folder = model_folder(model_dir)
    load_model(folder)  # a missing or damaged model is one line here, not an error page later
    if storage:
        from .queries import BoardInputError, open_storage_read_only

        try:
            open_storage_read_only(storage)
        except BoardInputError as exc:
            fail(f"--{exc}")
    argv, env = server_command(port, folder.resolve(), storage)
    console.print(f"flexpredict board on http://127.0.0.1:{port} (Ctrl-C to stop)", highlight=False)
    try:
        raise typer.Exit(subprocess.run(argv, env=env).returncode)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
