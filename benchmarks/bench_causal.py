"""Causal estimators on the simulated world with its confounder on, and SGD-IV at scale.

Run: ``.venv/bin/python benchmarks/bench_causal.py`` (``--quick`` for a smoke run). Writes the
``causal`` section of BENCHMARKS.md, ``benchmarks/results/causal.json`` and
``docs/img/causal_offline_online.png`` (when matplotlib is installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from reelpick.causal import ols, two_stage_least_squares  # noqa: E402
from reelpick.causal.instruments import Logs, visit_design  # noqa: E402
from reelpick.causal.learners import TLearnerUplift  # noqa: E402
from reelpick.causal.sgd import SGDIV, ArrayBatches, IVBatch  # noqa: E402
from reelpick.causal.uplift import (  # noqa: E402
    MISMATCH_WORLD,
    UpliftPolicy,
    offline_hit_rates,
)
from reelpick.policies import GreedyPolicy, UniformPolicy  # noqa: E402
from reelpick.world import (  # noqa: E402
    PromotionPolicy,  # noqa: E402
    World,
    WorldConfig,
)

ROOT = Path(__file__).resolve().parents[1]
# The confounder's strength (binge mood: organic series plays and series promotion) and the
# instrument's (promotion cell) were chosen on seeds 100-104 (OLS +48..+65 %, 2SLS within 4 % at
# 100k visits); the table reports seeds 0-4.
IV_CFG = dict(uplift_bias=-4.0, recent_weight=0.0, seen_penalty=0.0, drift=0.0,
              mood_series_logit=3.0, mood_search_rate=0.95)
IV_POLICY = dict(mood_effect=3.0, cell_effect=3.0)
KNOB_OFF = {**MISMATCH_WORLD, "organic_popularity_weight": 0.0, "saturation": 0.0}


def iv_seed(seed: int, visits: int) -> dict:
    world = World(WorldConfig.preset("small", **IV_CFG), seed=seed)
    log = world.simulate(PromotionPolicy(**IV_POLICY), n_visits=visits, seed=seed + 100)
    ser = world.entities.is_series
    tau = float(log.shown.uplift[ser[log.shown.title]].mean())
    des = visit_design(Logs.from_simulation(log, world.titles()), treat="kind:series")
    y, d, z, w = des.frames()
    row = {"seed": seed, "visits": visits, "truth": tau}
    for name, res in (
        ("ols", ols(y, d, w, cov_type="CR1", clusters=des.clusters)),
        ("2sls", two_stage_least_squares(y, d, z, w, cov_type="CR1", clusters=des.clusters)),
    ):
        ci = res.conf_int().loc["exposure"]
        row[name] = {"est": float(res.params["exposure"]), "se": float(res.std_errors[
            "exposure"]), "covers": bool(ci["lower"] < tau < ci["upper"])}
    members = np.unique(des.clusters, return_inverse=True)[1]
    src = ArrayBatches(des.y, des.endog, des.instruments, dense=des.controls,
                       categorical=members, clusters=members, batch_size=4_096)
    r = SGDIV(epochs=3, cov_type="CR1").fit(src).result_
    ci = r.conf_int().loc["d0"]
    row["sgdiv"] = {"est": float(r.params["d0"]), "se": float(r.std_errors["d0"]),
                    "covers": bool(ci["lower"] < tau < ci["upper"])}
    for k in ("ols", "2sls", "sgdiv"):
        row[k]["rel_err"] = row[k]["est"] / tau - 1
    return row


class TrueUplift:
    """Oracle scorer: the world's true uplift of showing each title in the top slot."""

    def __init__(self, world: World) -> None:
        self.world = world

    def score(self, visits):
        T = visits.catalog.n_titles
        return self.world.uplift(visits, np.tile(np.arange(T), (len(visits), 1)))


