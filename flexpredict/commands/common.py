"""What every command shares: the console, one-line errors, progress bars."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# piped output (CI logs, `| less`) gets room for the tables instead of Rich's 80-column default
console = Console(soft_wrap=True, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A clear one-line error instead of a traceback."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(label: str, *, enabled: bool = True):
    """A Rich progress bar; yields `update(done, total, text)`."""
    if not enabled:
        yield lambda done, total, text="": None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=err_console,
                  transient=False) as progress:
        task = progress.add_task(label, total=None, note="")

        def update(done: int, total: int, text: str = "") -> None:
            progress.update(task, completed=done, total=total, note=text)

        yield update


def load_records(path: Path | None):
    """Records from a dataset file (default: the shipped one), or a one-line error naming the file/column."""
    from .. import dataset
    from ..schema import SchemaError

    try:
        return dataset.load(path)
    except SchemaError as exc:
        fail(str(exc))
