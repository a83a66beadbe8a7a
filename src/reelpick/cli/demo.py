"""``reelpick demo``: the main job on a default data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import DEFAULT_DATA_ROOT, console, fail
from reelpick.cli.evaluate import Protocol, evaluate


def demo(
    data: Annotated[Path | None, typer.Option(help="Dataset directory (default: "
                                              "../shared/data/ml-100k)")] = None,
) -> None:
    """Evaluate every baseline on MovieLens-100K, leave-last-out and time cut-off."""
    path = data or DEFAULT_DATA_ROOT / "ml-100k"
    if not path.exists():
        fail(f"no data at {path}: pass --data DIR with MovieLens-100K (u.data or ml-100k.inter) "
             "or a folder holding interactions.parquet/.csv")
    for protocol in Protocol:
        console.rule(f"[bold]{protocol.value}")
        evaluate(data=path, protocol=protocol, models="popular,itemknn,als,bpr", k="10,20",
                 quantile=0.8, tune=False, threads=1, json_path=None)
