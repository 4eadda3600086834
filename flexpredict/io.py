"""Where a user's own files go, and writes that never leave half a file (or half a model) behind.

The package's own artifacts (`models/default`, `flexpredict/data/mlperf_records.parquet`) are read-only by default:
`train` and `data build` write under the user home unless `--out` names the shipped path explicitly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def user_home() -> Path:
    """`$FLEXPREDICT_HOME`, else `$XDG_DATA_HOME/flexpredict` or `~/.local/share/flexpredict`."""
    explicit = os.environ.get("FLEXPREDICT_HOME")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "flexpredict"


def user_model_dir(name: str = "default") -> Path:
    """Where `train` writes without `--out`."""
    return user_home() / "models" / name


def user_dataset_file() -> Path:
    """Where `data build` writes without `--out`."""
    return user_home() / "data" / "mlperf_records.parquet"


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary)` beside `path`, then rename over it: an interrupted write keeps what was stored."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


@contextmanager
def replaced_folder(folder: Path | str):
    """Yield an empty sibling folder to fill; on success it takes `folder`'s place, on error it is removed and
    `folder` is untouched. (Two renames: a crash between them leaves the old folder as `.<name>.old-*`.)"""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))
    try:
        yield fresh
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if folder.exists():
        old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
        os.replace(folder, old / folder.name)
        os.replace(fresh, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(fresh, folder)


def plain(value: Any) -> Any:
    """numpy/pandas scalars to JSON-ready Python values (missing -> None)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def strict_json(value, **dumps) -> str:
    """JSON that strict parsers (JavaScript's JSON.parse) accept: NaN and infinities become null."""
    return json.dumps(_finite(value), allow_nan=False, **dumps)


def _finite(value):
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / pandas scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        if value != value:  # pd.NA / NaT compare unequal (or raise)
            return None
    except TypeError:
        return None
    return str(value)
