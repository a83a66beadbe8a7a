"""Ranker and page composition on the simulated world (issue 5 targets).

1. **Ranker vs each single candidate source** on a time-held-out window: sources and history are
   fitted on plays before the window, the LightGBM ranker on impressions of the previous window
   (features from the snapshot at its start); every method's top-10 for held-out visits is scored
   by NDCG@10 against the member's plays in the window and by the world's true P(play) and
   uplift of the list at positions 0..9 (member state replayed to the window start).
2. **Context-shaped vs context-free pages**: full composed pages (rows ordered per member and
   context) from a ranker with context features vs one without them (and country-level
   trending), compared on the same held-out visits by true plays per visit (paired 95% CI).
3. **Latency**: one member's page, 10 rows x 20 titles from a 10,000-title catalogue, one core.

Run: ``.venv/bin/python benchmarks/bench_ranker.py`` (``--quick`` for a smoke run). Writes the
``ranker`` section of BENCHMARKS.md and ``benchmarks/results/ranker.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from reelpick.models import available_models  # noqa: E402
from reelpick.policies import UniformPolicy  # noqa: E402
from reelpick.ranking import (  # noqa: E402
    DAILY_SEQ_PARAMS,
    BecauseYouWatchedSource,
    Catalogue,
    ContinueWatchingSource,
    FeatureBuilder,
    History,
    ModelSource,
    PageComposer,
    PageConfig,
    Ranker,
    Requests,
    TrendingSource,
    requests_from_pages,
    training_set,
)
from reelpick.world import World, WorldConfig  # noqa: E402

DAY = 86_400
K = 10


def make_sources(use_context: bool, seq: bool):
    srcs = [ModelSource("als", factors=32, iterations=10), ModelSource("itemknn", neighbors=100)]
    if seq and "seq" in available_models():
        srcs.append(ModelSource("seq", **DAILY_SEQ_PARAMS, max_epochs=3))
    srcs += [TrendingSource(by_context=use_context), ContinueWatchingSource(),
             BecauseYouWatchedSource()]
    return srcs


class Snapshot:
    """History + fitted sources + feature builder as of one time."""

    def __init__(self, inter, cat, members, as_of, *, use_context=True, seq=False):
        t = time.perf_counter()
        self.history = History.build(inter, cat, members=members, as_of=as_of)
        self.sources = [s.fit(self.history) for s in make_sources(use_context, seq)]
        for s in self.sources:  # trending-country keeps the feature name of its context twin
            if s.name == "trending-country":
                s.name = "trending"
        self.features = FeatureBuilder(self.history, source_names=[s.name for s in self.sources],
                                       use_context=use_context)
        self.seconds = time.perf_counter() - t


def replay_state(world: World, log, until: int):
    """Member state at ``until`` from the logged plays before it (for the truth)."""
    state = world.initial_state()
    inter = log.interactions()
    inter = inter[inter["timestamp"] < until]
    m = inter["member_id"].str[1:].astype(int).to_numpy()
    t = inter["title_id"].str[1:].astype(int).to_numpy()
    ts = inter["timestamp"].to_numpy()
    o = np.argsort(ts, kind="stable")
    world.dynamics.update(state, m[o], t[o], ts[o].astype(float), float(until))
    return state


def visit_batches(world: World, log, idx: np.ndarray):
    """Held-out visits grouped by simulated day: ``(positions in idx, VisitBatch)``."""
    v = log.visits
    day = (v.timestamp[idx] - world.config.start) // DAY
    for d in np.unique(day):
        sel = np.flatnonzero(day == d)
        j = idx[sel]
        yield sel, world.make_visits(v.member[j], v.timestamp[j], device=v.device[j],
                                     hour=v.hour[j], day_of_week=v.day_of_week[j],
                                     mood=v.mood[j], cell=v.cell[j])


def ndcg(lists: np.ndarray, relevant: list[set]) -> np.ndarray:
    disc = 1.0 / np.log2(np.arange(2, lists.shape[1] + 2))
    out = np.zeros(len(lists))
    for i, (row, rel) in enumerate(zip(lists, relevant)):
        if not rel:
            out[i] = np.nan
            continue
        gains = np.array([t in rel for t in row]) * disc
        out[i] = gains.sum() / disc[: min(len(rel), lists.shape[1])].sum()
    return out


def ci(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(x.size))


def top_k(score: np.ndarray, avail: np.ndarray, k: int) -> np.ndarray:
    key = np.where(avail & np.isfinite(score), score, -np.inf)
    top = np.argsort(-key, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(key, top, axis=1)), top, -1)


def run_quality(args, report: dict) -> list[str]:
    cfg = WorldConfig.preset("default", n_members=args.members, days=60)
    world = World(cfg, seed=args.seed)
    t = time.perf_counter()
    log = world.simulate(UniformPolicy(artwork="first"), args.visits, seed=args.seed)
    inter = log.interactions()
    pages = log.logged_pages(n_titles=cfg.n_titles)
    sim_s = time.perf_counter() - t
    cat = Catalogue.from_frame(world.titles(), countries=cfg.countries)
    members = world.members()["member_id"].tolist()
    names = world.titles()["name"]
    c1, c2 = cfg.start + 40 * DAY, cfg.start + 50 * DAY
    rng = np.random.default_rng(args.seed)
    req = requests_from_pages(pages, members)
    held = np.flatnonzero(req.timestamp >= c2)
    held = np.sort(rng.choice(held, min(args.eval_visits, held.size), replace=False))
    state = replay_state(world, log, c2)
    # relevance: each member's plays in the held-out window
    late = inter[inter["timestamp"] >= c2]
    plays_by_member: dict[int, set] = {}
    for m, tt in zip(late["member_id"].str[1:].astype(int), late["title_id"].str[1:].astype(int)):
        plays_by_member.setdefault(m, set()).add(tt)
    relevant = [plays_by_member.get(int(m), set()) for m in req.member[held]]

    rankers, composers = {}, {}
    for use_context in (True, False):
        tag = "context" if use_context else "context-free"
        s1 = Snapshot(inter, cat, members, c1, use_context=use_context, seq=args.seq)
        t = time.perf_counter()
        X, y, _ = training_set(pages, members, s1.features, s1.sources, start=c1, end=c2,
                               max_rows=args.train_rows, rng=rng)
        feat_s = time.perf_counter() - t
        t = time.perf_counter()
        rk = Ranker(n_estimators=300, learning_rate=0.05, num_leaves=31,
                    min_child_samples=200).fit(X, y, feature_names=s1.features.names,
                                               categorical=s1.features.categorical)
        fit_s = time.perf_counter() - t
        s2 = Snapshot(inter, cat, members, c2, use_context=use_context, seq=args.seq)
        rankers[tag] = rk
        composers[tag] = PageComposer(s2.history, s2.sources, s2.features, rk,
                                      PageConfig(n_rows=cfg.page_rows,
                                                 n_positions=cfg.page_positions),
                                      title_names=names)
        report[f"train_{tag}"] = {"rows": int(X.shape[0]), "positives": int(y.sum()),
                                  "features_s": feat_s, "fit_s": fit_s,
                                  "snapshot_s": s1.seconds,
                                  "trees": int(rk.booster_.num_trees())}
    comp = composers["context"]
    # ---------------- 1. top-10 lists: ranker vs single sources
    lists: dict[str, list] = {}
    truth = {"p_play": {}, "uplift": {}}
    pos = np.arange(K)
    ctx_free = composers["context-free"]
    for sel, vb in visit_batches(world, log, held):
        r = Requests.from_visits(vb)
        avail = vb.available[vb.country]
        scores = comp.source_scores(r)
        cand = comp.candidates(r, avail, scores)
        p = comp.predict(r, cand, scores)
        method = {"ranker": p, "popularity": np.broadcast_to(vb.catalog.popularity, p.shape)}
        for name, s in scores.items():
            method[f"source: {name}"] = s
        sc2 = ctx_free.source_scores(r)
        method["ranker (context-free)"] = ctx_free.predict(r, ctx_free.candidates(r, avail, sc2),
                                                           sc2)
        for name, s in method.items():
            top = top_k(np.asarray(s, dtype=float), avail, K)
            pp = world.play_probability(vb, top, np.zeros_like(top), row=0,
                                        position=pos[None, :], state=state)
            up = world.uplift(vb, top, np.zeros_like(top), row=0, position=pos[None, :],
                              state=state)
            lists.setdefault(name, []).append((sel, top))
            truth["p_play"].setdefault(name, []).append((sel, np.where(top >= 0, pp, 0).mean(1)))
            truth["uplift"].setdefault(name, []).append((sel, np.where(top >= 0, up, 0).sum(1)))

    def gather(parts):
        out = None
        for sel, arr in parts:
            if out is None:
                out = np.zeros((held.size, *arr.shape[1:]), dtype=arr.dtype)
            out[sel] = arr
        return out

    table = []
    nd_rank = ndcg(gather(lists["ranker"]), relevant)
    pp_rank = gather(truth["p_play"]["ranker"])
    for name in lists:
        top = gather(lists[name])
        nd = ndcg(top, relevant)
        pp = gather(truth["p_play"][name])
        table.append((name, ci(nd), ci(pp), ci(gather(truth["uplift"][name])),
                      ci(nd_rank - nd), ci(pp_rank - pp)))
    report["top10"] = {n: {"ndcg": a, "p_play": b, "uplift": c, "ranker_minus_ndcg": d,
                           "ranker_minus_p_play": e} for n, a, b, c, d, e in table}

    # ---------------- 2. context-shaped vs context-free pages
    gain = {"context": np.zeros(held.size), "context-free": np.zeros(held.size),
            "uniform": np.zeros(held.size)}
    search = np.where(log.visits.mood[held] > 0, cfg.mood_search_rate, cfg.search_rate)
    t_pages = time.perf_counter()
    for sel, vb in visit_batches(world, log, held):
        r = Requests.from_visits(vb)
        avail = vb.available[vb.country]
        for tag in ("context", "context-free"):
            pg = composers[tag].compose(r, avail)
            up = world.uplift(vb, pg.titles, np.zeros_like(pg.titles), row=pg.row_index,
                              position=pg.position, state=state)
            gain[tag][sel] = np.where(pg.titles >= 0, up, 0).sum(1)
        uni = UniformPolicy(artwork="first").choose(vb, np.random.default_rng(0))
        up = world.uplift(vb, uni.titles, uni.artworks, row=uni.row_index,
                          position=uni.position, state=state)
        gain["uniform"][sel] = up.sum(1)
    pages_s = time.perf_counter() - t_pages
    plays = {k: ci(search + v) for k, v in gain.items()}
    diff = ci(gain["context"] - gain["context-free"])
    report["pages"] = {"plays_per_visit": plays, "difference": diff,
                       "n_visits": int(held.size), "compose_s_per_visit": pages_s / held.size}
    ex_i = 0
    r0 = req.subset(held[:1])
    pg0 = comp.compose(r0)
    why = comp.explain(r0, ex_i, int(pg0.titles[0, 0]), top=5)
    imp = rankers["context"].feature_importance().head(12)
    report["importance"] = {k: float(v) for k, v in imp.items()}

    lines = [f"World `default` preset with {args.members:,} members (2,000 titles, 60 days, "
             f"5 x 10 pages), seed {args.seed}; {args.visits:,} visits logged by a uniform "
             f"policy (simulated in {sim_s:.1f} s). Sources and history fitted on plays before "
             f"day 40; ranker (LightGBM, {report['train_context']['trees']} trees, 1 thread) "
             f"trained on {report['train_context']['rows']:,} impressions of days 40-49 "
             f"({report['train_context']['positives']:,} plays) with features from the day-40 "
             f"snapshot; evaluation on {held.size:,} held-out visits of days 50-59 with sources "
             "refitted on plays before day 50. Truth: the world's P(play) and uplift with member "
             "state replayed to day 50. ± = 95% CI over visits.",
             "", "**Top-10 for held-out visits: ranker vs each single source**", "",
             "| method | NDCG@10 (plays in window) | true P(play), mean over slots 0-9 | "
             "true uplift, sum over slots | ranker − method: NDCG@10 (paired) | "
             "ranker − method: true P(play) (paired) |", "|---|---:|---:|---:|---:|---:|"]
    for name, a, b, c, d, e in sorted(table, key=lambda r: -r[2][0]):
        dd = "" if name == "ranker" else f"{d[0]:+.4f} ± {d[1]:.4f}"
        de = "" if name == "ranker" else f"{e[0]:+.4f} ± {e[1]:.4f}"
        lines.append(f"| {name} | {a[0]:.4f} ± {a[1]:.4f} | {b[0]:.4f} ± {b[1]:.4f} | "
                     f"{c[0]:.4f} ± {c[1]:.4f} | {dd} | {de} |")
    lines += ["", "**Composed pages (5 rows x 10): context-shaped vs context-free** "
              "(true plays per visit = organic search + Σ uplift of the page)", "",
              "| pages | true plays / visit |", "|---|---:|"]
    for k, (m, h) in plays.items():
        lines.append(f"| {k} | {m:.4f} ± {h:.4f} |")
    lines += [f"| **context − context-free (paired)** | **{diff[0]:+.4f} ± {diff[1]:.4f}** |",
              "", "Feature importance (gain, top 12): "
              + ", ".join(f"`{k}`" for k in imp.index) + ".", "",
              "Why the first title of one held-out page (TreeSHAP, logit contributions): "
              + "; ".join(f"`{f}` = {v:.3g} → {c:+.3f}" for f, v, c in why.itertuples(
                  index=False)) + "."]
    return lines


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def run_latency(args, report: dict) -> list[str]:
    cfg = WorldConfig.preset("large", n_members=args.latency_members, days=30)
    world = World(cfg, seed=args.seed)
    log = world.simulate(UniformPolicy(artwork="first"), args.latency_visits, seed=args.seed)
    inter = log.interactions()
    pages = log.logged_pages(n_titles=cfg.n_titles)
    cat = Catalogue.from_frame(world.titles(), countries=cfg.countries)
    members = world.members()["member_id"].tolist()
    c1, c2 = cfg.start + 20 * DAY, cfg.start + 27 * DAY
    s1 = Snapshot(inter, cat, members, c1, seq=False)
    X, y, _ = training_set(pages, members, s1.features, s1.sources, start=c1, end=c2,
                           max_rows=args.train_rows // 2)
    s2 = Snapshot(inter, cat, members, c2, seq=False)
    Xh, yh, _ = training_set(pages, members, s2.features, s2.sources, start=c2,
                             max_rows=args.train_rows // 4)
    variants = {"full (300 trees, lr 0.05)": dict(n_estimators=300, learning_rate=0.05),
                "compact (40 trees, lr 0.2)": dict(n_estimators=40, learning_rate=0.2)}
    req = requests_from_pages(pages, members)
    idx = np.flatnonzero(req.timestamp >= c2)[: args.latency_n]
    rows, lat_all = [], {}
    base_ll = _logloss(yh, np.full(yh.size, y.mean()))
    for vname, kw in variants.items():
        rk = Ranker(min_child_samples=200, **kw).fit(
            X, y, feature_names=s1.features.names, categorical=s1.features.categorical)
        comp = PageComposer(s2.history, s2.sources, s2.features, rk,
                            PageConfig(n_rows=10, n_positions=20, per_source=60,
                                       n_genre_rows=6))
        for i in idx[:5]:  # warm-up
            comp.compose(req.subset(np.array([i])))
        stage = {"sources": [], "predict": [], "total": []}
        n_cand, filled = [], []
        for i in idx:
            r = req.subset(np.array([i]))
            t0 = time.perf_counter()
            pg = comp.compose(r)
            t1 = time.perf_counter()
            sc = comp.source_scores(r)
            t2 = time.perf_counter()
            cand = comp.candidates(r, comp.default_available(r), sc)
            t3 = time.perf_counter()
            comp.predict(r, cand, sc)
            t4 = time.perf_counter()
            stage["total"].append(t1 - t0)
            stage["sources"].append(t2 - t1)
            stage["predict"].append(t4 - t3)
            n_cand.append(int(cand.sum()))
            filled.append(int((pg.titles >= 0).sum()))
        ms = {k: np.asarray(v) * 1e3 for k, v in stage.items()}
        lat = {"median_ms": float(np.median(ms["total"])),
               "p90_ms": float(np.quantile(ms["total"], 0.9)),
               "sources_ms": float(np.median(ms["sources"])),
               "predict_ms": float(np.median(ms["predict"])),
               "candidates": float(np.mean(n_cand)), "filled": float(np.mean(filled)),
               "heldout_logloss": _logloss(yh, rk.predict(Xh)), "constant_logloss": base_ll}
        lat_all[vname] = lat
        rows.append(f"| {vname} | {lat['candidates']:.0f} | {lat['sources_ms']:.2f} | "
                    f"{lat['predict_ms']:.2f} | **{lat['median_ms']:.2f}** | {lat['p90_ms']:.2f} "
                    f"| {lat['heldout_logloss']:.4f} |")
    report["latency"] = lat_all
    first = next(iter(lat_all.values()))
    return ["", "**Latency: one member's page, 10 rows x 20 titles from 10,000 titles** "
            f"(`large` preset, {args.latency_members:,} members, history of "
            f"{len(s2.history.t):,} plays; sources ALS-32, item-kNN, trending, continue "
            "watching, because-you-watched; 60 candidates per source plus 6 genre rows; "
            f"{first['filled']:.0f} of 200 slots filled on average; 1 thread; median over "
            f"{len(idx)} members). Held-out log loss on impressions after day 27 "
            f"(constant rate: {base_ll:.4f}).", "",
            "| ranker | candidates | sources ms | features + LightGBM ms | page ms (median) | "
            "p90 ms | held-out log loss |", "|---|---:|---:|---:|---:|---:|---:|", *rows,
            "", "Timings from a 2-core machine shared with other jobs: pessimistic."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--visits", type=int, default=150_000)
    ap.add_argument("--eval-visits", type=int, default=3_000)
    ap.add_argument("--train-rows", type=int, default=400_000)
    ap.add_argument("--latency-members", type=int, default=5_000)
    ap.add_argument("--latency-visits", type=int, default=40_000)
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument("--seq", action="store_true", help="add the sequence model as a source")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.members, args.visits, args.eval_visits, args.train_rows = 2000, 30_000, 500, 60_000
        args.latency_members, args.latency_visits, args.latency_n = 1000, 8000, 30
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    report: dict = {"args": vars(args)}
    t = time.perf_counter()
    lines = run_quality(args, report)
    lines += run_latency(args, report)
    report["seconds"] = time.perf_counter() - t
    cmd = "python benchmarks/bench_ranker.py " + " ".join(sys.argv[1:])
    body = header("Ranker and page composition (simulated world)", cmd.strip()) + "\n" + \
        "\n".join(lines) + f"\n\nWhole benchmark: {report['seconds']:.0f} s.\n"
    if not args.quick:
        write_section(args.out, "ranker", body)
        out = Path(__file__).resolve().parent / "results" / "ranker.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=float))
    print(body)


if __name__ == "__main__":
    main()
