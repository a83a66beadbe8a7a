"""Personalised artwork on the simulator: take fraction of contextual bandits vs the best single
image per title vs random, replay vs the online truth, and the time to choose a page's images.

Per seed: a world; an image-explore log (uniform title pages, a uniformly random image per
member and title) to train on; a second image-explore log (fresh visits) to replay on; and each
policy run online on those same visits (frozen, with the member histories of the training log)
for the truth: the mean of the world's exact play probability per impression, CI over visits.

Run: ``.venv/bin/python benchmarks/bench_artwork.py`` (writes the ``artwork`` section of
BENCHMARKS.md and ``benchmarks/results/artwork.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

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
    online_take_fraction,
)
from reelpick.ope import OPEWarning  # noqa: E402
from reelpick.policies import UniformPolicy  # noqa: E402
from reelpick.world import World, WorldConfig  # noqa: E402

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


def run_seed(seed: int, preset: str, n_train: int, n_eval: int) -> dict[str, object]:
    world = World(WorldConfig.preset(preset), seed=seed)
    cat = ArtworkCatalog.from_world(world)
    M = world.config.n_members
    t0 = time.perf_counter()
    train = ArtworkRows.from_log(
        world.simulate(image_explore(UniformPolicy(), seed=seed), n_train, seed=1000 + seed),
        cat.art_offset)
    ev_log = world.simulate(image_explore(UniformPolicy(), seed=seed + 77), n_eval,
                            seed=2000 + seed)
    ev = ArtworkRows.from_log(ev_log, cat.art_offset)
    pols = make_policies(cat, M)
    fit_s = {}
    for name, pol in pols.items():
        if hasattr(pol, "fit"):
            t = time.perf_counter()
            pol.fit(train)
            fit_s[name] = time.perf_counter() - t
    reward_hat = model_reward_hat(pols["egreedy"], ev)   # fitted on the training log only
    exp_ev, real_ev = online_take_fraction(ev_log), online_take_fraction(ev_log, use_truth=False)
    out: dict[str, object] = {"seed": seed, "train_rows": len(train), "eval_rows": len(ev),
                              "fit_s": fit_s, "policies": {},
                              "eval_log": {"expected": exp_ev.value, "realised": real_ev.value,
                                           "realised_se": real_ev.se}}
    for name in ORDER:
        pol = pols[name]
        p = pol.row_probabilities(ev)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OPEWarning)
            est = evaluate_artwork_policy(ev, p, ["replay", "ips", "dr"], reward_hat=reward_hat)
        t = time.perf_counter()
        online = world.simulate(WithArtwork(UniformPolicy(), pol), n_eval, seed=2000 + seed)
        truth = online_take_fraction(online)
        out["policies"][name] = {
            "truth": truth.to_dict(), "online_s": time.perf_counter() - t,
            **{k: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "se": e.se}
               for k, e in est.items()}}
    out["seconds"] = time.perf_counter() - t0
    return out


def page_timing(preset: str, n_titles: int, reps: int) -> dict[str, dict[str, float]]:
    """Median ms to choose the images of one visit's page of ``n_titles`` titles (1 thread)."""
    world = World(WorldConfig.preset(preset), seed=0)
    cat = ArtworkCatalog.from_world(world)
    rows = ArtworkRows.from_log(world.simulate(image_explore(UniformPolicy()), 3_000, seed=5),
                                cat.art_offset)
    pols = make_policies(cat, world.config.n_members)
    vb = world.make_visits([7], world.config.start + 10 * 86_400 + 20 * 3600)
    titles = np.flatnonzero(vb.available[vb.country[0]])[:n_titles][None, :]
    if titles.shape[1] < n_titles:
        raise SystemExit(f"only {titles.shape[1]} titles available; use a larger preset")
    rng = np.random.default_rng(0)
    res = {}
    for name, pol in pols.items():
        if hasattr(pol, "fit"):
            pol.fit(rows)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            pol.select(vb, titles, rng)
            times.append(time.perf_counter() - t)
        res[name] = {"median_ms": 1e3 * float(np.median(times)),
                     "p90_ms": 1e3 * float(np.quantile(times, 0.9))}
    return res


def _log_z(run: dict) -> float:
    e = run["eval_log"]
    return (e["realised"] - e["expected"]) / e["realised_se"]


def fmt(x: float) -> str:
    return f"{x:.4f}"


