"""The `flexpredict` command line: one Typer app, one module per command group in `commands/`."""

from __future__ import annotations

import re
import sys

import typer
from rich.markup import escape
from typer.core import TyperGroup

from .bench.cli import app as bench_app
from .board.command import board
from .campaign.commands import app as campaign_app
from .commands import data, explain, model, recommend
from .commands.common import err_console

EXIT_BAD_INPUT = 2


class OneLineErrors(TyperGroup):
    """Usage errors (a bad number, an unknown choice or option) as one line on stderr, exit 2, instead of Typer's
    boxed panel: `error: --budget: expected a number, got 'abc'`."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(
                args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        except typer.Abort:
            err_console.print("[bold red]error:[/] aborted", highlight=False)
            code = 130
        except typer.TyperException as exc:  # Typer's own Click: UsageError, BadParameter, NoSuchOption, ...
            if exc.__class__.__name__ == "NoArgsIsHelpError":  # a bare `flexpredict data`: its help
                exc.show()
            else:
                err_console.print(f"[bold red]error:[/] {escape(one_line(exc, args))}", highlight=False)
            code = EXIT_BAD_INPUT
        except OSError as exc:  # a path the user gave that cannot be read or written (permissions, a full disk)
            if exc.filename is None:
                raise
            err_console.print(f"[bold red]error:[/] {escape(f'{exc.filename}: {exc.strerror}')}", highlight=False)
            code = EXIT_BAD_INPUT
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def one_line(exc, args: list[str]) -> str:
    """`--OPTION: expected ..., got ...` for a bad option value; the usage error's own message otherwise."""
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and param.opts:
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        message = " ".join(str(exc.message).split())
        if message.startswith("expected"):  # our own checks (commands/common.py) already say what was expected
            return f"{name}: {message}"
        return f"{name}: expected {_expected(message)}, got {_given(args, param.opts)!r}"
    return " ".join(exc.format_message().split())


_CHOICES = re.compile(r"is not one of (.*?)\.?$")
_TYPE = re.compile(r"Input should be (?:a valid )?(\w+)")


def _expected(message: str) -> str:
    """What a type check wanted, in words, from Typer's (pydantic's) message."""
    choices = _CHOICES.search(message)
    if choices:
        return "one of " + choices.group(1).replace("'", "")
    kind = _TYPE.search(message)
    if kind:
        return {"number": "a number", "integer": "an integer"}.get(kind.group(1), kind.group(1))
    return message


def _given(args: list[str], opts: list[str]) -> str | None:
    """The text the user gave an option (`--budget abc` or `--budget=abc`)."""
    for position, arg in enumerate(args):
        if arg in opts and position + 1 < len(args):
            return args[position + 1]
        for opt in opts:
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


app = typer.Typer(
    cls=OneLineErrors,
    help="Predict and recommend AI inference deployments from MLPerf results and your own benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(campaign_app, name="campaign")
app.command()(model.train)
app.command()(model.evaluate)
app.command()(model.predict)
app.command()(recommend.recommend)
app.command()(explain.explain)
app.command()(explain.report)
app.command()(board)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
