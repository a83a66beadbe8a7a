"""``reelpick demo``: the closed loop on the embedded world, its report, then the service.

Runs :func:`reelpick.loop.run_loop` (``--quick``: the small world, under a minute), writes
``OUT/report.html`` and ``OUT/results.json`` (the report is a pure function of it), and unless
``--no-serve`` trains the service's model directory from the loop's production logs (the library
function behind ``reelpick train``) and serves it (the function behind ``reelpick serve``) until
Ctrl-C.

Example: ``reelpick demo --quick --no-serve --out runs/demo-quick``
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from threadpoolctl import threadpool_limits

from reelpick.cli._common import console, fail


class RichProgress:
    """:class:`reelpick.loop.progress.Progress` as rich progress bars."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar

    def task(self, description: str, total: int) -> _RichTask:
        return _RichTask(self.bar, description, total)

    def log(self, message: str) -> None:
        self.bar.console.print(message)


class _RichTask:
    def __init__(self, bar: Progress, description: str, total: int) -> None:
        self.bar, self.description, self.total = bar, description, total
        self.started = 0.0

    def __enter__(self) -> _RichTask:
        self.id = self.bar.add_task(self.description, total=self.total)
        self.started = time.perf_counter()
        return self

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.id, n)

    def __exit__(self, *exc: object) -> None:
        self.bar.remove_task(self.id)
        self.bar.console.print(f"[dim]{self.description}: "
                               f"{time.perf_counter() - self.started:.1f} s[/dim]")


def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Small world, few days (< 1 min).")]
    = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the report, results and logs",
                                      file_okay=False)] = Path("runs/demo"),
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Train the service on the "
                                        "loop's logs and serve it at the end.")] = True,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the world and loop")] = 0,
    days: Annotated[int | None, typer.Option("--days", min=2, help="Override the days")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
) -> None:
    """Run the closed loop (serve with exploration → log → retrain → evaluate offline → A/B →
    ship → repeat), write the HTML report, then start the service."""
    from reelpick.loop import LoopConfig, run_loop
    from reelpick.report import write_report

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    changes = {"seed": seed, **({"days": days} if days is not None else {})}
    try:
        cfg = LoopConfig.quick(**changes) if quick else LoopConfig.full(**changes)
    except ValueError as exc:
        fail(str(exc))
        return
    w = cfg.world_config()
    console.rule(f"[bold]reelpick closed loop: world '{cfg.preset}', {cfg.days} days")
    console.print(f"{w.n_members:,} members, {w.n_titles:,} titles, pages of {w.n_slots} "
                  f"slots; {cfg.visits_per_day:,} visits per day per arm, uniform exploration "
                  f"ε = {cfg.epsilon} (production: + {cfg.pool_epsilon} over the candidate "
                  f"pool), releases after days {[d + 1 for d in cfg.releases]}")
    t0 = time.perf_counter()
    with threadpool_limits(1), Progress(TextColumn("{task.description}"), BarColumn(),
                                        MofNCompleteColumn(), TimeElapsedColumn(),
                                        console=console, transient=True) as bar:
        results = run_loop(cfg, RichProgress(bar), logs_out=out / "logs")
        task = bar.add_task("writing the report", total=1)
        report = write_report(results, out)
        bar.advance(task)
    for rel in results["releases"]:
        d = rel["ab"]["difference"]
        console.print(f"release after day {rel['day'] + 1}: offline top "
                      f"{[a['name'] for a in rel['ab']['arms']]}, A/B winner "
                      f"[bold]{rel['shipped']}[/bold] (+{d['value']:.3f} plays/visit, "
                      f"95% CI [{d['lo']:.3f}, {d['hi']:.3f}])")
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
    console.print(f"report: {report.resolve()}")
    console.print(f"results: {(out / 'results.json').resolve()}")
    if not serve:
        return
    from reelpick.cli.serve import serve as serve_command
    from reelpick.serve.model_dir import TrainConfig, train_model_dir

    manifest = train_model_dir(out / "logs", out / "model", TrainConfig(seed=seed))
    console.print(f"trained the service's model {manifest['version']} on the loop's logs -> "
                  f"{out / 'model'}")
    console.print(f"home page: http://127.0.0.1:{port}/ (the URL with its key follows; "
                  "Ctrl-C to stop)")
    serve_command(model_dir=out / "model", data_dir=out / "data", host="127.0.0.1", port=port,
                  log_level="warning")
