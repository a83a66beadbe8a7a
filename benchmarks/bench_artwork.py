"""Personalised artwork on the simulator: take fraction of contextual bandits vs the best single
image per title vs random, replay vs the truth, and the time to choose a page's images.

Per seed: a world; an image-explore log (uniform title pages, a uniformly random image per
member and title, sticky) to train on; a second image-explore log on fresh visits, with the
image redrawn at every impression (``--sticky-eval`` keeps it sticky), to replay on; and two
truths for each policy (frozen, with the member histories of the training log):

* **online truth**: the policy run online on the same visits (same seeds): the mean of the
  world's exact play probability per impression, CI over visits. Its pages (the title policy
  draws from the same generator as the image policy) and its member states (plays update them)
  are its own, so it is a different sample of (visit, title, state) than the replay log;
* **same-log truth**: the policy's exact expected take fraction on the replay log's own
  impressions: ``mean_i sum_a pi(a | x_i, t_i) P(play | x_i, t_i, a, state_i)`` with the world's
  play probability of every variant under the member state of the replay run at that batch.
  This is what replay estimates when the logged image is independent of the member's state,
  i.e. on a non-sticky log, so its coverage tests the replay interval itself. On a sticky log
  the same (member, title) shows one image at every impression, so the logged image shaped the
  member's state before its later impressions (a played title is penalised when shown again):
  replay then measures the policy's image on that title alone among the logged images of the
  others, which comes out lower (``--sticky-eval`` shows it).

Run: ``.venv/bin/python benchmarks/bench_artwork.py --out /tmp/artwork_bench.md`` (writes the
``artwork`` section into ``--out``, ``BENCHMARKS.md`` by default, and the raw numbers to
``--json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

from reelpick.artwork import (  # noqa: E402
    ArtworkCatalog,
    ArtworkRows,
    EpsilonGreedyArtwork,
    FeatureConfig,
    LinUCBArtwork,
    ThompsonArtwork,
    UniformArtwork,
    WithArtwork,
    evaluate_artwork_policy,
    image_explore,
    model_reward_hat,
    normal_argmax_probabilities,
)
from reelpick.ope import SNIPS, OPEWarning  # noqa: E402
from reelpick.policies import UniformPolicy  # noqa: E402
from reelpick.world import World, WorldConfig  # noqa: E402
from reelpick.world.truth import online_take_fraction  # noqa: E402

ORDER = ["random", "best-image", "egreedy", "linucb", "thompson"]


def make_policies(cat: ArtworkCatalog, n_members: int) -> dict[str, object]:
    return {
        "random": UniformArtwork(sticky=False),
        "best-image": ThompsonArtwork(cat, n_members, features=FeatureConfig.non_personal(),
                                      name="best-image"),
        "egreedy": EpsilonGreedyArtwork(cat, n_members, epsilon=0.1),
        "linucb": LinUCBArtwork(cat, n_members, alpha=1.0),
        "thompson": ThompsonArtwork(cat, n_members, noise=0.25),
    }


def explore_with_variant_truth(world: World, cat: ArtworkCatalog, visits: dict, explore,
                               seed: int) -> tuple[ArtworkRows, np.ndarray, object]:
    """The image-explore run of ``world.simulate(explore, n, seed=seed)`` on ``visits``, batch
    by batch, with the exact play probability of every variant of every impression under the
    member state at that batch: ``(rows, p_variant (m, V), log of the last batch)``."""
    state = world.initial_state()
    prng, orng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])
    V = cat.max_variants
    parts, pv_parts, offset = [], [], 0
    for sl, vb in world.batches(visits):
        before = state.copy()
        log = world.simulate_visits(explore, {k: v[sl] for k, v in visits.items()}, state,
                                    prng, orng, check=False)
        s = log.shown
        n, S = len(vb), int(s.slot.max()) + 1
        titles = np.full((n, S), -1)
        row, pos = np.zeros((n, S), dtype=np.int64), np.zeros((n, S), dtype=np.int64)
        titles[s.visit, s.slot] = s.title
        row[s.visit, s.slot], pos[s.visit, s.slot] = s.row_index, s.position
        nv = cat.n_variants[np.where(titles >= 0, titles, 0)]
        pv = np.zeros((s.visit.size, V))
        for v in range(V):
            p = world.play_probability(vb, titles, np.minimum(v, nv - 1), row=row,
                                       position=pos, state=before)
            pv[:, v] = np.where(v < nv[s.visit, s.slot], p[s.visit, s.slot], 0.0)
        rows = ArtworkRows.from_pages(log.logged_pages(), cat.art_offset,
                                      world.members()["member_id"])
        if not np.allclose(pv[np.arange(len(rows)), rows.variant], s.p_play, rtol=0,
                           atol=1e-12):
            raise RuntimeError("per-variant play probabilities disagree with the log")
        parts.append(dataclasses.replace(rows, visit=rows.visit + offset))
        pv_parts.append(pv)
        offset += n
    rows = ArtworkRows(**{f.name: np.concatenate([getattr(r, f.name) for r in parts])
                          for f in dataclasses.fields(ArtworkRows)})
    return rows, np.concatenate(pv_parts), log


def replay_se(rows: ArtworkRows, p: np.ndarray, cluster: str) -> float:
    """SE of the replay (SNIPS) estimate with rows clustered by ``cluster``."""
    return SNIPS().estimate_policy_value(rows.feedback(p.shape[1], cluster=cluster), p).se


def run_seed(seed: int, preset: str, n_train: int, n_eval: int, sticky_eval: bool = False
             ) -> dict[str, object]:
    world = World(WorldConfig.preset(preset), seed=seed)
    cat = ArtworkCatalog.from_world(world)
    M = world.config.n_members
    t0 = time.perf_counter()
    train = ArtworkRows.from_pages(
        world.simulate(image_explore(UniformPolicy(), seed=seed), n_train,
                       seed=1000 + seed).logged_pages(), cat.art_offset,
        world.members()["member_id"])
    visits = world.draw_visits(n_eval, np.random.default_rng([2000 + seed, 1]))
    ev, p_var, _ = explore_with_variant_truth(
        world, cat, visits, image_explore(UniformPolicy(), seed=seed + 77, sticky=sticky_eval),
        2000 + seed)
    pols = make_policies(cat, M)
    fit_s = {}
    for name, pol in pols.items():
        if hasattr(pol, "fit"):
            t = time.perf_counter()
            pol.fit(train)
            fit_s[name] = time.perf_counter() - t
    reward_hat = model_reward_hat(pols["egreedy"], ev)   # fitted on the training log only
    logged = float(p_var[np.arange(len(ev)), ev.variant].mean())
    real = float(ev.play.mean())
    se_log = replay_se(ev, UniformArtwork(sticky=False).row_probabilities(ev), "member_title")
    out: dict[str, object] = {"seed": seed, "train_rows": len(train), "eval_rows": len(ev),
                              "fit_s": fit_s, "policies": {},
                              "eval_log": {"expected": logged, "realised": real,
                                           "realised_se": se_log}}
    for name in ORDER:
        pol = pols[name]
        p = pol.row_probabilities(ev)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OPEWarning)
            est = evaluate_artwork_policy(ev, p, ["replay", "ips", "dr"], reward_hat=reward_hat)
            se_rows = replay_se(ev, p, "row")
            se_member = replay_se(ev, p, "member")
        t = time.perf_counter()
        online = world.simulate(WithArtwork(UniformPolicy(), pol), n_eval, seed=2000 + seed)
        truth = online_take_fraction(online)
        out["policies"][name] = {
            "truth": truth.to_dict(), "online_s": time.perf_counter() - t,
            "same_log_truth": float((p * p_var).sum(axis=1).mean()),
            "replay_se_rows": se_rows, "replay_se_member": se_member,
            **{k: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "se": e.se}
               for k, e in est.items()}}
    out["seconds"] = time.perf_counter() - t0
    return out


def page_timing(preset: str, n_titles: int, reps: int) -> dict[str, dict[str, float]]:
    """Milliseconds to choose the images of one visit's page of ``n_titles`` titles (one
    thread): median and 95th percentile over ``reps`` calls, policies interleaved."""
    world = World(WorldConfig.preset(preset), seed=0)
    cat = ArtworkCatalog.from_world(world)
    rows = ArtworkRows.from_pages(
        world.simulate(image_explore(UniformPolicy()), 3_000, seed=5).logged_pages(),
        cat.art_offset, world.members()["member_id"])
    pols = make_policies(cat, world.config.n_members)
    vb = world.make_visits([7], world.config.start + 10 * 86_400 + 20 * 3600)
    titles = np.flatnonzero(vb.available[vb.country[0]])[:n_titles][None, :]
    if titles.shape[1] < n_titles:
        raise SystemExit(f"only {titles.shape[1]} titles available; use a larger preset")
    for pol in pols.values():
        if hasattr(pol, "fit"):
            pol.fit(rows)
    ts = pols["thompson"]
    mean, sd, valid = ts.posterior(vb.member, vb.device, titles)
    mu = np.where(valid, mean, -np.inf)[0]
    sd = np.where(valid, ts.config.noise * sd, 1.0)[0]
    calls = {name: (lambda pol=pol: pol.select(vb, titles, rng)) for name, pol in pols.items()}
    calls["thompson: propensities only"] = lambda: normal_argmax_probabilities(mu, sd)
    rng = np.random.default_rng(0)
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for f in calls.values():                                   # warm-up
        f()
    for _ in range(reps):
        for name, f in calls.items():
            c, t = time.thread_time(), time.perf_counter()
            f()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.thread_time() - c)
    return {name: {"median_ms": 1e3 * float(np.median(wall[name])),
                   "p95_ms": 1e3 * float(np.quantile(wall[name], 0.95)),
                   "cpu_median_ms": 1e3 * float(np.median(cpu[name])),
                   "cpu_min_ms": 1e3 * float(np.min(cpu[name]))} for name in calls}


def _log_z(run: dict) -> float:
    e = run["eval_log"]
    return (e["realised"] - e["expected"]) / e["realised_se"]


def fmt(x: float) -> str:
    return f"{x:.4f}"


def _covered(p: dict, value: float) -> bool:
    return p["replay"]["ci_low"] <= value <= p["replay"]["ci_high"]


def _coverage(runs: list[dict], key) -> tuple[int, int, str]:
    k = sum(_covered(r["policies"][n], key(r["policies"][n])) for r in runs for n in ORDER)
    n = len(runs) * len(ORDER)
    ci = binomtest(k, n).proportion_ci(0.95)
    return k, n, f"{k} of {n} ({100 * k / n:.0f} %, 95 % CI {100 * ci.low:.0f}-" \
                 f"{100 * ci.high:.0f} %)"


def report(runs: list[dict] | None, timing: dict | None, args: argparse.Namespace,
           command: str) -> str:
    lines = [header("Personalised artwork (contextual bandits)", command), ""]
    if runs:
        lines += report_runs(runs, args)
    if timing:
        lines += report_timing(timing, args)
    if runs:
        fit = {n: float(np.mean([r["fit_s"][n] for r in runs])) for n in runs[0]["fit_s"]}
        lines += ["", "Fit time (batch, cross-fitted features, "
                  f"{runs[0]['train_rows']:,} rows): "
                  + ", ".join(f"{n} {s:.1f} s" for n, s in fit.items()) + "."]
    return "\n".join(lines)


def report_runs(runs: list[dict], args: argparse.Namespace) -> list[str]:
    seeds = [r["seed"] for r in runs]
    lines = [
        f"World preset `{args.preset}`, seeds {seeds}. Per seed: train on an image-explore log "
        f"of {args.train_visits:,} visits (uniform title pages, uniformly random image per "
        f"member and title, sticky), replay on a fresh image-explore log of "
        f"{args.eval_visits:,} visits ("
        + ("sticky images" if args.sticky_eval else "the image redrawn at every impression")
        + "). **Online truth** = the policy run online on those same visits (frozen; "
        "histories from the training log): mean exact P(play) per impression, 95 % CI over "
        "visits. **Same-log truth** = the policy's exact expected take fraction on the replay "
        "log's own impressions (every variant's exact P(play) under the replay run's member "
        "state), which is what replay estimates on a non-sticky log. Take fraction = plays / "
        "impressions of the "
        "shown titles. Policies: `random` (uniform image), `best-image` (Thompson sampling on "
        "image-only features: the best single image per title, non-personalised), `egreedy` "
        "(epsilon 0.1), `linucb` (alpha 1), `thompson` (noise 0.25), the last three on "
        "member-history, community and context features."]
    lines += ["", "### Take fraction online (truth), mean over seeds", "",
              "| policy | mean | min seed | max seed | lift vs random | lift vs best-image |",
              "|---|---|---|---|---|---|"]
    mean = {n: float(np.mean([r["policies"][n]["truth"]["value"] for r in runs]))
            for n in ORDER}
    for n in ORDER:
        v = [r["policies"][n]["truth"]["value"] for r in runs]
        lines.append(f"| {n} | {fmt(mean[n])} | {fmt(min(v))} | {fmt(max(v))} | "
                     f"{100 * (mean[n] / mean['random'] - 1):+.1f} % | "
                     f"{100 * (mean[n] / mean['best-image'] - 1):+.1f} % |")
    pairs = (("thompson", "best-image"), ("linucb", "best-image"), ("egreedy", "best-image"),
             ("best-image", "random"))
    lines += ["", "Differences (online truth, 95 % CI, runs treated as independent), per seed:",
              "", "| seed | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |",
              "|---|" + "---|" * len(pairs)]
    for r in runs:
        cells = []
        for a, b in pairs:
            ta, tb = r["policies"][a]["truth"], r["policies"][b]["truth"]
            d, se = ta["value"] - tb["value"], math.hypot(ta["se"], tb["se"])
            cells.append(f"{d:+.4f} ± {1.96 * se:.4f}")
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "### Offline estimates vs the truths (all seeds)", "",
              "| policy | seed | online truth | same-log truth | replay [95 % CI] | IPS | DR | "
              "z vs same-log | in CI: online / same-log |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for n in ORDER:
            p = r["policies"][n]
            tv, sv = p["truth"]["value"], p["same_log_truth"]
            rp = p["replay"]
            z = (rp["value"] - sv) / rp["se"]
            lines.append(
                f"| {n} | {r['seed']} | {fmt(tv)} | {fmt(sv)} | {fmt(rp['value'])} "
                f"[{fmt(rp['ci_low'])}, {fmt(rp['ci_high'])}] | {fmt(p['ips']['value'])} | "
                f"{fmt(p['dr']['value'])} | {z:+.2f} | "
                f"{'yes' if _covered(p, tv) else 'NO'} / {'yes' if _covered(p, sv) else 'NO'} |")
    _, _, online = _coverage(runs, lambda p: p["truth"]["value"])
    _, _, same = _coverage(runs, lambda p: p["same_log_truth"])
    zs = np.array([(r["policies"][n]["replay"]["value"] - r["policies"][n]["same_log_truth"])
                   / r["policies"][n]["replay"]["se"] for r in runs for n in ORDER])
    gap = np.array([r["policies"][n]["truth"]["value"] - r["policies"][n]["same_log_truth"]
                    for r in runs for n in ORDER])
    gap_se = np.array([r["policies"][n]["replay"]["se"] for r in runs for n in ORDER])
    ratio_mt = np.array([r["policies"][n]["replay"]["se"] / r["policies"][n]["replay_se_rows"]
                         for r in runs for n in ORDER])
    ratio_m = np.array([r["policies"][n]["replay_se_member"] / r["policies"][n]["replay_se_rows"]
                        for r in runs for n in ORDER])
    log_z = ", ".join(f"{_log_z(r):+.1f}" for r in runs)
    lines += [
        "", f"**Coverage of the 95 % replay interval**: online truth {online}; same-log truth "
        f"{same}. Replay minus same-log truth in replay SEs: mean {zs.mean():+.2f}, sd "
        f"{zs.std(ddof=1):.2f} (N(0, 1) if the interval is right). Online minus same-log "
        f"truth: mean {gap.mean():+.5f}, sd {gap.std(ddof=1):.5f} (replay SE "
        f"{gap_se.mean():.5f}): the online run has its own pages and member states. "
        "The five policies of a seed are replayed on one log and share its play noise: "
        f"realised minus expected take fraction of each replay log, in replay SEs: {log_z}. "
        "The replay interval is cluster-robust by member x title (the sticky image-explore "
        "assignment); its SE is "
        f"{ratio_mt.min():.2f}-{ratio_mt.max():.2f}x the SE that treats impressions as "
        f"independent (clustered by member: {ratio_m.min():.2f}-{ratio_m.max():.2f}x)."]
    return lines


def report_timing(timing: dict, args: argparse.Namespace) -> list[str]:
    lines = ["", "### Choosing the images of a page",
             "", f"One visit, a page of {args.page_titles} titles of the `{args.timing_preset}` "
             f"world (3-8 variants each), {args.reps} calls per policy, policies interleaved, "
             "one thread (`pin_threads(1)`), `select`: features + posterior + propensities + "
             "draw. `thompson: propensities only` times `normal_argmax_probabilities` on that "
             "page's posterior. Wall-clock median and 95th percentile, and the thread's CPU "
             "time (median, minimum; less sensitive to other jobs on the machine). Target: "
             "<= 2 ms per page.", "",
             "| policy | median ms | p95 ms | CPU median ms | CPU min ms |",
             "|---|---:|---:|---:|---:|"]
    for n, t in timing.items():
        lines.append(f"| {n} | {t['median_ms']:.2f} | {t['p95_ms']:.2f} | "
                     f"{t['cpu_median_ms']:.2f} | {t['cpu_min_ms']:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(20)))
    ap.add_argument("--train-visits", type=int, default=80_000)
    ap.add_argument("--eval-visits", type=int, default=10_000)
    ap.add_argument("--timing-preset", default="default")
    ap.add_argument("--page-titles", type=int, default=200)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--sticky-eval", action="store_true",
                    help="replay on a sticky image-explore log (one image per member and title)")
    ap.add_argument("--skip-eval", action="store_true", help="page timing only")
    ap.add_argument("--skip-timing", action="store_true", help="offline evaluation only")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--json", default="benchmarks/results/artwork.json")
    args = ap.parse_args()
    command = ".venv/bin/python benchmarks/bench_artwork.py " + " ".join(sys.argv[1:])
    runs = []
    for s in [] if args.skip_eval else args.seeds:
        runs.append(run_seed(s, args.preset, args.train_visits, args.eval_visits,
                             args.sticky_eval))
        print(f"seed {s}: {runs[-1]['seconds']:.1f} s", flush=True)
        for n in ORDER:
            p = runs[-1]["policies"][n]
            print(f"  {n:10s} truth {p['truth']['value']:.4f}  same-log "
                  f"{p['same_log_truth']:.4f}  replay {p['replay']['value']:.4f}"
                  f" [{p['replay']['ci_low']:.4f}, {p['replay']['ci_high']:.4f}]", flush=True)
    timing = None if args.skip_timing else page_timing(args.timing_preset, args.page_titles,
                                                         args.reps)
    if timing:
        print(json.dumps(timing, indent=1))
    body = report(runs, timing, args, command.strip())
    write_section(args.out, "artwork", body)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"runs": runs, "timing": timing}, indent=1))
    print(body)


if __name__ == "__main__":
    main()
