"""The closed loop, day by day (see ``docs/demo.md``).

Four arms serve the same visits of one simulated world (common random numbers), each with its
own member state:

* ``production`` — the pipeline: serve the shipped policy with a uniform exploration bucket and
  a candidate-pool bucket (:class:`~reelpick.loop.policies.PoolExploringPolicy`: the page of a
  uniformly drawn candidate of the next release), log impressions and plays with exact
  propensities; the day before a release train the candidates (page policies:
  :func:`reelpick.page.train_page_policies` on the logged tables, saved as directories; uplift
  models) so that they explore on the release day; at the release evaluate them offline on that
  day's logs (:mod:`reelpick.ope.pages`: replay on the pool share, SNIPS, DR, SNDR on all plays
  per visit; per-slot DR on page plays; clustered CIs; each compared with the world's truth on
  the same logged visits), measure each one's true value on fresh visits of the next day, A/B
  test the best offline candidates on split fresh traffic, ship the A/B winner (a page policy's
  saved directory when it is one: what ``reelpick demo`` publishes and serves; artwork bandit
  lift when :mod:`reelpick.artwork` is installed);
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

import contextlib
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from reelpick.causal import SegmentUpliftModel, UpliftPolicy
from reelpick.decision import PageBatch
from reelpick.loop.candidates import (
    Candidate,
    ComposedPages,
    explore_logs,
    seq_available,
    train_candidates,
    write_candidates_json,
)
from reelpick.loop.config import LoopConfig
from reelpick.loop.evaluation import ab_test, mean_ci, naive_hit_rate
from reelpick.loop.policies import ExploringPolicy, PlayCountScorer, PoolExploringPolicy
from reelpick.loop.progress import NullProgress, Progress
from reelpick.loop.simulator import (
    DayLog,
    DaySimulator,
    concat_logs,
    draw_day_visits,
    page_truth,
    truth_of_log,
)
from reelpick.ope.pages import (
    PageMarginals,
    examination_curve,
    examination_net_of_organic,
    position_based,
    slot_match,
    whole_page,
)
from reelpick.policies import GreedyPolicy, PopularityScorer
from reelpick.ranking import Requests
from reelpick.world import SimulationLog, VisitBatch, World

DAY = 86_400
ARMS = ("greedy", "explore", "uplift", "production")
RESULTS_FORMAT = 2


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
        "pool_share": float(day.pooled.mean()),
    }


def _reward_model(cands: list[Candidate], train: SimulationLog, S: int):
    """q(visits batch, pairs) from the ``ranker`` page policy's ranker (trained on older days),
    else the per-slot play rate of the training logs."""
    pages = [c for c in cands if isinstance(c.policy, ComposedPages) and c.page is not None]
    best = next((c for c in pages if c.name == "ranker"), pages[0] if pages else None)
    comp = best.page.composer if best is not None and best.page is not None else None
    bound = best.policy.bound if best is not None and isinstance(best.policy,
                                                                 ComposedPages) else None
    s = train.shown
    rate = np.bincount(s.slot, weights=s.play, minlength=S) / np.maximum(
        np.bincount(s.slot, minlength=S), 1)

    def q(vb, r: np.ndarray, t: np.ndarray, row: np.ndarray, pos: np.ndarray,
          slot: np.ndarray) -> np.ndarray:
        if comp is None or bound is None:
            return rate[slot]
        req = Requests.from_visits(bound.map_visits(vb))  # the policy's member indices
        scores = comp.source_scores(req)
        X = comp.features.build(req, r, t, scores, row=row, position=pos)
        return comp.ranker.predict(X)

    return q, ("ranker" if comp is not None else "slot play rate")


def _train(cfg: LoopConfig, world: World, prod: _Arm, day: int, progress: Progress,
           timings: dict[str, float], out: Path) -> list[Candidate]:
    """Train the candidates of the release after ``day`` on the logs of days ``0..day-1``
    (called at the end of day ``day - 1``: on day ``day`` they form the exploration pool);
    page policies are saved in ``out/release-<day + 1>/<name>``."""
    assert prod.log is not None
    names = [c for c in cfg.candidates if c != "ranker+seq" or seq_available()]
    t0 = time.perf_counter()
    with progress.task(f"release after day {day + 1}: training candidates", len(names)) as task:
        cands = train_candidates(world, prod.log, prod.explored, names,
                                 out=out / f"release-{day + 1}", trees=cfg.ranker_trees,
                                 train_rows=cfg.train_rows, seed=cfg.seed + day,
                                 epsilon=cfg.epsilon, artwork=cfg.artwork,
                                 on_done=lambda _n: task.advance())
    timings["train"] = timings.get("train", 0.0) + time.perf_counter() - t0
    return cands


class _Fixed:
    """Replays given pages ``(n, S)`` batch after batch (``bounds``: batch offsets)."""

    name, version = "fixed", "v0"

    def __init__(self, titles: np.ndarray, bounds: np.ndarray) -> None:
        self.titles, self.bounds, self.i = titles, bounds, 0

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        t = self.titles[self.bounds[self.i]:self.bounds[self.i + 1]]
        self.i += 1
        return PageBatch.grid(t, n_rows=visits.n_rows, n_positions=visits.n_positions,
                              propensity=np.ones(t.shape))


def _dense(log: SimulationLog, S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logged pages ``(n, S)`` (titles, -1 empty), slot plays ``(n, S)`` and all plays per
    visit ``(n,)`` (page and organic)."""
    s = log.shown
    n = log.n_visits
    titles = np.full((n, S), -1, dtype=np.int64)
    plays = np.zeros((n, S))
    titles[s.visit, s.slot] = s.title
    plays[s.visit, s.slot] = s.play
    total = (np.bincount(s.visit, weights=s.play, minlength=n)
             + np.bincount(log.organic_visit, minlength=n))
    return titles, plays, total


