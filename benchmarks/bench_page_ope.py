"""Page-level OPE of page policy candidates against the simulated world's truth (issue 18).

On a stationary ``small`` world (member state does not move plays, so the logged day and the
truth describe the same process): train several :class:`reelpick.page.PagePolicy` candidates
that differ (ranker trees, ranker window, sources' sizes, exploration share) on a promotion
policy's logs, serve one more page policy (the *served* logger, with uniform exploration) on
fresh visits, and estimate every candidate from those logs with
:func:`reelpick.page.evaluate.evaluate_candidates` (page-level position-based IPS/SNIPS/DR/SNDR
on the logs' exploration bucket; exact slot match of the composed page for comparison). The
truth of a candidate *as it would be served* (its composed page with probability
``1 - epsilon``, a uniform page otherwise) is the world's expected page plays on the same
logged visits, exact over the exploration draw: ``(1 - eps) V(composed) + eps V(uniform)``;
the slot-match estimates target the composed page alone, ``V(composed)``.

Reported per estimator over ``--reps`` logging seeds: release-day Spearman against the truth,
coverage of the 95% intervals, mean bias, mean ESS and interval width, and whether the
candidates can be told apart (pairs whose true gap exceeds their intervals' mean width). The
logged visits needed for the interval width (served marginals) to fall under the median
pairwise true gap is ``n * (width / gap)^2``. Writes the ``page-ope`` section of BENCHMARKS.md and
``benchmarks/results/page_ope.json``.

Run: ``.venv/bin/python benchmarks/bench_page_ope.py [--visits 4000] [--reps 3]``
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
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _world_sim import stationary_world  # noqa: E402
from reelpick.decision import PageBatch, VisitBatch  # noqa: E402
from reelpick.loop.simulator import page_truth  # noqa: E402
from reelpick.ope.pages import rank_agreement  # noqa: E402
from reelpick.page import PagePolicyConfig, train_page_policy  # noqa: E402
from reelpick.page.evaluate import (  # noqa: E402
    PAGE_ESTIMATORS,
    evaluate_candidates,
    explored_pages,
    promotion_decision,
    served_value,
)
from reelpick.policies import UniformPolicy  # noqa: E402
from reelpick.world import PromotionPolicy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: the candidates (PagePolicyConfig changes on top of BASE) and the served logger
BASE: dict[str, Any] = dict(n_rows=3, n_positions=6, artwork="first", trees=40,
                            train_rows=40_000, epsilon=0.1)
CANDIDATES: dict[str, dict[str, Any]] = {
    "trees=40": {},
    "trees=2": dict(trees=2),
    "window=0.25": dict(ranker_window=0.25),
    "per_source=10": dict(per_source=10),
    "als=4,knn=5": dict(als_factors=4, knn_neighbors=5),
    "eps=0.4": dict(epsilon=0.4),
}
SERVED: dict[str, Any] = dict(trees=20, epsilon=0.2, seed=3)
#: estimates compared: page-level on the bucket alone and with the served policy's marginals
#: on every visit, and the exact slot match of the composed page
KEYS = tuple(f"{v}:{k}" for v in ("bucket", "served") for k in PAGE_ESTIMATORS) + (
    "slot:snips",)


class _Composed:
    """A page policy's composed (greedy) page: its value without exploration."""

    def __init__(self, bound: Any) -> None:
        self.bound, self.name, self.version = bound, bound.name, bound.version

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return self.bound.greedy(visits, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-visits", type=int, default=6000)
    ap.add_argument("--visits", type=int, default=4000, help="logged visits per replication")
    ap.add_argument("--reps", type=int, default=3, help="logging seeds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loop-seeds", default="0,1,2",
                    help="seeds of the quick demo loop whose releases are scored ('' = none)")
    ap.add_argument("--reuse-candidates", action="store_true",
                    help="keep the candidate part of benchmarks/results/page_ope.json")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    out_dir = ROOT / "benchmarks" / "results"
    if args.reuse_candidates:
        results = json.loads((out_dir / "page_ope.json").read_text())
        for k in ("train_visits", "visits", "reps", "seed"):
            setattr(args, k, results["config"][k])
    else:
        results = _candidates(args)
    seeds = [int(x) for x in args.loop_seeds.split(",") if x.strip()]
    results["loop"] = _loop(seeds) if seeds else []
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "page_ope.json").write_text(json.dumps(results, indent=1, default=str))
    write_section(args.out, "page-ope", _markdown(results, args))
    print(json.dumps(results["summary"], indent=1))