def uplift_seed(seed: int, overrides: dict, train: int, test: int, value_visits: int,
                oracle: bool = True) -> dict:
    world = World(WorldConfig.preset("small", **overrides), seed=seed)
    t0 = time.perf_counter()
    tr = Logs.from_simulation(world.simulate(UniformPolicy(), train, seed=seed), world.titles())
    te = Logs.from_simulation(world.simulate(UniformPolicy(), test, seed=seed + 1000),
                              world.titles())
    t1 = time.perf_counter()
    model = TLearnerUplift().fit(tr)
    t2 = time.perf_counter()
    hr = offline_hit_rates(model, te, k=world.config.n_slots)
    out = {"seed": seed, "fit_s": t2 - t1, "simulate_s": t1 - t0}
    for score in ("uplift", "play"):
        pol = UpliftPolicy.for_world(model, world, score=score)
        v = world.policy_value(pol, n_visits=value_visits, seed=seed + 2000)
        out[score] = {"online_incremental": v.incremental_plays,
                      "online_se": v.incremental_plays_se,
                      "offline_hit_rate": hr[score].rate, "offline_se": hr[score].se,
                      "offline_n": hr[score].n}
    out["uniform_online"] = world.policy_value(UniformPolicy(), value_visits,
                                               seed=seed + 2000).incremental_plays
    if oracle:
        out["oracle_online"] = world.policy_value(GreedyPolicy(TrueUplift(world)),
                                                  value_visits,
                                                  seed=seed + 2000).incremental_plays
    out["gain"] = out["uplift"]["online_incremental"] / out["play"]["online_incremental"] - 1
    out["hr_gap"] = out["play"]["offline_hit_rate"] - out["uplift"]["offline_hit_rate"]
    out["eval_s"] = time.perf_counter() - t2
    return out


