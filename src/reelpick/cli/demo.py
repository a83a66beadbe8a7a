"""``reelpick demo``: the closed loop on the embedded world, its report, then the service.

Runs :func:`reelpick.loop.run_loop` (``--quick``: the small world, under a minute; its
page-policy candidates are saved in ``OUT/candidates``), writes ``OUT/report.html`` and
``OUT/results.json`` (the report is a pure function of it), prints the release-day agreement
of each offline estimator with the candidates' true values (:func:`release_day_agreement`,
also ``OUT/release_day.json``), estimates the last release's candidates on the last logged
day and publishes the loop's A/B winner (the functions behind ``reelpick ope --candidates``
and ``reelpick promote``: :func:`ship_from_logs`) into ``OUT/model`` and, unless
``--no-serve``, serves that page policy directory (the function behind ``reelpick serve``)
until Ctrl-C.

Example: ``reelpick demo --quick --no-serve --out runs/demo-quick``
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
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
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the page policy "
                                        "shipped from the loop's logs at the end.")] = True,
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
        results = run_loop(cfg, RichProgress(bar), logs_out=out / "logs",
                           policies_out=out / "candidates")
        task = bar.add_task("writing the report", total=1)
        report = write_report(results, out)
        bar.advance(task)
    for rel in results["releases"]:
        d = rel["ab"]["difference"]
        console.print(f"release after day {rel['day'] + 1}: offline top "
                      f"{[a['name'] for a in rel['ab']['arms']]}, A/B winner "
                      f"[bold]{rel['shipped']}[/bold] (+{d['value']:.3f} plays/visit, "
                      f"95% CI [{d['lo']:.3f}, {d['hi']:.3f}])")
    agreement = release_day_agreement(results)
    for a in agreement:
        console.print(f"release after day {a['day'] + 1}, {a['estimator']} vs true value: "
                      f"Spearman {_fmt(a['spearman'])}, coverage {_fmt(a['coverage'])}; "
                      f"{a['verdict']}")
    (out / "release_day.json").write_text(json.dumps(agreement, indent=1))
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
    console.print(f"report: {report.resolve()}")
    console.print(f"results: {(out / 'results.json').resolve()}")
    shipped = ship_from_logs(out, results)
    if not serve:
        return
    from reelpick.cli.serve import serve as serve_command

    console.print(f"home page: http://127.0.0.1:{port}/ (the URL with its key follows; "
                  "Ctrl-C to stop)")
    serve_command(model_dir=shipped, data_dir=out / "data", host="127.0.0.1", port=port,
                  log_level="warning")


#: the loop's offline estimators (release records) and the true value each one estimates
RELEASE_ESTIMATORS: dict[str, str] = {"dr": "plays", "sndr": "plays", "snips": "plays",
                                      "replay": "plays", "slot_dr": "page_plays",
                                      "pbm_dr": "page_plays", "pbm_snips": "page_plays",
                                      "pbm_plays": "plays"}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def release_day_agreement(results: dict[str, Any]) -> list[dict[str, Any]]:
    """For every release of :func:`reelpick.loop.run_loop`'s ``results`` and every offline
    estimator of :data:`RELEASE_ESTIMATORS`: :func:`reelpick.ope.pages.rank_agreement` of the
    candidates' offline estimates with their true values (the Spearman against the world's
    value of each candidate on fresh visits of the next day, what the A/B test samples;
    coverage and bias against the estimand, the truth on the same logged visits), and
    whether the candidates can be told apart at all (true gaps against interval widths)."""
    from reelpick.ope.pages import rank_agreement

    out = []
    for rel in results["releases"]:
        cands = rel["candidates"]
        for est, measure in RELEASE_ESTIMATORS.items():
            if not all(est in c["offline"] for c in cands):
                continue
            offline = [c["offline"][est] for c in cands]
            fresh = rank_agreement(offline, [c["online"][measure]["value"] for c in cands])
            same = rank_agreement(offline, [c["offline"]["truth_logged"][measure]["value"]
                                            for c in cands])
            out.append({"day": rel["day"], "estimator": est, "measure": measure,
                        "candidates": [c["name"] for c in cands],
                        "spearman": fresh["spearman"], "apart_pairs": fresh["apart_pairs"],
                        "apart_concordant": fresh["apart_concordant"],
                        "verdict": fresh["verdict"], "coverage": same["coverage"],
                        "bias": same["bias"], "spearman_same_visits": same["spearman"],
                        "ab_winner": rel["ab"]["winner"]})
    return out


def ship_from_logs(out: Path, results: dict[str, Any]) -> Path:
    """Publish the closed loop's A/B winner into ``OUT/model`` with the commands' own pieces.

    The loop's page-policy candidates (``OUT/candidates/release-<n>/<name>``: trained by
    :func:`reelpick.page.train_page_policies` on the production logs before the release, the
    directories ``reelpick train --policy page`` writes, A/B-tested in the world) of the last
    release are estimated on the last logged day (``reelpick ope --candidates``, the
    release-day report, with the promotion rule's verdict) and the last release's A/B winner
    is published (``reelpick promote``'s :func:`~reelpick.serve.model_dir.publish_policy`).
    When that winner is no page policy (``popular``, ``uplift``: nothing the service serves),
    the page policy with the best offline estimate is published as the first version and the
    manifest says so (``promotion.bootstrap``). Returns the model directory."""
    from reelpick.cli.page import evaluate, read_page_logs, report_table, window
    from reelpick.page.evaluate import promotion_decision
    from reelpick.serve.model_dir import publish_policy

    model_dir = out / "model"
    records = json.loads((out / "candidates" / "candidates.json").read_text())
    if not records:
        fail("the loop trained no page policy (add 'ranker' to its candidates)")
    release = max(r["release"] for r in records)
    records = [r for r in records if r["release"] == release]
    rel = next(r for r in results["releases"] if r["day"] == release)
    day = 86_400
    tables = read_page_logs(out / "logs")
    last = int(tables["impressions"]["timestamp"].max()) // day * day
    report = evaluate(window(tables, since=last), [Path(r["path"]) for r in records])
    console.print(report_table(report))
    # all plays per visit (the A/B measure) when the logs hold the organic plays, else page plays
    est = "pbm_plays" if report.get("baseline_plays") is not None else "pbm_dr"
    baseline = report["baseline_plays"] if est == "pbm_plays" else report["baseline"]
    decision = promotion_decision(report["candidates"], baseline, estimator=est)
    console.print(f"the promotion rule on the last day's logs ({est}): {decision.reason}")
    shipped = next((r for r in records if r["shipped"]), None)
    by_name = {r["name"]: r for r in report["candidates"]}
    if shipped is None:
        shipped = max(records, key=lambda r: np.nan_to_num(
            by_name[r["name"]][est]["value"], nan=-np.inf))
    ab = rel["ab"]
    bootstrap = ab["winner"] != shipped["name"]
    manifest = publish_policy(model_dir, shipped["path"], extra={"promotion": {
        "rule": "closed-loop A/B test", "release_day": release, "winner": shipped["name"],
        "ab": ab, "bootstrap": bootstrap, "ope": decision.to_dict(), "estimator": est,
        "estimate": by_name[shipped["name"]][est], "baseline": baseline}})
    how = (f"promoted: the A/B winner of the release after day {release + 1}" if not bootstrap
           else f"first version (bootstrap: the A/B winner {ab['winner']} is no page policy; "
                "the best page policy offline)")
    console.print(f"shipped {shipped['name']} {manifest['version']} -> {model_dir} ({how})")
    return model_dir
