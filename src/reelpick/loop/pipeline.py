"""The closed loop, day by day (see ``docs/demo.md``).

Four arms serve the same visits of one simulated world (common random numbers), each with its
own member state:

* ``production`` — the pipeline: serve the shipped policy with an epsilon-uniform exploration
  bucket, log impressions and plays with exact propensities; at every release retrain the
  candidates (sources, ranker, uplift; artwork bandit when :mod:`reelpick.artwork` is
  installed), evaluate them offline on the newest day's logs (replay on the uniform share,
  SNIPS, DR with CIs), measure each one's true value on fresh visits of the next day, A/B test
  the best offline candidates on split fresh traffic, ship the A/B winner;
* ``greedy`` — a purely correlational recommender (plays per segment and title,
  :class:`~reelpick.loop.policies.PlayCountScorer`) retrained every day on its own logs, never
  exploring: the feedback loop;
* ``explore`` — the same learner with the exploration bucket;
* ``uplift`` — pages ranked by estimated uplift, learnt every day from its own exploration
  bucket.

:func:`run_loop` returns a JSON-able results object; the report (:mod:`reelpick.report`) is a
pure function of it.

Example
-------
>>> from reelpick.loop import LoopConfig, run_loop
>>> res = run_loop(LoopConfig.quick(days=3, release_every=1, visits_per_day=200, ab_visits=100,
...                                 candidates=("popular", "uplift"), artwork=False))
>>> [r["day"] for r in res["releases"]], res["releases"][0]["shipped"] in ("popular", "uplift")
([1], True)
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

from reelpick.causal import SegmentUpliftModel, UpliftPolicy
from reelpick.loop.candidates import Candidate, explore_logs, seq_available, train_candidates
from reelpick.loop.config import LoopConfig
from reelpick.loop.evaluation import ab_test, mean_ci, naive_hit_rate, offline_estimates
from reelpick.loop.policies import ExploringPolicy, PlayCountScorer
from reelpick.loop.progress import NullProgress, Progress
from reelpick.loop.simulator import (
    DayLog,
    DaySimulator,
    concat_logs,
    draw_day_visits,
    page_truth,
    truth_of_log,
)
from reelpick.policies import GreedyPolicy, PopularityScorer
from reelpick.ranking import Requests
from reelpick.world import SimulationLog, World

DAY = 86_400
ARMS = ("greedy", "explore", "uplift", "production")
RESULTS_FORMAT = 1


def artwork_available() -> bool:
    return importlib.util.find_spec("reelpick.artwork") is not None


class _Arm:
    def __init__(self, name: str, sim: DaySimulator) -> None:
        self.name, self.sim = name, sim
        self.policy: Any = None
        self.days: list[DayLog] = []
        self.log: SimulationLog | None = None
        self.explored: np.ndarray = np.zeros(0, bool)

    def add(self, day: DayLog) -> None:
        self.days.append(day)
        self.log = day.log if self.log is None else concat_logs([self.log, day.log])
        self.explored = np.concatenate([self.explored, day.explored])


def day_metrics(world: World, day: DayLog) -> dict[str, float]:
    """Coverage, diversity and the true value of one arm's day."""
    log = day.log
    s = log.shown
    n_avail = int(world.dynamics.available(day.day).any(axis=0).sum())
    played = np.concatenate([s.title[s.play > 0], log.organic_title])
    counts = np.bincount(played, minlength=world.config.n_titles).astype(float)
    p = counts[counts > 0] / max(counts.sum(), 1)
    truth = truth_of_log(world, log)
    realised = (np.bincount(s.visit, weights=s.play, minlength=log.n_visits)
                + np.bincount(log.organic_visit, minlength=log.n_visits))
    top = np.sort(counts)[::-1]
    return {
        "visits": int(log.n_visits),
        "coverage_shown": len(np.unique(s.title)) / n_avail,
        "coverage_played": int((counts > 0).sum()) / n_avail,
        "effective_titles_played": float(np.exp(-(p * np.log(p)).sum())) if p.size else 0.0,
        "top10_share": float(top[:10].sum() / max(counts.sum(), 1)),
        "plays": float(truth["plays"].mean()),
        "incremental": float(truth["incremental"].mean()),
        "incremental_se": float(truth["incremental"].std(ddof=1) / np.sqrt(log.n_visits)),
        "page_plays": float(truth["page_plays"].mean()),
        "realised_plays": float(realised.mean()),
        "explore_share": float(day.explored.mean()),
    }