def _release(cfg: LoopConfig, world: World, prod: _Arm, day: int, cands: list[Candidate],
             state0: Any, progress: Progress, timings: dict[str, float]
             ) -> tuple[dict[str, Any], Any]:
    wc = world.config
    S = wc.n_slots
    assert prod.log is not None
    train = concat_logs([d.log for d in prod.days[:-1]])
    today = prod.days[-1]
    logger: PoolExploringPolicy = prod.policy
    rec = today.records
    assert rec is not None and rec["pool"].shape[1] == len(cands), "pool != candidates"

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
    bounds = np.cumsum([0] + [len(vb) for vb in batches])
    q, q_name = _reward_model(cands, train, S)
    logged, plays, total = (a[eval_idx] for a in _dense(today.log, S))
    base, pool = rec["base"][eval_idx], rec["pool"][eval_idx]
    avail = rec["available"][eval_idx]
    pooled = rec["pick"][eval_idx] >= 0
    grid = np.arange(S)
    # off-page organic plays per visit (training days): the constant of the page-level model
    c_hat = len(train.organic_visit) / max(train.n_visits, 1)

    def q_dense(titles: np.ndarray) -> np.ndarray:
        out = np.zeros(titles.shape)
        for b, vb in enumerate(batches):
            blk = titles[bounds[b]:bounds[b + 1]]
            i, sl = np.nonzero(blk >= 0)
            if i.size:
                out[bounds[b] + i, sl] = q(vb, i, blk[i, sl], grid[sl] // wc.page_positions,
                                           grid[sl] % wc.page_positions, sl)
        return out

    offline: dict[str, dict[str, Any]] = {}
    K = pool.shape[1]
    # page-level position-based estimates (slot plays): the logger's exact marginals on every
    # visit (base + pool + uniform), the examination from the uniform pages of these visits
    sh = today.log.shown
    pos_eval = np.full(n_today, -1)
    pos_eval[eval_idx] = np.arange(eval_idx.size)
    ex_imp = today.explored[sh.visit] & (pos_eval[sh.visit] >= 0)
    e_hat = examination_curve(sh.row_index[ex_imp], sh.position[ex_imp], sh.play[ex_imp],
                              wc.page_rows, wc.page_positions).ravel()
    logger_m = PageMarginals.pool_exploring(base, pool, logger.epsilon, logger.pool_epsilon,
                                            avail)
    q_logged = q_dense(logged)
    # all plays, as the A/B test counts them: the organic plays logged off these pages, and
    # the examination net of organic plays
    lg = today.log
    o_sel = pos_eval[lg.organic_visit] >= 0
    o_visit, o_title = pos_eval[lg.organic_visit[o_sel]], lg.organic_title[o_sel]
    ex_vis = today.explored[eval_idx]
    e_net = examination_net_of_organic(
        sh.row_index[ex_imp], sh.position[ex_imp], sh.play[ex_imp], wc.page_rows,
        wc.page_positions, organic_count=np.bincount(o_visit, minlength=eval_idx.size)[ex_vis],
        off_page=(avail - (logged >= 0).sum(axis=1))[ex_vis]).ravel()
    with progress.task(f"release after day {day + 1}: offline evaluation", len(cands)) as task:
        for ci, c in enumerate(cands):
            target = pool[:, ci]  # the candidate's pages, recorded when it was in the pool
            qt = q_dense(target)
            mu_slot = logger.slot_propensity(target, base, pool, avail)
            slot = slot_match(logged, plays, target, mu_slot, q_target=qt)
            match = (logged == target).all(axis=1)
            mu_page = logger.page_propensity(target, base, pool)
            page = whole_page(total, match, mu_page, q_target=qt.sum(axis=1) + c_hat)
            n_same = (pool == target[:, None, :]).all(axis=2).sum(axis=1)
            rp = whole_page(total[pooled], match[pooled], n_same[pooled] / K)["snips"]
            target_m = PageMarginals(target[:, None, :], np.ones(1), 0.0, avail)
            pbm = position_based(logged, plays, target_m, logger_m, examination=e_hat,
                                 q_logged=q_logged, dm=qt.sum(axis=1))
            pbm_all = position_based(logged, plays, target_m, logger_m, examination=e_net,
                                     q_logged=q_logged, dm=qt.sum(axis=1),
                                     organic=(o_visit, o_title))
            offline[c.name] = {
                "pbm_dr": pbm["dr"].to_dict(), "pbm_snips": pbm["snips"].to_dict(),
                "pbm_plays": pbm_all["plays_dr"].to_dict(),
                "replay": {**rp.to_dict(), "method": "replay (pool share)"},
                "ips": page["ips"].to_dict(), "snips": page["snips"].to_dict(),
                "dr": page["dr"].to_dict(), "sndr": page["sndr"].to_dict(),
                "slot_snips": slot["snips"].to_dict(), "slot_dr": slot["dr"].to_dict(),
                "naive_hit_rate": naive_hit_rate(today.log, eval_idx, target),
            }
            # the estimand: the world's truth for these pages on the same logged visits, from
            # the member state at the start of that day
            tr = page_truth(world, _Fixed(target, bounds), batches, state0,
                            np.random.default_rng([cfg.seed, 24, day]))
            offline[c.name]["truth_logged"] = {"plays": mean_ci(tr.plays),
                                               "page_plays": mean_ci(tr.page_plays)}
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
    with progress.task(f"release after day {day + 1}: true value on fresh visits",
                       len(cands)) as task:
        for c in cands:
            tr = page_truth(world, c.policy, tb, state, np.random.default_rng([cfg.seed, 23]))
            per_visit[c.name] = tr.plays
            online[c.name] = {"plays": mean_ci(tr.plays), "page_plays": mean_ci(tr.page_plays),
                              "incremental": mean_ci(tr.incremental)}
            task.advance()
    ranked = sorted(cands, key=lambda c: -offline[c.name]["dr"]["value"])
    finalists = ranked[: cfg.ab_arms]
    with progress.task(f"release after day {day + 1}: A/B test", len(finalists)) as task:
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
        "ope_visits": int(k), "pooled_visits": int(pooled.sum()), "pool_size": int(K),
        "candidates": [
            {"name": c.name, "train_seconds": c.seconds, "offline": offline[c.name],
             "online": online[c.name], **({"info": c.info} if c.info else {})}
            for c in cands],
        "ab": ab, "shipped": winner.name, "lifts": lifts,
        **({"shipped_version": winner.info["version"], "shipped_path": winner.info["path"]}
           if winner.page is not None else {}),
        "shipped_before": getattr(logger.base, "name", None),
    }
    return rel, winner.policy


