"""The `flexpredict` command line: one Typer app, one module per command group in `commands/`."""

from __future__ import annotations

import typer

from .commands import data, model, recommend

app = typer.Typer(help="Predict and recommend AI inference deployments from MLPerf results and your own benchmarks.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(data.app, name="data")
app.command()(model.train)
app.command()(model.evaluate)
app.command()(model.predict)
app.command()(recommend.recommend)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