def _reward_model(cands: list[Candidate], train: SimulationLog, S: int):
    """q(visits batch, pairs) from the ``ranker`` candidate (trained on older days), else the
    per-slot play rate of the training logs."""
    comp = next((c.composer for c in cands if c.name == "ranker" and c.composer), None)
    if comp is None:
        comp = next((c.composer for c in cands if c.composer is not None), None)
    s = train.shown
    rate = np.bincount(s.slot, weights=s.play, minlength=S) / np.maximum(
        np.bincount(s.slot, minlength=S), 1)

    def q(vb, r: np.ndarray, t: np.ndarray, row: np.ndarray, pos: np.ndarray,
          slot: np.ndarray) -> np.ndarray:
        if comp is None:
            return rate[slot]
        req = Requests.from_visits(vb)
        scores = comp.source_scores(req)
        X = comp.features.build(req, r, t, scores, row=row, position=pos)
        return comp.ranker.predict(X)

    return q, ("ranker" if comp is not None else "slot play rate")


def _release(cfg: LoopConfig, world: World, prod: _Arm, day: int, progress: Progress,
             timings: dict[str, float]) -> tuple[dict[str, Any], Any]:
    wc = world.config
    S = wc.n_slots
    assert prod.log is not None
    n_before = sum(d.log.n_visits for d in prod.days[:-1])
    train = concat_logs([d.log for d in prod.days[:-1]])
    explored_train = prod.explored[:n_before]
    today = prod.days[-1]
    c2 = wc.start + day * DAY
    c1 = wc.start + (day // 2) * DAY
    names = [c for c in cfg.candidates if c != "ranker+seq" or seq_available()]
    t0 = time.perf_counter()
    with progress.task(f"release after day {day}: training candidates", len(names)) as task:
        cands = train_candidates(world, train, explored_train, names, c1=c1, c2=c2,
                                 trees=cfg.ranker_trees, train_rows=cfg.train_rows,
                                 seed=cfg.seed + day, on_done=lambda _n: task.advance())
    timings["train"] = timings.get("train", 0.0) + time.perf_counter() - t0

    # ---------------- offline, on (a sample of) today's logged visits
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, 21, day])
    n_today = today.log.n_visits
    k = n_today if cfg.ope_visits is None else min(cfg.ope_visits, n_today)
    eval_idx = np.sort(rng.choice(n_today, k, replace=False))
    v = today.log.visits
    sub = {f: getattr(v, f)[eval_idx] for f in ("member", "timestamp", "device", "country",
                                                "hour", "day_of_week", "cell", "mood")}
    batches = [vb for _, vb in world.batches(sub)]
    avail = np.concatenate([vb.n_available() for vb in batches]).astype(float)
    q, q_name = _reward_model(cands, train, S)
    sh = today.log.shown
    pos = np.full(n_today, -1)
    pos[eval_idx] = np.arange(k)
    rounds = np.flatnonzero(pos[sh.visit] >= 0)
    lr = pos[sh.visit[rounds]]
    bounds = np.cumsum([0] + [len(vb) for vb in batches])

    def q_at(titles: np.ndarray) -> np.ndarray:
        out = np.zeros(rounds.size)
        for b, vb in enumerate(batches):
            sel = np.flatnonzero((lr >= bounds[b]) & (lr < bounds[b + 1]))
            if sel.size:
                rr = rounds[sel]
                t = titles[sel]
                ok = t >= 0
                val = np.zeros(sel.size)
                if ok.any():
                    val[ok] = q(vb, lr[sel][ok] - bounds[b], t[ok], sh.row_index[rr][ok],
                                sh.position[rr][ok], sh.slot[rr][ok])
                out[sel] = val
        return out

    q_logged = q_at(sh.title[rounds])
    offline: dict[str, dict[str, Any]] = {}
    pages_of: dict[str, np.ndarray] = {}
    with progress.task(f"release after day {day}: offline evaluation", len(cands)) as task:
        for c in cands:
            prng = np.random.default_rng([cfg.seed, 22, day])
            pages = np.concatenate([c.policy.choose(vb, prng).titles for vb in batches])
            pages_of[c.name] = pages
            q_t = q_at(pages[lr, sh.slot[rounds]])
            est = offline_estimates(today.log, eval_idx, today.explored, pages, q_logged, q_t,
                                    avail, cfg.epsilon)
            est["naive_hit_rate"] = naive_hit_rate(today.log, eval_idx, pages)
            offline[c.name] = est
            task.advance()
    timings["offline"] = timings.get("offline", 0.0) + time.perf_counter() - t0

    # ---------------- online: truth on fresh visits of the next day, then the A/B test
    t0 = time.perf_counter()
    frng = np.random.default_rng([cfg.seed, 41, day])
    fresh = draw_day_visits(world, day + 1, cfg.ab_visits * cfg.ab_arms, frng)
    first = {kk: a[: cfg.ab_visits] for kk, a in fresh.items()}
    tb = [vb for _, vb in world.batches(first)]
    state = prod.sim.state
    online: dict[str, dict[str, Any]] = {}
    per_visit: dict[str, np.ndarray] = {}
    with progress.task(f"release after day {day}: true value on fresh visits",
                       len(cands)) as task:
        for c in cands:
            tr = page_truth(world, c.policy, tb, state, np.random.default_rng([cfg.seed, 23]))
            per_visit[c.name] = tr.plays
            online[c.name] = {"plays": mean_ci(tr.plays), "page_plays": mean_ci(tr.page_plays),
                              "incremental": mean_ci(tr.incremental)}
            task.advance()
    ranked = sorted(cands, key=lambda c: -offline[c.name]["dr"]["value"])
    finalists = ranked[: cfg.ab_arms]
    with progress.task(f"release after day {day}: A/B test", len(finalists)) as task:
        ab = ab_test(world, [(c.name, c.policy) for c in finalists], [], fresh, state,
                     cfg.seed + day, on_arm=lambda _n: task.advance())
    timings["online"] = timings.get("online", 0.0) + time.perf_counter() - t0

    lifts: dict[str, Any] = {}
    for key, a, b in (("context", "ranker", "ranker-no-context"), ("seq", "ranker+seq", "ranker"),
                      ("uplift_vs_by_play", "uplift", "by-play")):
        if a in per_visit and b in per_visit:
            lifts[key] = {"a": a, "b": b, **mean_ci(per_visit[a] - per_visit[b])}
    winner = next(c for c in cands if c.name == ab["winner"])
    if cfg.artwork and artwork_available():
        t0 = time.perf_counter()
        lifts["artwork"] = _artwork_lift(cfg, world, train, winner, tb, state, day, progress)
        timings["artwork"] = timings.get("artwork", 0.0) + time.perf_counter() - t0
    rel = {
        "day": day, "train_days": day, "eval_day": day, "reward_model": q_name,
        "ope_visits": int(k), "candidates": [
            {"name": c.name, "train_seconds": c.seconds, "offline": offline[c.name],
             "online": online[c.name], **({"info": c.info} if c.info else {})}
            for c in cands],
        "ab": ab, "shipped": winner.name, "lifts": lifts,
        "shipped_before": getattr(prod.policy.base, "name", None) if prod.policy else None,
    }
    return rel, winner.policy


