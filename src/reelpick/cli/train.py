"""``reelpick train``: train the service's model directory from logs.

Reads ``interactions``, ``titles`` (and ``members``, ``artworks`` when present) ``.parquet`` from
``--logs`` (the output of ``reelpick simulate``), trains ALS and context popularity, and
publishes a new version in ``--out`` (npz and JSON, no pickle; ``manifest.json`` replaced
atomically, so a running server can ``POST /v1/admin/reload`` at any time).

Example: ``reelpick train --logs runs/sim --out runs/model``
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import console, fail
from reelpick.serve.model_dir import TrainConfig, train_model_dir


def train(
    logs: Annotated[Path, typer.Option("--logs", help="Folder with interactions.parquet, "
                                       "titles.parquet (members, artworks optional), or a "
                                       "dataset folder (MovieLens, interactions.csv).",
                                       exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Model directory to publish into.",
                                      file_okay=False)],
    factors: Annotated[int, typer.Option("--factors", min=1, help="ALS factors.")] = 64,
    iterations: Annotated[int, typer.Option("--iterations", min=1, help="ALS sweeps.")] = 15,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
) -> None:
    """Train the serving model (ALS + context popularity) and publish it to a model directory."""
    try:
        manifest = train_model_dir(logs, out, TrainConfig(factors=factors, iterations=iterations,
                                                           seed=seed))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
        return
    console.print(f"published model {manifest['version']} to {out} "
                  f"({manifest['n_titles']:,} titles, {manifest['n_members']:,} members, "
                  f"{manifest['n_interactions']:,} plays, {manifest['seconds']:.1f} s)")