def _artwork_lift(cfg: LoopConfig, world: World, train: SimulationLog, winner: Candidate,
                  batches, state, day: int, progress: Progress) -> dict[str, Any]:
    from reelpick.artwork import ArtworkCatalog, ArtworkRows, ThompsonArtwork, WithArtwork

    with progress.task(f"release after day {day + 1}: artwork bandit", 2) as task:
        cat = ArtworkCatalog.from_world(world)
        rows = ArtworkRows.from_pages(train.logged_pages(n_titles=world.config.n_titles),
                                      cat.art_offset, world.members()["member_id"])
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


def _learned_truth(cfg: LoopConfig, world: World, arms: dict[str, _Arm], shipped: Any,
                   day: int) -> dict[str, dict[str, float]]:
    """TRUE value of each arm's learnt page policy without its exploration (greedy: itself;
    production: the shipped policy) on ``probe_visits`` fresh visits of the next day, from the
    arm's own member state: what the arm's data taught it, apart from what exploring costs."""
    next_day = min(day + 1, world.config.days - 1)
    visits = draw_day_visits(world, next_day, cfg.probe_visits,
                             np.random.default_rng([cfg.seed, 61, day]))
    batches = [vb for _, vb in world.batches(visits)]
    out = {}
    for name, arm in arms.items():
        pol = shipped if name == "production" else getattr(arm.policy, "base", arm.policy)
        tr = page_truth(world, pol, batches, arm.sim.state,
                        np.random.default_rng([cfg.seed, 62, day]))
        out[name] = {"learned_incremental": float(tr.incremental.mean()),
                     "learned_incremental_se": float(tr.incremental.std(ddof=1)
                                                     / np.sqrt(tr.incremental.size)),
                     "learned_plays": float(tr.plays.mean())}
    return out


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
             logs_out: str | Path | None = None, policies_out: str | Path | None = None
             ) -> dict[str, Any]:
    """Run the closed loop (module docstring) and return the results object.

    ``logs_out``: also write the production arm's logs there (``impressions`` with an
    ``explored`` column, ``outcomes``, ``interactions``, ``titles``, ``members``, ``artworks``
    as Parquet, schema-valid) — what ``reelpick train`` reads. ``policies_out``: where the
    page-policy candidates are saved (``release-<n>/<name>``, with ``candidates.json``; the
    results name each one's ``version`` and ``path``, and the release's ``shipped_path``
    when the A/B winner is one); default a temporary folder removed at the end."""
    if not isinstance(config, LoopConfig):
        raise TypeError(f"config: expected a LoopConfig, got {type(config).__name__}")
    with contextlib.ExitStack() as stack:
        if policies_out is None:
            policies_out = stack.enter_context(tempfile.TemporaryDirectory(prefix="loop-"))
        return _run(config, progress, logs_out, Path(policies_out))


