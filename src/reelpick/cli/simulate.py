"""``reelpick simulate``: run a policy in the simulated world and write its logs as Parquet.

Writes ``impressions``, ``outcomes``, ``interactions``, ``titles``, ``members`` and ``artworks``
(``.parquet``) plus ``truth.json`` (the config, the policy's true value per visit and the logged
averages) into ``--out``.

Example: ``reelpick simulate --preset small --policy uniform --visits 2000 --out runs/sim``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reelpick.policies import (
    EpsilonGreedyPolicy,
    PopularPolicy,
    PromotionPolicy,
    SoftmaxPolicy,
    UniformPolicy,
)
from reelpick.world import PRESETS, World, WorldConfig

POLICIES = {
    "uniform": UniformPolicy,
    "popular": PopularPolicy,
    "promotion": PromotionPolicy,
    # by observable popularity: 10% uniform pages / Plackett-Luce at temperature 1 over the 100
    # most popular available titles (exact per-slot propensities, docs/policies.md)
    "epsilon-greedy": EpsilonGreedyPolicy,
    "softmax": SoftmaxPolicy,
}
#: Visits used for the true policy value in truth.json (it costs more per visit than simulating).
TRUTH_VISITS = 2000


def simulate(
    config: Annotated[Path | None, typer.Option(
        "--config", help="World config file (.json or .toml); overrides --preset.",
        exists=True, dir_okay=False)] = None,
    preset: Annotated[str, typer.Option(
        "--preset", help=f"World preset: {', '.join(PRESETS)}.")] = "small",
    policy: Annotated[str, typer.Option(
        "--policy", help=f"Logging policy: {', '.join(POLICIES)}.")] = "uniform",
    visits: Annotated[int, typer.Option("--visits", min=1, help="Visits to simulate.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="World and run seed.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Output folder.", file_okay=False)] = Path(
        "sim"),
) -> None:
    """Simulate visits under a policy; write schema-valid logs and the true policy value."""
    if policy not in POLICIES:
        raise typer.BadParameter(f"unknown policy {policy!r}; choose one of {list(POLICIES)}",
                                 param_hint="--policy")
    try:
        cfg = WorldConfig.from_file(config) if config is not None else WorldConfig.preset(preset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config" if config else "--preset")
    console = Console(stderr=True)
    world = World(cfg, seed=seed)
    pol = POLICIES[policy]()
    with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("visits", total=visits)
        log = world.simulate(pol, visits, progress=lambda k: bar.advance(task, k))
    paths = log.write(out)
    for name, frame in (("titles", world.titles()), ("members", world.members()),
                        ("artworks", world.artworks())):
        paths[name] = out / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), paths[name])
    value = world.policy_value(pol, min(visits, TRUTH_VISITS), seed=seed)
    n_plays = int(log.shown.play.sum()) + int(log.organic_title.size)
    truth = {
        "config": cfg.to_dict(), "seed": seed, "policy": pol.name, "n_visits": visits,
        "n_impressions": log.n_impressions,
        "true_value": value.to_dict(),
        "logged": {
            "plays_per_visit": n_plays / visits,
            "page_plays_per_impression": float(log.shown.play.mean()),
            "watch_seconds_per_visit": float(
                (log.shown.watch_seconds.sum() + log.organic_watch.sum()) / visits),
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    console.print(f"wrote {log.n_impressions:,} impressions from {visits:,} visits to {out} "
                  f"(true plays/visit {value.plays:.4f} ± {value.plays_se:.4f}, {value.method})")
