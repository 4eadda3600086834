"""What every command shares: the console, one-line errors, option checks, the model folder, progress bars."""

from __future__ import annotations

import difflib
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# piped output (CI logs, `| less`) gets room for the tables instead of Rich's 80-column default
console = Console(soft_wrap=True, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A clear one-line error instead of a traceback."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def short_number(value: float | None) -> str:
    """A table cell: four significant digits, '-' when there is no value."""
    return "-" if value is None else f"{value:.4g}"


# -- option checks, run where Typer parses the option (the message gets the option's name in cli.main) ------------


def positive_number(value: float | None) -> float | None:
    """Budgets, prices, years: a finite number above zero."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"expected a finite positive number, got {value:g}")
    return value


def non_negative_number(value: float | None) -> float | None:
    """Electricity: a finite number, zero allowed (own solar)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"expected a finite number >= 0, got {value:g}")
    return value


def positive_count(value: int | None) -> int | None:
    """Accelerators, nodes, how many to show: at least one."""
    if value is not None and value < 1:
        raise typer.BadParameter(f"expected an integer >= 1, got {value}")
    return value


# the workload shape, for every command that takes one
ISL_OPTION = typer.Option(
    None, "--isl", help="Mean prompt tokens (default: the model's MLPerf workload, else 1024).", callback=positive_count
)
OSL_OPTION = typer.Option(
    None, "--osl", help="Mean output tokens (default: the model's MLPerf workload, else 256).", callback=positive_count
)


def non_negative_count(value: int | None) -> int | None:
    """A sample size where 0 means all."""
    if value is not None and value < 0:
        raise typer.BadParameter(f"expected an integer >= 0, got {value}")
    return value


def existing_folder_file(value: Path | None) -> Path | None:
    """An output file (a plot) whose folder exists and that is not itself a folder: checked before any work."""
    if value is not None and (value.is_dir() or not value.parent.is_dir()):
        raise typer.BadParameter(f"expected a file in an existing folder, got '{value}'")
    if value is not None and value.suffix.lower() not in PLOT_SUFFIXES:
        raise typer.BadParameter(f"expected a {', '.join(PLOT_SUFFIXES)} file, got '{value}'")
    return value


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def known_precision(value: str | None) -> str | None:
    """A precision the catalogs know (fp8, int8, ...), canonical spelling; did-you-mean otherwise."""
    from ..normalize import precision

    if value is None:
        return None
    canonical = precision(value)
    if canonical is None or len(value.split()) > 1:
        raise typer.BadParameter(f"expected a precision{_did_you_mean(value, PRECISIONS)}, got '{value}'")
    return canonical


PRECISIONS = ("fp4", "fp6", "fp8", "int4", "int8", "bf16", "fp16", "fp32")


def known_engine(value: str | None) -> str | None:
    """An engine MLPerf submissions use (vllm, tensorrt-llm, sglang, ...), canonical spelling."""
    from ..normalize import _ENGINES, engine

    if value is None:
        return None
    canonical, _ = engine(value)
    if canonical is None:
        names = sorted({name for _, name in _ENGINES})
        raise typer.BadParameter(f"expected an engine{_did_you_mean(value, names)}, got '{value}'")
    return canonical


def known_targets(values: list[str] | None) -> list[str] | None:
    """--target (repeatable): each one a target the predictors learn."""
    from ..predictors.targets import TARGETS

    for value in values or []:
        if value not in TARGETS:
            raise typer.BadParameter(f"expected one of {', '.join(TARGETS)}, got '{value}'")
    return values


def require_known(option: str, values, known) -> None:
    """Repeatable names (--target, --split, --predictor): each one must be known."""
    for value in values or []:
        if value not in known:
            fail(f"{option}: expected one of {', '.join(known)}, got '{value}'")


def _did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value).lower(), list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else f" ({', '.join(choices)})"


# -- the trained model -------------------------------------------------------------------------------------------


def model_folder(option: Path | None) -> Path:
    """`--model-dir`, else `$FLEXPREDICT_MODEL_DIR`, else the shipped model."""
    from ..catalogs import default_model_dir

    explicit = option or os.environ.get("FLEXPREDICT_MODEL_DIR")
    return Path(explicit) if explicit else default_model_dir()


def load_model(option: Path | None, targets: tuple[str, ...] | None = None):
    """The trained model bundle, or one line naming the missing/damaged file and how to restore it."""
    from ..predictors.bundle import DamagedModelError, ModelBundle

    try:
        return ModelBundle.load(model_folder(option), targets=targets)
    except (FileNotFoundError, DamagedModelError) as exc:
        fail(str(exc))


@contextmanager
def progress_bar(label: str, *, enabled: bool = True):
    """A Rich progress bar; yields `update(done, total, text)`."""
    if not enabled:
        yield lambda done, total, text="": None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
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