def _run(config: LoopConfig, progress: Progress | None, logs_out: str | Path | None,
         policies_out: Path) -> dict[str, Any]:
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
    prod = arms["production"]
    prod.policy = PoolExploringPolicy(popular, cfg.epsilon, cfg.pool_epsilon)
    daily: list[dict[str, Any]] = []
    releases: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    shipped, shipped_policy = "popular", popular
    pending: list[Candidate] = []
    for day in range(cfg.days):
        # the member state before the evaluation day: the truth of the offline estimand
        state0 = prod.sim.state.copy() if day in cfg.releases else None
        t0 = time.perf_counter()
        with progress.task(f"day {day + 1}/{cfg.days}: serving {len(ARMS)} arms",
                           len(ARMS)) as task:
            served = {}
            for name, arm in arms.items():
                dl = arm.sim.run_day(arm.policy, day)
                arm.add(dl)
                served[name] = dl
                task.advance()
        timings["serve"] = timings.get("serve", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        # the cheap arms learn every day from their own logs
        # (every arm has served a day: its log is set)
        greedy_scorer.fit(cast(SimulationLog, arms["greedy"].log), genre, wc.n_members)
        explore_scorer.fit(cast(SimulationLog, arms["explore"].log), genre, wc.n_members)
        up = arms["uplift"]
        if up.explored.any():
            model = SegmentUpliftModel(by_device=True).fit(
                explore_logs(cast(SimulationLog, up.log), up.explored, world.titles()))
            up.policy = ExploringPolicy(UpliftPolicy.for_world(model, world), cfg.epsilon)
        timings["learn_arms"] = timings.get("learn_arms", 0.0) + time.perf_counter() - t0
        if day in cfg.releases:
            rel, winner = _release(cfg, world, prod, day, pending, state0, progress, timings)
            releases.append(rel)
            shipped, shipped_policy = rel["shipped"], winner
            progress.log(f"release after day {day + 1}: A/B winner {shipped} shipped")
        # what each arm has learnt: its page without exploration, on fresh visits of tomorrow
        t0 = time.perf_counter()
        learned = _learned_truth(cfg, world, arms, shipped_policy, day)
        timings["probe"] = timings.get("probe", 0.0) + time.perf_counter() - t0
        for name in ARMS:
            daily.append({"arm": name, "day": day,
                          "policy": shipped if name == "production" else name,
                          **day_metrics(world, served[name]), **learned[name]})
        if day + 1 in cfg.releases:
            pending = _train(cfg, world, prod, day + 1, progress, timings, policies_out)
        prod.policy = PoolExploringPolicy(shipped_policy, cfg.epsilon, cfg.pool_epsilon,
                                          [c.policy for c in pending])
    if logs_out is not None:
        write_logs(world, prod, logs_out)
    write_candidates_json(policies_out, [
        {"name": c["name"], "path": c["info"]["path"], "version": c["info"]["version"],
         "release": rel["day"], "shipped": c["name"] == rel["shipped"]}
        for rel in releases for c in rel["candidates"] if "version" in c.get("info", {})])
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
