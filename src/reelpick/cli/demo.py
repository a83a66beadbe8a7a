"""``reelpick demo``: the main job on the embedded default world (and on MovieLens if present)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from threadpoolctl import threadpool_limits

from reelpick.cli._common import DEFAULT_DATA_ROOT, console, fail
from reelpick.cli.evaluate import records_table
from reelpick.data.loaders import load_dataset
from reelpick.data.schema import SchemaError
from reelpick.evaluation import evaluate_leave_last_out, evaluate_time_cutoff
from reelpick.policies import PopularPolicy, UniformPolicy
from reelpick.world import World, WorldConfig

MODELS = ["popular", "itemknn", "als", "bpr"]


def demo(
    preset: Annotated[str, typer.Option(help="World preset")] = "default",
    visits: Annotated[int, typer.Option(help="Visits to simulate", min=100)] = 30_000,
    seed: Annotated[int, typer.Option(help="World seed", min=0)] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the simulated logs")] = Path(
        "runs/demo"),
    data: Annotated[Path | None, typer.Option(
        help="Also evaluate on this dataset (default: ../shared/data/ml-100k when present)")]
    = None,
) -> None:
    """Simulate the default world, compare policies by their true value, and evaluate the
    baseline recommenders on the logs (time cut-off) and on MovieLens-100K (leave-last-out)."""
    t0 = time.perf_counter()
    try:
        cfg = WorldConfig.preset(preset)
    except ValueError as exc:
        fail(str(exc))
    world = World(cfg, seed=seed)
    console.rule(f"[bold]The simulated world: preset '{preset}', seed {seed}")
    console.print(f"{cfg.n_members:,} members, {cfg.n_titles:,} titles, pages of "
                  f"{cfg.n_slots} slots")
    with Progress(TextColumn("[bold]simulating uniform exploration"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("visits", total=visits)
        log = world.simulate(UniformPolicy(), visits, seed=seed,
                             progress=lambda k: bar.advance(task, k))
    paths = log.write(out)
    console.print(f"logged {log.n_impressions:,} impressions with exact propensities -> "
                  f"{paths['impressions'].parent}")

    table = Table(title="True value per visit (exact, 1,000 visits)")
    for col in ("policy", "plays", "incremental plays", "watch minutes"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for policy in (UniformPolicy(), PopularPolicy()):
        v = world.policy_value(policy, 1000, seed=seed)
        table.add_row(policy.name, f"{v.plays:.3f} ± {v.plays_se:.3f}",
                      f"{v.incremental_plays:.3f} ± {v.incremental_plays_se:.3f}",
                      f"{v.watch_seconds / 60:.1f}")
    console.print(table)

    console.rule("[bold]Recommenders trained on the exploration logs (time cut-off 0.8)")
    params = {m: {"num_threads": 1} for m in MODELS if m != "popular"}
    with threadpool_limits(1):
        records = evaluate_time_cutoff(log.interactions(), MODELS, params=params)
    console.print(records_table(records, [10, 20]))

    path = data if data is not None else DEFAULT_DATA_ROOT / "ml-100k"
    if path.exists():
        console.rule(f"[bold]MovieLens-100K ({path}): leave-last-out")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                dataset = load_dataset(path)
        except (FileNotFoundError, SchemaError, ValueError) as exc:
            fail(str(exc))
        with threadpool_limits(1):
            records = evaluate_leave_last_out(dataset.interactions, MODELS, params=params,
                                              catalogue=dataset.title_vocab().to_list())
        console.print(records_table(records, [10, 20]))
    elif data is not None:
        fail(f"no data at {path}")
    else:
        console.print(f"(MovieLens-100K not found at {path}; pass --data DIR to add it)")
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