def report(runs: list[dict], timing: dict, args: argparse.Namespace, command: str) -> str:
    seeds = [r["seed"] for r in runs]
    lines = [header("Personalised artwork (contextual bandits)", command), ""]
    lines.append(
        f"World preset `{args.preset}`, seeds {seeds}. Per seed: train on an image-explore log "
        f"of {args.train_visits:,} visits (uniform title pages, uniformly random image per "
        f"member and title), replay on a fresh image-explore log of {args.eval_visits:,} "
        "visits, truth = the policy run online on those same visits (frozen; histories from "
        "the training log): mean exact P(play) per impression, 95 % CI over visits. Take "
        "fraction = plays / impressions of the shown titles. Policies: `random` (uniform "
        "image), `best-image` (Thompson sampling on image-only features: the best single image "
        "per title, non-personalised), `egreedy` (epsilon 0.1), `linucb` (alpha 1), `thompson` "
        "(noise 0.25), the last three on member-history, community and context features.")
    lines += ["", "### Take fraction online (truth), per seed: value [95 % CI]", "",
              "| policy | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | lift vs "
              "random | lift vs best-image |",
              "|---|" + "---|" * (len(seeds) + 3)]
    mean = {n: float(np.mean([r["policies"][n]["truth"]["value"] for r in runs]))
            for n in ORDER}
    for n in ORDER:
        cells = []
        for r in runs:
            t = r["policies"][n]["truth"]
            cells.append(f"{fmt(t['value'])} [{fmt(t['ci_low'])}, {fmt(t['ci_high'])}]")
        lift_r = 100 * (mean[n] / mean["random"] - 1)
        lift_b = 100 * (mean[n] / mean["best-image"] - 1)
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {fmt(mean[n])} | "
                     f"{lift_r:+.1f} % | {lift_b:+.1f} % |")
    lines += ["", "Differences per seed (online truth, 95 % CI, runs treated as independent):",
              "", "| comparison | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---|" * len(seeds)]
    for a, b in (("thompson", "best-image"), ("linucb", "best-image"),
                 ("egreedy", "best-image"), ("best-image", "random")):
        cells = []
        for r in runs:
            ta, tb = r["policies"][a]["truth"], r["policies"][b]["truth"]
            d, se = ta["value"] - tb["value"], math.hypot(ta["se"], tb["se"])
            cells.append(f"{d:+.4f} ± {1.96 * se:.4f}")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    lines += ["", "### Offline estimates vs the online truth (all seeds)", "",
              "| policy | seed | truth | replay [95 % CI] | IPS [95 % CI] | DR [95 % CI] | "
              "truth in replay CI |", "|---|---|---|---|---|---|---|"]
    inside = total = 0
    for r in runs:
        for n in ORDER:
            p = r["policies"][n]
            tv = p["truth"]["value"]
            ok = p["replay"]["ci_low"] <= tv <= p["replay"]["ci_high"]
            inside += ok
            total += 1
            cell = {k: f"{fmt(p[k]['value'])} [{fmt(p[k]['ci_low'])}, {fmt(p[k]['ci_high'])}]"
                    for k in ("replay", "ips", "dr")}
            lines.append(f"| {n} | {r['seed']} | {fmt(tv)} | {cell['replay']} | {cell['ips']} "
                         f"| {cell['dr']} | {'yes' if ok else 'NO'} |")
    lines += ["", f"The truth lies inside the replay's 95 % CI in {inside} of {total} cases. "
              "The online truth's own CI (±~0.0004) is about 5x narrower than the replay's "
              "(replay keeps only the 1/n_variants of rows whose image matches); the "
              "target is read as the replay CI covering the truth. Sampling noise of the "
              "replay log itself (shared by every policy replayed on it): realised vs expected "
              "take fraction of the image-explore log, in visit-clustered SEs: "
              + ", ".join(f"seed {r['seed']} {_log_z(r):+.1f}" for r in runs) + ".", ""]
    lines += ["### Choosing the images of a page",
              "", f"One visit, a page of {args.page_titles} titles of the `{args.timing_preset}` "
              f"world (3-8 variants each), {args.reps} repetitions, one thread "
              "(`pin_threads(1)`), features + posterior + propensities + draw. Shared 2-core "
              "machine with other jobs running: timings are pessimistic.", "",
              "| policy | median ms | p90 ms |", "|---|---:|---:|"]
    for n in ORDER:
        lines.append(f"| {n} | {timing[n]['median_ms']:.2f} | {timing[n]['p90_ms']:.2f} |")
    fit = {n: float(np.mean([r["fit_s"][n] for r in runs])) for n in runs[0]["fit_s"]}
    lines += ["", "Fit time (batch, cross-fitted features, "
              f"{runs[0]['train_rows']:,} rows): "
              + ", ".join(f"{n} {s:.1f} s" for n, s in fit.items()) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-visits", type=int, default=40_000)
    ap.add_argument("--eval-visits", type=int, default=10_000)
    ap.add_argument("--timing-preset", default="default")
    ap.add_argument("--page-titles", type=int, default=200)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--json", default="benchmarks/results/artwork.json")
    args = ap.parse_args()
    command = ".venv/bin/python benchmarks/bench_artwork.py " + " ".join(sys.argv[1:])
    runs = []
    for s in args.seeds:
        runs.append(run_seed(s, args.preset, args.train_visits, args.eval_visits))
        print(f"seed {s}: {runs[-1]['seconds']:.1f} s", flush=True)
        for n in ORDER:
            p = runs[-1]["policies"][n]
            print(f"  {n:10s} truth {p['truth']['value']:.4f}  replay {p['replay']['value']:.4f}"
                  f" [{p['replay']['ci_low']:.4f}, {p['replay']['ci_high']:.4f}]", flush=True)
    timing = page_timing(args.timing_preset, args.page_titles, args.reps)
    print(json.dumps(timing, indent=1))
    body = report(runs, timing, args, command.strip())
    write_section(args.out, "artwork", body)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"runs": runs, "timing": timing}, indent=1))
    print(body)


if __name__ == "__main__":
    main()
