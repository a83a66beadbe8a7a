"""The ``reelpick`` command line: one module per subcommand, each a thin call into the library."""

from __future__ import annotations

import typer

from reelpick.cli import (
    causal,
    demo,
    evaluate,
    logs,
    ope,
    precompute,
    promote,
    serve,
    simulate,
    train,
)

app = typer.Typer(
    name="reelpick",
    help="Personalise a streaming home page: train, evaluate, simulate, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("evaluate")(evaluate.evaluate)
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)
app.command("simulate-many")(simulate.simulate_many)
app.add_typer(causal.app, name="causal")
app.command("ope")(ope.ope)
app.command("precompute")(precompute.precompute)
app.command("promote")(promote.promote)
app.command("serve")(serve.serve)
app.command("train")(train.train)
app.command("train-seq")(train.train_seq)
app.add_typer(logs.app, name="logs")


def main() -> None:
    """Entry point of the ``reelpick`` script."""
    app()