def _artwork_lift(cfg: LoopConfig, world: World, train: SimulationLog, winner: Candidate,
                  batches, state, day: int, progress: Progress) -> dict[str, Any]:
    from reelpick.artwork import ArtworkCatalog, ArtworkRows, ThompsonArtwork, WithArtwork

    with progress.task(f"release after day {day}: artwork bandit", 2) as task:
        cat = ArtworkCatalog.from_world(world)
        rows = ArtworkRows.from_log(train, cat.art_offset)
        if len(rows) > cfg.artwork_rows:
            idx = np.sort(np.random.default_rng([cfg.seed, 51, day]).choice(
                len(rows), cfg.artwork_rows, replace=False))
            rows = rows.take(idx)
        bandit = ThompsonArtwork(cat, world.config.n_members).fit(rows)
        task.advance()
        rng = np.random.default_rng([cfg.seed, 52, day])
        with_art = page_truth(world, WithArtwork(winner.policy, bandit), batches, state, rng,
                              artwork="page")
        base = page_truth(world, winner.policy, batches, state, rng)
        task.advance()
    return {"a": f"{winner.name}+artwork bandit", "b": f"{winner.name}, random images",
            "rows": int(len(rows)), **mean_ci(with_art.plays - base.plays)}


def write_logs(world: World, arm: _Arm, out: str | Path) -> Path:
    """Write one arm's logs as Parquet tables (see :func:`run_loop`)."""
    out = Path(out)
    assert arm.log is not None
    arm.log.write(out)
    imp = arm.log.impressions()
    imp["explored"] = arm.explored[np.asarray(imp["page_id"].str[1:].astype(np.int64))]
    imp.to_parquet(out / "impressions.parquet", index=False)
    for name, table in (("titles", world.titles()), ("members", world.members()),
                        ("artworks", world.artworks())):
        table.to_parquet(out / f"{name}.parquet", index=False)
    return out