def mean_ci(x: list[float]) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95 % t interval."""
    from scipy.stats import t

    a = np.asarray(x, dtype=float)
    if a.size < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(t.ppf(0.975, a.size - 1) * a.std(ddof=1) / np.sqrt(a.size))


class Synthetic:
    """10M-row confounded panel generated batch by batch (same rows on every pass)."""

    def __init__(self, n: int, batch: int = 65_536, members: int = 1_000_000,
                 titles: int = 20_000) -> None:
        self.n, self.batch, self.members, self.titles = n, batch, members, titles
        self.n_ids = members + titles
        self.endog_names, self.instrument_names = ("d0",), ("z0",)
        r = np.random.default_rng(0)
        self.fm, self.ft = r.normal(size=members), r.normal(size=titles)

    def __iter__(self):
        for i, lo in enumerate(range(0, self.n, self.batch)):
            b = min(self.batch, self.n - lo)
            r = np.random.default_rng([1, i])
            m, t = r.integers(0, self.members, b), r.integers(0, self.titles, b)
            x = r.normal(size=(b, 4))
            u = r.normal(size=b)
            z = r.binomial(1, 0.5, b).astype(float)
            d = 0.8 * z + u + self.fm[m] + 0.5 * self.ft[t] + x[:, 0] + r.normal(size=b)
            y = 0.5 * d + u + 2 * self.fm[m] - self.ft[t] + 0.3 * x[:, 1] + r.normal(size=b)
            yield IVBatch(y, d[:, None], z[:, None], x, np.column_stack([m, self.members + t]))


def _hwm_mib() -> float:
    """Peak resident memory of this process (VmHWM; reset at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sgd_scale(n: int) -> dict:
    base = _hwm_mib()
    src = Synthetic(n)
    t0 = time.perf_counter()
    est = SGDIV(epochs=3, cov_type="HC1").fit(src)
    secs = time.perf_counter() - t0
    r = est.result_
    return {"rows": n, "seconds": secs, "passes": est.n_passes_,
            "peak_rss_mib": _hwm_mib(), "rss_before_mib": base, "est": float(r.params["d0"]),
            "se": float(r.std_errors["d0"]), "truth": 0.5}


def plot(rows: list[dict], off: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    x = np.arange(len(rows))
    names = {"play": "rank by p(play | shown)", "uplift": "rank by uplift"}
    for i, (key, se, label) in enumerate((
            ("offline_hit_rate", "offline_se", "offline: hit rate on logged plays (naive)"),
            ("online_incremental", "online_se", "online: true incremental plays / visit"))):
        for j, score in enumerate(("play", "uplift")):
            vals = np.array([r[score][key] for r in rows])
            err = 1.96 * np.array([r[score][se] for r in rows])
            ax[i].bar(x + 0.4 * j, vals, width=0.4, yerr=err, capsize=3, label=names[score],
                      color=("tab:gray", "tab:green")[j])
        ax[i].set_xticks(x + 0.2, [f"seed {r['seed']}" for r in rows])
        ax[i].set_title(label, fontsize=10)
        lo = min(min(r[s][key] for s in ("play", "uplift")) for r in rows)
        ax[i].set_ylim(lo * 0.8, None)
    ax[0].legend(fontsize=8, loc="lower right")
    for j, (rs, label) in enumerate(((off, "knob off"), (rows, "knob on (MISMATCH_WORLD)"))):
        g = 100 * np.array([r["gain"] for r in rs])
        h = 100 * np.array([r["hr_gap"] for r in rs])
        ax[2].scatter(h, g, label=label, color=("tab:blue", "tab:red")[j])
    ax[2].axhline(0, color="k", lw=0.5)
    ax[2].axvline(0, color="k", lw=0.5)
    ax[2].set_xlabel("offline: hit-rate lead of p(play | shown) (points)")
    ax[2].set_ylabel("online: gain of uplift ranking (%)")
    ax[2].set_title("per seed: who wins where", fontsize=10)
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sgd-rows", type=int, default=10_000_000)
    ap.add_argument("--sgd-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    a = ap.parse_args()
    if a.sgd_only:
        print(json.dumps(sgd_scale(a.sgd_rows)))
        return
    seeds = (0, 1) if a.quick else (0, 1, 2, 3, 4)
    visits = 40_000 if a.quick else 300_000
    t0 = time.perf_counter()
    iv_rows = [iv_seed(s, visits) for s in seeds]
    iv_secs = time.perf_counter() - t0
    sizes = (5_000, 1_500, 500) if a.quick else (20_000, 3_000, 2_000)
    t0 = time.perf_counter()
    up_rows = [uplift_seed(s, MISMATCH_WORLD, *sizes) for s in seeds]
    up_secs = time.perf_counter() - t0
    off_rows = [uplift_seed(s, KNOB_OFF, *sizes, oracle=False) for s in seeds]
    # SGD-IV at scale in a fresh process, so peak memory is its own
    proc = subprocess.run([sys.executable, __file__, "--sgd-only", "--sgd-rows",
                           str(1_000_000 if a.quick else a.sgd_rows)],
                          capture_output=True, text=True, check=True)
    scale = json.loads(proc.stdout.strip().splitlines()[-1])
    img = ROOT / "docs" / "img" / "causal_offline_online.png"
    plotted = plot(up_rows, off_rows, img)
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / "causal.json").write_text(json.dumps(
        {"iv": iv_rows, "uplift": up_rows, "uplift_knob_off": off_rows, "sgd_scale": scale},
        indent=2))
    cmd = ".venv/bin/python benchmarks/bench_causal.py" + (" --quick" if a.quick else "")
    lines = [header("Causal effects: IV and uplift", cmd), ""]
    lines += [f"IV: world preset `small` with {IV_CFG}, logging policy `PromotionPolicy("
              f"{', '.join(f'{k}={v}' for k, v in IV_POLICY.items())})` (binge mood "
              f"confounds, experiment cell instruments; strengths chosen on seeds 100-104), "
              f"{visits:,} visits per seed. Truth = mean true uplift of a series impression "
              f"(`log.truth()`). Estimate = effect of one series impression on series plays per "
              f"visit (`visit_design`, context controls, CR1 by member; SGD-IV adds member "
              f"effects, batches of 4,096). {iv_secs:.0f} s for all seeds (2 shared cores, "
              f"other jobs running).", "",
              "| seed | truth | OLS (err) | 2SLS (err) ± se | covers | SGD-IV (err) ± se | "
              "covers |", "|---|---:|---:|---:|:-:|---:|:-:|"]
    for r in iv_rows:
        f = lambda k: f"{r[k]['est']:.4f} ({r[k]['rel_err']:+.1%})"  # noqa: E731
        lines.append(f"| {r['seed']} | {r['truth']:.4f} | {f('ols')} | {f('2sls')} ± "
                     f"{r['2sls']['se']:.4f} | {'yes' if r['2sls']['covers'] else 'no'} | "
                     f"{f('sgdiv')} ± {r['sgdiv']['se']:.4f} | "
                     f"{'yes' if r['sgdiv']['covers'] else 'no'} |")
    tr, te, vv = sizes
    g_m, g_ci = mean_ci([r["gain"] for r in up_rows])
    h_m, h_ci = mean_ci([r["hr_gap"] for r in up_rows])
    go_m, go_ci = mean_ci([r["gain"] for r in off_rows])
    ho_m, ho_ci = mean_ci([r["hr_gap"] for r in off_rows])
    fit_s = np.mean([r["fit_s"] for r in up_rows])
    lines += ["", "### Offline/online mismatch: rank by uplift vs by p(play | shown)", "",
              f"World preset `small` with `MISMATCH_WORLD` = {MISMATCH_WORLD} (organic search "
              f"concentrates on popular titles and the page persuades least for them; "
              f"`docs/world.md`). One `TLearnerUplift` (LightGBM, 150 trees per arm) per seed "
              f"on {tr:,} visits of uniform exploration logs (mean fit {fit_s:.0f} s, 1 "
              f"thread, 2 shared cores); the same model ranks pages by its uplift "
              f"mu1 - mu0 or by its p(play | shown) = mu1 (the correlational ranking). Online = "
              f"true incremental plays per visit over {vv:,} visits (`World.policy_value`, "
              f"exact, ± se over visits); offline = naive hit rate@18 on the logged plays "
              f"(page and organic) of {te:,} held-out uniform visits (± binomial se). Oracle = "
              f"greedy on the world's true uplift (ceiling). {up_secs:.0f} s for "
              f"{len(seeds)} seeds.", "",
              "| seed | online: uplift | online: by p(play) | gain | oracle | uniform | "
              "offline HR: uplift | offline HR: by p(play) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in up_rows:
        u, p = r["uplift"], r["play"]
        lines.append(f"| {r['seed']} | {u['online_incremental']:.4f} ± {u['online_se']:.4f} | "
                     f"{p['online_incremental']:.4f} ± {p['online_se']:.4f} | "
                     f"{r['gain']:+.1%} | {r['oracle_online']:.4f} | "
                     f"{r['uniform_online']:.4f} | {u['offline_hit_rate']:.4f} ± "
                     f"{u['offline_se']:.4f} | {p['offline_hit_rate']:.4f} ± "
                     f"{p['offline_se']:.4f} |")
    lines += ["", f"Over the {len(seeds)} seeds (mean ± 95 % t-CI across seeds): the uplift "
              f"ranking earns "
              f"**{g_m:+.1%} ± {g_ci:.1%}** true incremental plays online, while the naive hit "
              f"rate prefers the correlational ranking by **{100 * h_m:.1f} ± "
              f"{100 * h_ci:.1f} points**.", "",
              f"Control, knob off (`organic_popularity_weight = saturation = 0`, the rest of "
              f"`MISMATCH_WORLD` unchanged): online gain {go_m:+.1%} ± {go_ci:.1%}, hit-rate "
              f"lead of the correlational ranking {100 * ho_m:.1f} ± {100 * ho_ci:.1f} points "
              f"(per seed: "
              + ", ".join(f"{r['seed']}: {r['gain']:+.1%} / {100 * r['hr_gap']:+.1f}"
                          for r in off_rows) + ")."]
    if plotted:
        lines += ["", "![offline vs online](docs/img/causal_offline_online.png)"]
    lines += ["", f"SGD-IV at scale: {scale['rows']:,} synthetic rows (1M member + 20k title "
              f"effects, 4 dense controls), batches of 65,536 generated on the fly, "
              f"{scale['passes']} passes (1 moments + 3 Adagrad epochs + 1 final): "
              f"**{scale['seconds']:.0f} s**, peak RSS **{scale['peak_rss_mib']:.0f} MiB** "
              f"(process, {scale['rss_before_mib']:.0f} MiB before fitting); estimate "
              f"{scale['est']:.4f} ± {scale['se']:.4f} (truth 0.5). One thread on a 2-core "
              f"machine shared with other jobs: timings are pessimistic."]
    write_section(a.out, "causal", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
