"""IV you can trust: do the Wald intervals of 2SLS and SGD-IV, and the Anderson-Rubin sets, cover
the true effect over random confounding and instrument strengths?

Two families of problems, each drawn from its own seed sequence (``--seed``; never used
elsewhere in the repo):

* ``linear``: linear-Gaussian IV with random n, number of instruments, confounding
  (correlation of the first- and second-stage errors), instrument strength (concentration
  log-uniform), heteroskedasticity and true effect; two dense controls; HC1.
* ``world``: the simulated world (``reelpick.world``, preset ``small``) logged by
  ``PromotionPolicy`` with random mood confounding and random promotion-cell effect (the
  instrument); truth = mean true uplift of a series impression; ``visit_design`` rows, CR1 by
  member (SGD-IV adds member effects, as ``bench_causal.py``).

Each interval is scored against the truth and split by that estimator's own first-stage
(effective) F: >= 20 vs < 20 (and < 10).

Run: ``.venv/bin/python benchmarks/bench_iv_robust.py`` (``--quick`` for a smoke run); writes
the ``iv_robust`` section of BENCHMARKS.md (``--json PATH`` also writes every draw).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # explicitly one thread, before numpy is imported

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from reelpick.causal import (  # noqa: E402
    ConvergenceWarning,
    WeakInstrumentWarning,
    two_stage_least_squares,
)
from reelpick.causal.instruments import Logs, visit_design  # noqa: E402
from reelpick.causal.sgd import SGDIV, ArrayBatches  # noqa: E402
from reelpick.world import PromotionPolicy, World, WorldConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = 180_418  # root of both seed sequences: [SEED, i] (linear), [SEED + 1, i] (world)
WORLD_BASE = dict(uplift_bias=-4.0, recent_weight=0.0, seen_penalty=0.0, drift=0.0)
STRONG = 20.0


def _score(res, truth: float, name: str) -> dict:
    ci = res.conf_int().loc[name]
    ar = res.ar_ci
    return {"est": float(res.params[name]), "se": float(res.std_errors[name]),
            "f": float(res.first_stage_f[name]),
            "wald": bool(ci["lower"] <= truth <= ci["upper"]),
            "ar": bool(ar.contains(truth)), "ar_kind": ar.kind, "ar_bounded": ar.bounded}


def _sgd(src, cov_type: str, truth: float, name: str, **kw) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as "converged"
        est = SGDIV(cov_type=cov_type, **kw).fit(src)
    return dict(_score(est.result_, truth, name), epochs=est.n_epochs_,
                converged=est.converged_)


def linear_draw(i: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, i])
    n = int(rng.choice([100, 300, 1000, 3000]))
    q = int(rng.choice([1, 1, 3]))
    rho = float(rng.uniform(-0.95, 0.95))
    strength = float(np.exp(rng.uniform(math.log(0.3), math.log(300.0))))  # mu^2 / q
    het = float(rng.uniform(0.0, 0.5))
    beta = float(rng.uniform(-1.0, 1.0))
    pi = math.sqrt(strength / n)
    z = rng.normal(size=(n, q))
    w = rng.normal(size=(n, 2))
    e = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    d = z @ np.full(q, pi) + 0.3 * w.sum(axis=1) + e[:, 0]
    y = beta * d - 0.5 * w.sum(axis=1) + np.exp(het * z[:, 0]) * e[:, 1]
    row = {"i": i, "n": n, "q": q, "rho": rho, "strength": strength, "het": het, "truth": beta}
    row["2sls"] = _score(two_stage_least_squares(y, d, z, w, cov_type="HC1"), beta, "d0")
    src = ArrayBatches(y, d, z, dense=w, batch_size=max(32, n // 8))
    row["sgdiv"] = _sgd(src, "HC1", beta, "d0")
    row["sgdiv_e3"] = _sgd(src, "HC1", beta, "d0", epochs=3)
    return row


def world_draw(i: int, seed: int) -> dict:
    rng = np.random.default_rng([seed + 1, i])
    cfg = dict(WORLD_BASE, mood_rate=float(rng.uniform(0.1, 0.4)),
               mood_series_logit=float(rng.uniform(0.5, 3.0)),
               mood_search_rate=float(rng.uniform(0.5, 0.95)))
    pol = PromotionPolicy(mood_effect=float(rng.uniform(0.5, 3.0)),
                          cell_effect=float(np.exp(rng.uniform(math.log(0.02), math.log(2.0)))))
    visits = int(rng.choice([5_000, 10_000, 20_000]))
    world = World(WorldConfig.preset("small", **cfg), seed=int(rng.integers(2**31)))
    log = world.simulate(pol, n_visits=visits, seed=int(rng.integers(2**31)))
    ser = world.entities.is_series
    tau = float(log.shown.uplift[ser[log.shown.title]].mean())
    des = visit_design(Logs.from_simulation(log, world.titles()), treat="kind:series")
    y, d, z, w = des.frames()
    row = {"i": i, "visits": visits, "truth": tau, "cfg": cfg,
           "mood_effect": pol.mood_effect, "cell_effect": pol.cell_effect}
    res = two_stage_least_squares(y, d, z, w, cov_type="CR1", clusters=des.clusters)
    row["2sls"] = _score(res, tau, "exposure")
    members = np.unique(des.clusters, return_inverse=True)[1]
    src = ArrayBatches(des.y, des.endog, des.instruments, dense=des.controls,
                       categorical=members, clusters=members, batch_size=1_024)
    row["sgdiv"] = _sgd(src, "CR1", tau, "d0")
    # the default before the convergence check: 3 epochs of 5-20 batches under-fit here
    row["sgdiv_e3"] = _sgd(src, "CR1", tau, "d0", epochs=3)
    return row


NOTE = ("Why SGD-IV with a fixed 3 epochs (its default before the convergence check) misses "
        "on the world logs (checked by hand on three of the missed strong draws, i = 4, 12, "
        "17): 5k-20k visits in batches of 1,024 give only 15-60 Adagrad steps, and the "
        "nuisance regressions of exposure and cell stay under-fitted (in-sample R² -0.06 / "
        "0.00 / 0.04 against 0.08 / 0.02 / 0.07 after 30 epochs). The final moment is "
        "orthogonal to *small* nuisance errors only, and these errors are fitted on the same "
        "rows, so the estimate moves (draw 4: 0.0668 ± 0.0044 against 0.0395 ± 0.0064 for "
        "closed-form 2SLS with member fixed effects; truth 0.0316) and its standard error "
        "shrinks; the AR set, built from the same residuals, moves with it. The default now "
        "runs epochs until no stage loss improves by more than 0.1% over an epoch (draw 4: 16 "
        "epochs, 0.0396 ± 0.0064) and warns (`ConvergenceWarning`) when a fixed epoch count "
        "stops it earlier. The dense controls alone show it: without member effects, 3 epochs "
        "gave 0.0632 ± 0.0045 against 0.0386 ± 0.0065 for 2SLS with the same controls (rows in "
        "time order, so a minibatch holds a day or two and the day-of-week coefficients get "
        "few useful steps; `tests/causal/test_sgd.py` reproduces this on a synthetic "
        "time-ordered panel).")


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p, z = k / n, 1.959964
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mid - half, mid + half


NAMES = {"2sls": "2SLS", "sgdiv": "SGD-IV (default: until converged)",
         "sgdiv_e3": "SGD-IV (fixed 3 epochs)"}
SPLITS = ((f"F >= {STRONG:g}", lambda r, e: r[e]["f"] >= STRONG),
          (f"F < {STRONG:g}", lambda r, e: r[e]["f"] < STRONG),
          ("F < 10", lambda r, e: r[e]["f"] < 10),
          ("F < 10, abs(rho) >= 0.8", lambda r, e: r[e]["f"] < 10 and abs(r["rho"]) >= 0.8),
          ("all", lambda r, e: True))


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for est in [e for e in NAMES if e in rows[0]]:
        for label, keep in SPLITS:
            if "rho" in label and "rho" not in rows[0]:
                continue
            sel = [r[est] for r in rows if keep(r, est)]
            cell = {"estimator": est, "split": label, "n": len(sel)}
            for key in ("wald", "ar", "ar_bounded"):
                k = sum(s[key] for s in sel)
                cell[key] = k / len(sel) if sel else math.nan
                cell[key + "_ci"] = wilson(k, len(sel))
            if sel and "epochs" in sel[0]:
                cell["epochs_median"] = float(np.median([s["epochs"] for s in sel]))
                cell["converged"] = float(np.mean([s["converged"] for s in sel]))
            out.append(cell)
    return out


def table(cells: list[dict]) -> list[str]:
    name = NAMES
    lines = ["| estimator | first-stage F | draws | Wald coverage [95% CI] | "
             "AR coverage [95% CI] | AR bounded | SGD epochs (median), converged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    f = lambda c, k: (f"{100 * c[k]:.1f}% [{100 * c[k + '_ci'][0]:.1f}, "  # noqa: E731
                      f"{100 * c[k + '_ci'][1]:.1f}]" if c["n"] else "–")
    for c in cells:
        bounded = f"{100 * c['ar_bounded']:.0f}%" if c["n"] else "–"
        ep = (f"{c['epochs_median']:g}, {100 * c['converged']:.0f}%" if "epochs_median" in c
              else "–")
        lines.append(f"| {name[c['estimator']]} | {c['split']} | {c['n']} | {f(c, 'wald')} | "
                     f"{f(c, 'ar')} | {bounded} | {ep} |")
    return lines


def verdict(cells: list[dict], family: str) -> str:
    parts = []
    for c in cells:
        if c["split"] == f"F >= {STRONG:g}" and c["n"]:
            ok = c["wald"] >= 0.93
            parts.append(f"{NAMES[c['estimator']]} Wald {100 * c['wald']:.1f}% over "
                         f"{c['n']} strong draws: {'meets' if ok else 'MISSES'} the 93% target")
    return f"{family}: " + "; ".join(parts) + "."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=4000, help="random linear-Gaussian problems")
    ap.add_argument("--worlds", type=int, default=80, help="random world configurations")
    ap.add_argument("--seed", type=int, default=SEED, help="root of the seed sequences")
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 draws, 3 worlds")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--json", default=None, help="also write every draw here")
    a = ap.parse_args()
    if a.quick:
        a.draws, a.worlds = min(a.draws, 100), min(a.worlds, 3)
    cmd = " ".join([".venv/bin/python", "benchmarks/bench_iv_robust.py", *sys.argv[1:]])
    warnings.simplefilter("ignore", WeakInstrumentWarning)  # the split by F says it
    t0 = time.time()
    lin = [linear_draw(i, a.seed) for i in range(a.draws)]
    t_lin = time.time() - t0
    t0 = time.time()
    worlds = [world_draw(i, a.seed) for i in range(a.worlds)]
    t_world = time.time() - t0
    s_lin, s_world = summary(lin), summary(worlds)
    for fam, cells in (("linear", s_lin), ("world", s_world)):
        print(f"\n{fam}")
        print("\n".join(table(cells)))
    print(f"\n{t_lin:.0f} s linear, {t_world:.0f} s world")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"command": cmd, "seed": a.seed, "linear": lin,
                                            "world": worlds, "summary_linear": s_lin,
                                            "summary_world": s_world,
                                            "seconds": {"linear": t_lin, "world": t_world}}))
    f_lin = np.array([r["2sls"]["f"] for r in lin])
    f_w = np.array([r["2sls"]["f"] for r in worlds])
    lines = [header("IV you can trust: Wald vs Anderson-Rubin coverage", cmd), "",
             f"**Linear-Gaussian IV**: {a.draws} random problems (seed sequence "
             f"[{a.seed}, i]): n in {{100, 300, 1000, 3000}}, q in {{1, 1, 3}} instruments, "
             "error correlation (confounding) U(-0.95, 0.95), concentration per instrument "
             "log-uniform on [0.3, 300], heteroskedasticity exp(h z1), h ~ U(0, 0.5), effect "
             "U(-1, 1), two dense controls; HC1. SGD-IV: batches of n/8, epochs until converged "
             "(default, tol 1e-3) or a fixed 3. 2SLS "
             f"effective F: median {np.median(f_lin):.1f}, {np.mean(f_lin >= STRONG):.0%} of "
             f"draws >= {STRONG:g}. {t_lin:.0f} s.", "", *table(s_lin), "",
             f"**Simulated world**: {a.worlds} random configurations (seed sequence "
             f"[{a.seed + 1}, i]) of preset `small` with {WORLD_BASE}, mood_rate U(0.1, 0.4), "
             "mood_series_logit U(0.5, 3), mood_search_rate U(0.5, 0.95), "
             "`PromotionPolicy(mood_effect ~ U(0.5, 3), cell_effect ~ log-U(0.02, 2))`, "
             "5k/10k/20k visits. Truth = mean true uplift of a series impression; `visit_design`"
             " rows, CR1 by member (SGD-IV with member effects, batches of 1,024, epochs until "
             "converged or a fixed 3). 2SLS "
             f"effective F: median {np.median(f_w):.1f}, {np.mean(f_w >= STRONG):.0%} >= "
             f"{STRONG:g}. {t_world:.0f} s.", "", *table(s_world), "",
             "Coverage = share of draws whose 95% set contains the truth (Wilson 95% CI). "
             "Split by each estimator's own effective first-stage F (Montiel Olea-Pflueger; "
             "= the robust F with one instrument). AR = Anderson-Rubin set of the same fit and "
             "covariance type; 'AR bounded' = share of those sets that are a bounded "
             "interval.", "",
             verdict(s_lin, "Linear"), "", verdict(s_world, "World"), "", NOTE]
    write_section(a.out, "iv_robust", "\n".join(lines))
    print(f"wrote {a.out} (section iv_robust)" + (f" and {a.json}" if a.json else ""))


if __name__ == "__main__":
    main()