#: the loop's offline estimators scored at its releases, and the measure each one estimates
LOOP_ESTIMATORS = {"dr": "plays", "snips": "plays", "slot_dr": "page_plays",
                   "pbm_dr": "page_plays", "pbm_snips": "page_plays", "pbm_plays": "plays"}


def _loop(seeds: list[int]) -> list[dict[str, Any]]:
    """Release-day agreement of the quick demo loop's offline estimators with each
    candidate's true value on the next day's fresh visits (the A/B test's measure, plays, and
    the one each estimator targets) and coverage on the logged visits."""
    from reelpick.loop import LoopConfig, run_loop

    out = []
    for seed in seeds:
        t0 = time.perf_counter()
        res = run_loop(LoopConfig.quick(seed=seed))
        for rel in res["releases"]:
            cands = rel["candidates"]
            for est, measure in LOOP_ESTIMATORS.items():
                off = [c["offline"][est] for c in cands]
                own = rank_agreement(off, [c["online"][measure]["value"] for c in cands])
                plays = rank_agreement(off, [c["online"]["plays"]["value"] for c in cands])
                same = rank_agreement(off, [c["offline"]["truth_logged"][measure]["value"]
                                            for c in cands])
                out.append({"seed": seed, "day": rel["day"], "estimator": est,
                            "measure": measure, "spearman": own["spearman"],
                            "spearman_plays": plays["spearman"],
                            "apart_pairs": own["apart_pairs"],
                            "apart_concordant": own["apart_concordant"],
                            "spearman_apart": own["spearman_apart"],
                            "coverage": same["coverage"], "mean_width": same["mean_width"]})
        print(f"loop seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def _candidates(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    world = stationary_world("small", seed=args.seed)
    members, countries = world.members()["member_id"], world.config.countries
    train = world.simulate(PromotionPolicy(), args.train_visits, seed=args.seed + 1)
    tables = dict(impressions=train.impressions(), outcomes=train.outcomes(),
                  titles=world.titles(), artworks=world.artworks(),
                  interactions=train.interactions())

    def fit(name: str, changes: dict[str, Any]) -> Any:
        return train_page_policy(tables["impressions"], tables["outcomes"], tables["titles"],
                                 artworks=tables["artworks"],
                                 interactions=tables["interactions"],
                                 config=PagePolicyConfig(**{**BASE, **changes}), name=name)

    t0 = time.perf_counter()
    cands = [fit(n, c) for n, c in CANDIDATES.items()]
    served = fit("served", SERVED)
    train_s = time.perf_counter() - t0
    names = list(CANDIDATES)
    eps = np.array([c.config.epsilon for c in cands])
    reps: list[dict[str, Any]] = []
    for r in range(args.reps):
        seed = args.seed + 100 + r
        log = world.simulate(served.for_members(members, countries), args.visits, seed=seed)
        imp = log.impressions()
        pages = served.logged_pages(imp, log.outcomes())
        explored = explored_pages(imp, pages)
        assert explored is not None, "the world's logs mark the exploration bucket"
        t0 = time.perf_counter()
        variants = {"bucket": evaluate_candidates(pages, cands, names=names, explored=explored),
                    "served": evaluate_candidates(pages, cands, names=names, explored=explored,
                                                  served=served)}
        est_s = time.perf_counter() - t0
        est = variants["served"]
        logger_used = est[0]["pbm_dr"]["logger"]
        # the truth on the same logged visits, state held at its (stationary) start
        v = log.visits
        visits = {f: getattr(v, f) for f in ("member", "timestamp", "device", "country",
                                             "hour", "day_of_week", "cell", "mood")}
        batches = [vb for _, vb in world.batches(visits)]
        state = world.initial_state()
        trng = np.random.default_rng([seed, 7])
        uni = page_truth(world, UniformPolicy(artwork="first"), batches, state, trng,
                         artwork="page").page_plays.mean()
        composed = np.array([
            page_truth(world, _Composed(c.for_members(members, countries)), batches, state,
                       trng, artwork="page").page_plays.mean() for c in cands])
        served_true = ((1 - SERVED["epsilon"]) * page_truth(
            world, _Composed(served.for_members(members, countries)), batches, state, trng,
            artwork="page").page_plays.mean() + SERVED["epsilon"] * uni)
        as_served = (1 - eps) * composed + eps * uni
        rows: dict[str, Any] = {}
        for key in KEYS:
            v, k = key.split(":")
            truth = as_served if k in PAGE_ESTIMATORS else composed
            ev = variants["bucket" if v == "slot" else v]
            ag = rank_agreement([e[k] for e in ev], list(truth))
            ag["ess"] = float(np.mean([e[k]["ess"] for e in ev]))
            ag["matched"] = float(np.mean([e[k]["matched"] for e in ev]))
            rows[key] = ag
        base = served_value(pages)
        decision = promotion_decision(est, base)
        dr = [e["pbm_dr"] for e in est]
        assert logger_used == "served policy", est[0]["pbm_dr"]["note"]
        # the bucket that would tell the median pair apart: CI width shrinks as 1/sqrt(n)
        gaps = np.abs(as_served[:, None] - as_served[None, :])[np.triu_indices(len(cands), 1)]
        gap = float(np.median(gaps))
        half = float(np.mean([(d["hi"] - d["lo"]) / 2 for d in dr]))
        nb = int(explored.sum())
        reps.append({"seed": seed, "bucket_visits": nb, "visits": int(pages.n_pages),
                     "estimate_seconds": round(est_s, 2), "truth_as_served": as_served.tolist(),
                     "truth_composed": composed.tolist(), "truth_uniform": float(uni),
                     "served_truth": float(served_true), "served_logged": base,
                     "estimates": {v: {e["name"]: {k: e[k] for k in PAGE_ESTIMATORS + ("snips",)}
                                       for e in ev} for v, ev in variants.items()},
                     "agreement": rows, "decision": decision.to_dict(),
                     "median_pair_gap": gap, "mean_half_width": half,
                     "visits_needed": (pages.n_pages * (2 * half / gap) ** 2 if gap > 0
                                       else None)})
        print(f"rep {r}: bucket {nb}; " + "; ".join(
            f"{k} Spearman {_f(rows[k]['spearman'])} coverage {_f(rows[k]['coverage'])}"
            for k in ("bucket:pbm_dr", "served:pbm_dr", "slot:snips")) + f"; {decision.reason}",
            flush=True)

    def mean_of(k: str, field: str) -> float | None:
        xs = [rep["agreement"][k][field] for rep in reps if rep["agreement"][k][field] is not None]
        return float(np.mean(xs)) if xs else None

    summary = {k: {f: mean_of(k, f) for f in ("spearman", "coverage", "bias", "mean_width",
                                              "ess", "matched", "apart_concordant",
                                              "spearman_apart")}
               | {"apart_pairs": float(np.mean([rep["agreement"][k]["apart_pairs"]
                                                for rep in reps]))}
               for k in KEYS}
    return {"config": {"base": BASE, "candidates": CANDIDATES, "served": SERVED,
                       "train_visits": args.train_visits, "visits": args.visits,
                       "reps": args.reps, "seed": args.seed},
            "train_seconds": round(train_s, 1), "reps": reps, "summary": summary,
            "wall_seconds": round(time.perf_counter() - t_start, 1)}


def _f(x: float | None, d: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def _markdown(res: dict[str, Any], args: argparse.Namespace) -> str:
    cmd = (f".venv/bin/python benchmarks/bench_page_ope.py --visits {args.visits} "
           f"--reps {args.reps} --train-visits {args.train_visits} "
           f"--loop-seeds {args.loop_seeds}")
    if args.reuse_candidates:
        cmd += " --reuse-candidates"
    reps = res["reps"]
    lines = [header("Page-level OPE of page policy candidates (issue 18)", cmd), "",
             f"Stationary `small` world; {len(CANDIDATES)} PagePolicy candidates "
             f"({', '.join(f'`{n}`' for n in CANDIDATES)}) trained on "
             f"{args.train_visits:,} promotion-policy visits; served logger: a PagePolicy "
             f"with ε = {SERVED['epsilon']} on {args.visits:,} visits per replication "
             f"(explored bucket: {np.mean([r['bucket_visits'] for r in reps]):.0f} visits on "
             f"average), {args.reps} logging seeds. Truth: the world's expected page plays "
             "per visit on the same logged visits (page-level estimators: the candidate as "
             "served, with its ε; slot SNIPS: its composed page). Means over replications."
             + (" The candidate part comes from an earlier run of the same command without "
                "`--reuse-candidates` (kept from `benchmarks/results/page_ope.json`)."
                if args.reuse_candidates else ""),
             "", "| estimator | Spearman | coverage | bias | CI width | ESS | matched/visit "
             "| apart pairs | apart ordered rightly |", "|---|---|---|---|---|---|---|---|---|"]
    for k, s in res["summary"].items():
        lines.append(f"| {k} | {_f(s['spearman'])} | {_f(s['coverage'])} | {_f(s['bias'], 3)} "
                     f"| {_f(s['mean_width'], 3)} | {_f(s['ess'], 0)} | {_f(s['matched'])} "
                     f"| {_f(s['apart_pairs'], 1)} | {_f(s['apart_concordant'])} |")
    lines += ["", "`bucket:` the exploration bucket alone (logger marginals 1/A); `served:` "
              "every logged visit with the served policy's exact marginals (what `reelpick "
              "promote` uses when the model directory's current version reproduces the logged "
              "propensities); `slot:snips` the exact slot match of the composed page (its "
              "truth: the composed page).", "",
              "Per replication (served:pbm_dr): true values as served, the verdict and the "
              "promotion rule's decision:", ""]
    for r in reps:
        ag = r["agreement"]["served:pbm_dr"]
        tv = ", ".join(f"{n} {v:.3f}" for n, v in zip(CANDIDATES, r["truth_as_served"],
                                                      strict=True))
        lines.append(f"- seed {r['seed']}: truth {tv}; Spearman {_f(ag['spearman'])}; "
                     f"{ag['verdict']}; median pairwise true gap {_f(r['median_pair_gap'], 3)} vs "
                     f"mean CI width {_f(2 * r['mean_half_width'], 3)} → ~"
                     f"{_f(r['visits_needed'], 0)} logged visits (same ε) would tell the "
                     f"median pair apart; "
                     f"decision: {r['decision']['reason']}")
    lines += ["", f"Training {res['train_seconds']} s, candidate part {res['wall_seconds']} s."]
    if res.get("loop"):
        loop = res["loop"]
        seeds = sorted({r["seed"] for r in loop})
        lines += ["", f"### The demo loop's releases (`LoopConfig.quick`, seeds {seeds})", "",
                  "Each release scores the loop's candidates offline on the release day's "
                  "production logs (base + candidate pool + uniform exploration, exact "
                  "propensities) and measures each one's true value on the next day's fresh "
                  "visits. `pbm_*`: the page-level estimator with the production logger's exact "
                  "marginals (`PageMarginals.pool_exploring`); `pbm_plays`: the same DR with the "
                  "organic plays logged off the page (`position_based(..., organic=)`, "
                  "`reelpick.ope.pages.organic_terms`) and the examination net of organic "
                  "plays, which estimates all plays per visit; `dr`/`snips`: the loop's "
                  "whole-page estimators (all plays); `slot_dr`: per-slot exact match. "
                  "Spearman against the estimator's own measure and against plays (what the "
                  "A/B test measures), means over releases:", "",
                  "| estimator | measure | Spearman (own measure) | Spearman (plays) | "
                  "coverage (logged visits) | CI width | apart pairs | apart ordered rightly | "
                  "Spearman over apart candidates (releases with >= 3) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for est, measure in LOOP_ESTIMATORS.items():
            rows = [r for r in loop if r["estimator"] == est]

            def m(field: str, rows: list[dict[str, Any]] = rows) -> float | None:
                xs = [r[field] for r in rows if r[field] is not None]
                return float(np.mean(xs)) if xs else None

            lines.append(f"| {est} | {measure} | {_f(m('spearman'))} | "
                         f"{_f(m('spearman_plays'))} | {_f(m('coverage'))} | "
                         f"{_f(m('mean_width'), 3)} | {_f(m('apart_pairs'), 1)} | "
                         f"{_f(m('apart_concordant'))} | {_f(m('spearman_apart'))} "
                         f"({sum(r['spearman_apart'] is not None for r in rows)}) |")
        per = ", ".join(f"{r['spearman']:.2f}" for r in loop if r["estimator"] == "pbm_dr")
        per_all = ", ".join(f"{r['spearman']:.2f}" for r in loop
                            if r["estimator"] == "pbm_plays")
        lines += ["", f"pbm_dr per release (page plays): {per}; pbm_plays per release (all "
                  f"plays): {per_all}. In this world organic search favours popular titles, so "
                  "page plays (organic plays of shown titles included) and plays caused by the "
                  "page rank candidates differently: `pbm_dr` ranks page plays; `pbm_plays` "
                  "takes the organic plays out and ranks what the A/B test counts."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
