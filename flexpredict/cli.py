"""The `flexpredict` command line: one Typer app, one module per command group in `commands/`."""

from __future__ import annotations

import typer

from .bench.cli import app as bench_app
from .campaign.commands import app as campaign_app
from .commands import data, explain, model, recommend

app = typer.Typer(help="Predict and recommend AI inference deployments from MLPerf results and your own benchmarks.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(data.app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(campaign_app, name="campaign")
app.command()(model.train)
app.command()(model.evaluate)
app.command()(model.predict)
app.command()(recommend.recommend)
app.command()(explain.explain)
app.command()(explain.report)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