def run_loop(config: LoopConfig, progress: Progress | None = None, *,
             logs_out: str | Path | None = None) -> dict[str, Any]:
    """Run the closed loop (module docstring) and return the results object.

    ``logs_out``: also write the production arm's logs there (``impressions`` with an
    ``explored`` column, ``outcomes``, ``interactions``, ``titles``, ``members``, ``artworks``
    as Parquet, schema-valid) — what ``reelpick train`` reads."""
    if not isinstance(config, LoopConfig):
        raise TypeError(f"config: expected a LoopConfig, got {type(config).__name__}")
    progress = progress or NullProgress()
    t_start = time.perf_counter()
    cfg = config
    world = World(cfg.world_config(), seed=cfg.seed)
    wc = world.config
    arms = {a: _Arm(a, DaySimulator(world, visits_per_day=cfg.visits_per_day, days=cfg.days,
                                    seed=cfg.seed)) for a in ARMS}
    genre = world.entities.genre_onehot
    greedy_scorer, explore_scorer = PlayCountScorer(), PlayCountScorer()
    popular = GreedyPolicy(PopularityScorer(), name="popular")
    arms["greedy"].policy = GreedyPolicy(greedy_scorer, name="greedy-by-plays")
    arms["explore"].policy = ExploringPolicy(GreedyPolicy(explore_scorer, name="by-plays"),
                                             cfg.epsilon)
    arms["uplift"].policy = ExploringPolicy(popular, cfg.epsilon)
    arms["production"].policy = ExploringPolicy(popular, cfg.epsilon)
    daily: list[dict[str, Any]] = []
    releases: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    shipped = "popular"
    for day in range(cfg.days):
        t0 = time.perf_counter()
        with progress.task(f"day {day + 1}/{cfg.days}: serving {len(ARMS)} arms",
                           len(ARMS)) as task:
            for name, arm in arms.items():
                dl = arm.sim.run_day(arm.policy, day)
                arm.add(dl)
                daily.append({"arm": name, "day": day,
                              "policy": shipped if name == "production" else name,
                              **day_metrics(world, dl)})
                task.advance()
        timings["serve"] = timings.get("serve", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        # the cheap arms learn every day from their own logs
        greedy_scorer.fit(arms["greedy"].log, genre, wc.n_members)
        explore_scorer.fit(arms["explore"].log, genre, wc.n_members)
        up = arms["uplift"]
        if up.explored.any():
            model = SegmentUpliftModel(by_device=True).fit(
                explore_logs(up.log, up.explored, world.titles()))
            up.policy = ExploringPolicy(UpliftPolicy.for_world(model, world), cfg.epsilon)
        timings["learn_arms"] = timings.get("learn_arms", 0.0) + time.perf_counter() - t0
        if day in cfg.releases:
            rel, winner = _release(cfg, world, arms["production"], day, progress, timings)
            releases.append(rel)
            shipped = rel["shipped"]
            arms["production"].policy = ExploringPolicy(winner, cfg.epsilon)
            progress.log(f"release after day {day}: A/B winner {shipped} shipped")
    if logs_out is not None:
        write_logs(world, arms["production"], logs_out)
    timings["total"] = time.perf_counter() - t_start
    return {
        "format": RESULTS_FORMAT,
        "config": cfg.to_dict(),
        "world": {"preset": cfg.preset, "n_members": wc.n_members, "n_titles": wc.n_titles,
                  "n_slots": wc.n_slots, "page": [wc.page_rows, wc.page_positions],
                  "countries": list(wc.countries), "world_days": wc.days},
        "available": {"seq": seq_available(), "artwork": artwork_available()},
        "arms": list(ARMS),
        "daily": daily,
        "releases": releases,
        "timings": timings,
    }
