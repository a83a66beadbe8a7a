"""``reelpick simulate``: run a policy in the simulated world and write its logs as Parquet.

Writes ``impressions``, ``outcomes``, ``interactions``, ``titles``, ``members`` and ``artworks``
(``.parquet``) plus ``truth.json`` (the config, the policy's true value per visit and the logged
averages) into ``--out``.

Example: ``reelpick simulate --preset small --policy uniform --visits 2000 --out runs/sim``

``reelpick simulate-many`` runs several policies in the same world with the same seed (same
visits) and prints their true values; ``--backend ray`` runs one Ray task per policy
(:mod:`reelpick.distributed.simulate`), with the same numbers.
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

from reelpick.cli._common import (
    BACKEND_HELP,
    NUM_WORKERS_HELP,
    RAY_ADDRESS_HELP,
    check_backend_option,
    fail,
    parse_list,
)
from reelpick.policies import (
    EpsilonGreedyPolicy,
    PopularPolicy,
    SoftmaxPolicy,
    UniformPolicy,
)
from reelpick.world import PRESETS, PromotionPolicy, World, WorldConfig

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


def simulate_many(
    policies: Annotated[str, typer.Option(
        "--policies", help=f"Comma-separated policies: {', '.join(POLICIES)}.")]
    = "uniform,popular,epsilon-greedy,softmax",
    config: Annotated[Path | None, typer.Option(
        "--config", help="World config file (.json or .toml); overrides --preset.",
        exists=True, dir_okay=False)] = None,
    preset: Annotated[str, typer.Option(
        "--preset", help=f"World preset: {', '.join(PRESETS)}.")] = "small",
    value_visits: Annotated[int, typer.Option(
        "--value-visits", min=1, help="Visits for each policy's true value.")] = TRUTH_VISITS,
    visits: Annotated[int, typer.Option(
        "--visits", min=0, help="Visits to simulate per policy (0: values only).")] = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="World and run seed.")] = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for each policy's logs (OUT/<policy>) and summary.json.",
        file_okay=False)] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
    num_workers: Annotated[int | None, typer.Option(help=NUM_WORKERS_HELP, min=1)] = None,
) -> None:
    """True values (and optionally logs) of several policies in one world, same visits."""
    from rich.table import Table

    from reelpick.distributed.simulate import simulate_many as run_many

    check_backend_option(backend)
    names = parse_list(policies, what="--policies", allowed=list(POLICIES))
    if len(set(names)) != len(names):
        fail(f"--policies: each policy once, got {names}")
    try:
        cfg = WorldConfig.from_file(config) if config is not None else WorldConfig.preset(preset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config" if config else "--preset")
    world = World(cfg, seed=seed)
    if visits and out is None:
        fail("--visits needs --out (the logs are written to OUT/<policy>)")
    try:
        runs = run_many(world, {n: POLICIES[n]() for n in names}, value_visits=value_visits,
                        simulate_visits=visits or None, seed=seed, out=out, backend=backend,
                        num_workers=num_workers, address=ray_address)
    except (ValueError, ImportError) as exc:
        fail(str(exc))
    table = Table(title=f"true value per visit ({cfg.name} world, seed {seed}, "
                        f"{value_visits:,} visits, backend {backend})")
    for c in ("policy", "plays", "± se", "incremental plays", "watch hours"):
        table.add_column(c, justify="left" if c == "policy" else "right")
    for r in runs:
        v = r.value
        assert v is not None
        table.add_row(r.name, f"{v.plays:.4f}", f"{v.plays_se:.4f}",
                      f"{v.incremental_plays:.4f}", f"{v.watch_seconds / 3600:.3f}")
    Console().print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = {"config": cfg.to_dict(), "seed": seed, "value_visits": value_visits,
                   "simulated_visits": visits, "backend": backend,
                   "policies": [r.summary() for r in runs]}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        Console().print(f"wrote {out / 'summary.json'}")
