"""Off-policy accuracy over random worlds: configurations drawn from the ranges of the world's
knobs and logging policies of every kind, >= 20 target policies each, two log sizes.

Per estimator: Spearman to the true values, 95% CI coverage (of all intervals and of those
:attr:`reelpick.ope.Estimate.flags` leaves unflagged), bias, RMSE and how often each flag is
raised. The estimand, the per-impression play rate of the target's pages, is the one of
``benchmarks/_world_sim.py`` (exact from the world's equations over fresh visits; its standard
error is reported). Member state is stationary (``recent_weight = seen_penalty = 0``): with it
on, the logger's own plays would move later visits, a feedback loop no per-round estimator
sees; every other knob is drawn. Seeds: ``SEED`` (used nowhere else in the repository).

Run: ``nice .venv/bin/python benchmarks/bench_ope_random.py [--worlds 12] [--sizes 2000 20000]
[--truth-visits 4000] [--log-reps 1]``. With ``--log-reps R`` every world and size gets ``R``
independent logs: the targets of one log share its noise, so one log per world measures
coverage from about as many independent draws as there are worlds; the coverage's
world-resampled interval says how precisely it is known. Writes the ``ope-random`` section of
BENCHMARKS.md and ``benchmarks/results/ope_random.json``.
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
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import rankdata, spearmanr  # noqa: E402

import _world_sim as ws  # noqa: E402
from reelpick.models import ALS  # noqa: E402
from reelpick.ope import (  # noqa: E402
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    LoggedFeedback,
    OffPolicyEvaluation,
    OPEWarning,
)
from reelpick.ope.pages import (  # noqa: E402
    DensePageEstimate,
    DensePageTerms,
    dense_page_estimate,
    dense_page_terms,
    examination_from_rates,
    slot_play_rates,
)
from reelpick.ope.reward_model import LinearRewardModel  # noqa: E402
from reelpick.policies import (  # noqa: E402
    EpsilonGreedyPolicy,
    PopularityScorer,
    SoftmaxPolicy,
    UniformPolicy,
)
from reelpick.world import PromotionPolicy, World, WorldConfig  # noqa: E402
from reelpick.world.policy import WorldVisits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: issue 18's seeds: world configurations, worlds, logs and truths derive from this
SEED = 18_0907_2026
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr")
#: also reported: DR with independent-rounds intervals, and the page-level position-based
#: estimate from dense marginals with the organic plays taken out (`dense_page_terms`), with
#: its normal interval and (``pbm_bt``) its studentized bootstrap interval
EXTRA = ("dr_iid", "pbm", "pbm_sn", "pbm_bt")
#: seed offset between the independent logs of one world and size (``--log-reps``); log 0
#: keeps the seed of the runs before replicates existed
REP_STRIDE = 1_000_003
LOGGERS = ("uniform", "eps-greedy popularity", "eps-greedy context", "eps-greedy als",
           "plackett-luce", "promotion")
Z95 = 1.959963984540054


def draw_config(rng: np.random.Generator) -> dict:
    """A world configuration from the ranges of its knobs (sizes kept to a shared 2-core box)."""
    short = rng.uniform(0.0, 2.0)
    return dict(
        n_members=int(rng.integers(200, 1500)), n_titles=int(rng.integers(60, 220)),
        page_rows=int(rng.integers(2, 5)), page_positions=int(rng.integers(3, 8)),
        days=int(rng.choice([7, 14, 28])),
        row_decay=float(rng.uniform(0.6, 0.98)), position_decay=float(rng.uniform(0.6, 0.98)),
        device_short=tuple(float(short * d) for d in (-0.3, 0.9, 0.3, 0.0)),
        family_afternoon=float(rng.uniform(0.0, 1.2)),
        family_weekend=float(rng.uniform(0.0, 1.2)),
        drift=float(rng.uniform(0.0, 1.0)), taste_scale=float(rng.uniform(0.5, 1.5)),
        popularity_weight=float(rng.uniform(0.2, 1.0)),
        new_release_boost=float(rng.uniform(0.0, 2.5)),
        search_rate=float(rng.uniform(0.05, 0.5)),
        organic_popularity_weight=float(rng.uniform(0.0, 2.0)),
        saturation=float(rng.uniform(0.0, 2.0)), uplift_bias=float(rng.uniform(-4.5, -2.5)),
        mood_rate=float(rng.uniform(0.0, 0.4)), mood_search_rate=float(rng.uniform(0.3, 0.9)),
        mood_series_logit=float(rng.uniform(0.0, 2.5)),
        recent_weight=0.0, seen_penalty=0.0)


@dataclass(frozen=True)
class ALSScorer:
    """Scores of an :class:`~reelpick.models.ALS` fitted on a log's plays (page and organic),
    per member; members without plays get the catalogue's popularity."""

    scores: np.ndarray    # (n_members, T)
    known: np.ndarray     # (n_members,) bool

    @classmethod
    def fit(cls, world: World, log, seed: int) -> ALSScorer:
        sh = log.shown
        page = np.flatnonzero(sh.play > 0)
        member = np.concatenate([log.visits.member[sh.visit[page]],
                                 log.visits.member[log.organic_visit]])
        title = np.concatenate([sh.title[page], log.organic_title])
        ts = np.concatenate([log.visits.timestamp[sh.visit[page]],
                             log.visits.timestamp[log.organic_visit]])
        T, M = world.config.n_titles, world.config.n_members
        df = pd.DataFrame({"member_id": member.astype(str), "title_id": title.astype(str),
                           "timestamp": pd.to_datetime(ts, unit="s", utc=True)})
        model = ALS(factors=16, iterations=8, random_state=seed).fit(
            df, titles=[str(t) for t in range(T)])
        order = model.title_vocab_.index(np.array([str(t) for t in range(T)], dtype=object))
        seen = np.unique(member)
        scores = np.zeros((M, T))
        scores[seen] = model.score(seen.astype(str))[:, order]
        known = np.zeros(M, dtype=bool)
        known[seen] = True
        return cls(scores, known)

    def score(self, visits):
        pop = np.broadcast_to(visits.catalog.popularity, (len(visits), visits.catalog.n_titles))
        own = self.scores[visits.member]
        return np.where(self.known[visits.member][:, None], own + 1e-3 * pop, pop)


def draw_logger(kind: str, rng: np.random.Generator, world: World, train) -> tuple[str, object]:
    if kind == "uniform":
        return kind, UniformPolicy(artwork="first")
    if kind == "promotion":
        return kind, PromotionPolicy(artwork="first", base=float(rng.uniform(-2.0, 0.0)),
                                     mood_effect=float(rng.uniform(1.0, 3.0)))
    if kind == "plackett-luce":
        t = float(rng.uniform(0.5, 3.0))
        k = None if rng.random() < 0.5 else 60
        return f"{kind} t={t:.2f} K={k}", SoftmaxPolicy(PopularityScorer(), temperature=t,
                                                        n_candidates=k)
    eps = float(rng.uniform(0.2, 0.8))
    scorer = {"eps-greedy popularity": PopularityScorer(),
              "eps-greedy context": ws.ContextScorer(),
              "eps-greedy als": None}[kind]
    if scorer is None:
        scorer = ALSScorer.fit(world, train, seed=int(rng.integers(1 << 30)))
    return f"{kind} eps={eps:.2f}", EpsilonGreedyPolicy(scorer, epsilon=eps)


def fit_reward_models(fb: LoggedFeedback, seed: int) -> tuple[np.ndarray, list]:
    """Two cross-fitting folds drawn per visit (as ``_world_sim.slot_reward_hat``): the folds
    ``(n_rounds,)`` and the model fitted without each."""
    _, visit = np.unique(fb.slate_id, return_inverse=True)
    folds = np.random.default_rng(seed).integers(0, 2, int(visit.max()) + 1)[visit]
    models = [LinearRewardModel(fb.n_actions, fb.n_positions, interactions=False,
                                l2=1.0).fit(fb.take(folds != f)) for f in range(2)]
    return folds, models


def reward_hat_rows(fb: LoggedFeedback, folds: np.ndarray, models: list, lo: int, hi: int
                    ) -> np.ndarray:
    """Out-of-fold ``reward_hat`` of rounds ``lo..hi`` at their own slot ``(k, T)``."""
    out = np.empty((hi - lo, fb.n_actions))
    for f, model in enumerate(models):
        idx = lo + np.flatnonzero(folds[lo:hi] == f)
        for s in range(0, idx.size, 1024):
            i = idx[s:s + 1024]
            q = model.predict(fb.context[i], i.size)
            out[i - lo] = q[np.arange(i.size), :, fb.position[i]]
    return out


def evaluate(world: World, log, fb: LoggedFeedback, targets: dict, seed: int, logger) -> dict:
    """Every estimator on every target, visit batch by visit batch (bounded memory):
    ``{target: {estimator: Estimate}}``; ``dr_iid`` = DR with independent-rounds intervals.
    The logger's exact per-slot distribution is passed as ``logging_dist`` (as a service that
    logs its distribution can): the support check is then exact, round by round."""
    T, S = world.config.n_titles, world.config.n_slots
    folds, models = fit_reward_models(fb, seed)
    runs = {k: (OffPolicyEvaluation([IPS(), SNIPS(), DM(), DR(), SNDR()], n_actions=T,
                                    n_positions=S),
                OffPolicyEvaluation([DR()], n_actions=T, n_positions=S, cluster="round"))
            for k in targets}
    v = log.visits
    arrays = {k: getattr(v, k) for k in WorldVisits.PER_VISIT}
    sh = log.shown
    bounds = np.searchsorted(sh.visit, np.arange(len(v.member) + 1))
    obounds = np.searchsorted(log.organic_visit, np.arange(len(v.member) + 1))

    def page_of(sl: slice, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        """The batch's logged pages ``(n_b, S)``, plays, and organic plays off the page."""
        titles = np.full((sl.stop - sl.start, S), -1, np.int64)
        plays = np.zeros(titles.shape)
        vi = sh.visit[lo:hi] - sl.start
        titles[vi, sh.slot[lo:hi]] = sh.title[lo:hi]
        plays[vi, sh.slot[lo:hi]] = sh.play[lo:hi]
        o = slice(int(obounds[sl.start]), int(obounds[sl.stop]))
        return titles, plays, log.organic_visit[o] - sl.start, log.organic_title[o]

    # pass 1: the examination from the logger's own randomness (`slot_play_rates`)
    slot_sums, org_sum = np.zeros(S), 0.0
    for sl, vb in world.batches(arrays):
        lo, hi = int(bounds[sl.start]), int(bounds[sl.stop])
        titles, plays, ov, ot = page_of(sl, lo, hi)
        a, b = slot_play_rates(logger.marginals(vb).title_slot, titles, plays,
                               organic=(ov, ot))
        slot_sums += a
        org_sum += b
    e_hat = examination_from_rates(slot_sums, org_sum, len(v.member))
    # per visit: weighted plays, organic correction, weight sum, its expectation, unsupported
    dense: dict[str, tuple[list, list]] = {k: ([], []) for k in targets}   # terms, plays
    for sl, vb in world.batches(arrays):
        lo, hi = int(bounds[sl.start]), int(bounds[sl.stop])
        lm = logger.marginals(vb).title_slot
        titles, plays, ov, ot = page_of(sl, lo, hi)
        if hi > lo:
            part = fb.take(slice(lo, hi))
            q = reward_hat_rows(fb, folds, models, lo, hi)
            vi, si = sh.visit[lo:hi] - sl.start, sh.slot[lo:hi]
            logging_dist = lm[vi, :, si]
        for k, pol in targets.items():
            tm = pol.marginals(vb).title_slot
            if hi > lo:
                dist = tm[vi, :, si]
                runs[k][0].update(part, dist, q, logging_dist=logging_dist)
                runs[k][1].update(part, dist, q, logging_dist=logging_dist)
            d = dense_page_terms(tm, lm, e_hat, titles, organic=(ov, ot))
            dense[k][0].append(d)
            dense[k][1].append(plays)
    out = {}
    for k, (run, iid) in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OPEWarning)   # the flags are recorded instead
            res = run.results()
            res["dr_iid"] = iid.results()["dr"]
        out[k] = res
        base = dense_page_estimate(*dense[k], ci="normal")
        out[k]["pbm"] = _as_estimate(base)
        out[k]["pbm_sn"] = _pbm_sn_estimate(*dense[k], base)
        out[k]["pbm_bt"] = _as_estimate(dense_page_estimate(*dense[k], seed=seed))
    return out


def _as_estimate(d: DensePageEstimate) -> _PBMEstimate:
    return _PBMEstimate(d.value, d.lo, d.hi, d.se, d.ess, d.flags)


@dataclass(frozen=True)
class _PBMEstimate:
    """The page-level position-based estimate of a target (``pbm``) in the shape of
    :class:`reelpick.ope.Estimate`'s fields this benchmark records."""

    value: float
    ci_low: float
    ci_high: float
    se: float
    ess: float
    flags: tuple[str, ...]


def _pbm_sn_estimate(terms: list[DensePageTerms], plays: list[np.ndarray],
                     base: DensePageEstimate) -> _PBMEstimate:
    """``pbm`` self-normalised: the weighted plays divided by the weights' mean over its exact
    expectation (``DensePageTerms.expected_weight``), the organic correction subtracted;
    delta-method interval from per-visit influence terms; ESS and flags as ``pbm``'s
    (``base``)."""
    S = terms[0].weight.shape[1]
    a = np.concatenate([(t.weight * y).sum(axis=1) / S for t, y in zip(terms, plays)])
    corr = np.concatenate([t.correction / S for t in terms])
    wsum = np.concatenate([t.weight.sum(axis=1) for t in terms])
    ew = np.concatenate([t.expected_weight for t in terms])
    wb, eb = wsum.mean(), ew.mean()
    if wb <= 0:
        nan = math.nan
        return _PBMEstimate(nan, nan, nan, nan, 0.0, base.flags + ("no_variance",))
    r = a.mean() / wb
    v = r * eb - corr.mean()
    infl = (a - r * wsum) * eb / wb + r * (ew - eb) - (corr - corr.mean())
    se = float(infl.std(ddof=1) / np.sqrt(a.size))
    return _PBMEstimate(float(v), float(v - Z95 * se), float(v + Z95 * se), se, base.ess,
                        base.flags)


def one_world(i: int, sizes: list[int], truth_visits: int, log_reps: int = 1) -> dict:
    rng = np.random.default_rng([SEED, i])
    cfg = WorldConfig.preset("small", **draw_config(rng))
    world = World(cfg, seed=SEED + i)
    kind = LOGGERS[i % len(LOGGERS)]
    train = world.simulate(UniformPolicy(artwork="first"), n_visits=2000, seed=SEED + 100 + i)
    logger_name, logger = draw_logger(kind, rng, world, train)
    targets = ws.target_policies(world, train)
    t0 = time.perf_counter()
    truth = {k: ws.true_value(world, p, n_visits=truth_visits, seed=SEED + 200 + i)
             for k, p in targets.items()}
    t_truth = time.perf_counter() - t0
    runs = []
    for n_visits, rep in ((n, r) for n in sizes for r in range(log_reps)):
        t0 = time.perf_counter()
        log = world.simulate(logger, n_visits=n_visits,
                             seed=SEED + 300 + 17 * i + n_visits + REP_STRIDE * rep)
        fb = ws.slot_feedback(world, log)
        res = evaluate(world, log, fb, targets, seed=SEED + i, logger=logger)
        rows = {k: {e: dict(value=r.value, ci_low=r.ci_low, ci_high=r.ci_high, se=r.se,
                            ess=r.ess, flags=list(r.flags))
                    for e, r in v.items()} for k, v in res.items()}
        diag = {k: v["dr"].diagnostics.to_dict() for k, v in res.items()}
        runs.append(dict(n_visits=n_visits, rep=rep, n_rounds=fb.n_rounds, rows=rows,
                         diagnostics=diag,
                         reward_nonzero=float(np.mean(fb.reward != 0)),
                         seconds=time.perf_counter() - t0))
        tv = [truth[k][0] for k in targets]
        sp = spearmanr([rows[k]["dr"]["value"] for k in targets], tv)[0]
        print(f"world {i} {logger_name} {n_visits} log {rep}: spearman(dr) {sp:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return dict(world=i, config={k: v for k, v in cfg.to_dict().items()
                                 if k in draw_config(np.random.default_rng(0))},
                logger=logger_name, logger_kind=kind,
                truth={k: dict(value=v[0], se=v[1]) for k, v in truth.items()},
                truth_seconds=t_truth, runs=runs)


#: Draws of the noise-only Spearman ceiling (:func:`spearman_ceiling`).
CEILING_DRAWS = 500


def spearman_ceiling(truth: np.ndarray, se: np.ndarray, seed: int) -> float:
    """The mean Spearman to ``truth`` of an *unbiased* estimator whose errors are normal with
    the estimator's own standard errors ``se``: what ranking accuracy the log allows at best
    with intervals this wide (below 0.90 where the targets' true values differ by less than
    the estimates' noise; no estimator of that precision can rank them better on average)."""
    rng = np.random.default_rng([SEED, seed])
    draws = truth[None, :] + rng.standard_normal((CEILING_DRAWS, truth.size)) * se[None, :]
    rd = np.argsort(np.argsort(draws, axis=1), axis=1).astype(float)   # no ties: continuous
    rt = rankdata(truth)
    rd -= rd.mean(axis=1, keepdims=True)
    rt = rt - rt.mean()
    return float(np.mean(rd @ rt / (np.linalg.norm(rd, axis=1) * np.linalg.norm(rt))))


def summarise(worlds: list[dict], sizes: list[int]) -> dict:
    table: dict = {}
    for n in sizes:
        for e in ESTIMATORS + EXTRA:
            err, cover, cover_se, flagged, sp, sp_ok, flag_counts = [], [], [], [], [], [], {}
            ceil, cluster = [], []
            for w, run in _runs(worlds, n):
                names = list(w["truth"])
                cluster += [w["world"]] * len(names)
                tv = np.array([w["truth"][k]["value"] for k in names])
                tse = np.array([w["truth"][k]["se"] for k in names])
                rows = [run["rows"][k][e] for k in names]
                val = np.array([r["value"] for r in rows])
                err += list(val - tv)
                cover += [r["ci_low"] <= t <= r["ci_high"] for r, t in zip(rows, tv)]
                cover_se += [_covers_with_truth_se(r, t, s) for r, t, s in zip(rows, tv, tse)]
                flagged += [bool(r["flags"]) for r in rows]
                for r in rows:
                    for f in r["flags"]:
                        flag_counts[f] = flag_counts.get(f, 0) + 1
                fin = np.isfinite(val)   # SNIPS/SNDR: NaN when no logged round has weight
                rho = float(spearmanr(val[fin], tv[fin])[0])
                sp.append(rho)
                ok = np.array([not r["flags"] for r in rows]) & fin
                sp_ok.append(float(spearmanr(val[ok], tv[ok])[0]) if ok.sum() >= 5 else math.nan)
                se = np.array([r["se"] for r in rows])
                ceil.append(spearman_ceiling(tv[fin], np.nan_to_num(se[fin]),
                                             w["world"] + 1000 * run.get("rep", 0))
                            if e != "dm" else math.nan)
            err_a, cov, fl = np.array(err), np.array(cover), np.array(flagged)
            cov_se = np.array(cover_se)
            nan = ~np.isfinite(err_a)
            err_a = np.where(nan, 0.0, err_a)
            fin = ~nan
            table[f"{n}/{e}"] = dict(
                n_nan=int(nan.sum()), bias=float(err_a[fin].mean()),
                rmse=float(np.sqrt((err_a[fin] ** 2).mean())),
                coverage=float(cov.mean()), n_intervals=int(cov.size),
                coverage_truth_se=float(cov_se.mean()),
                flagged_share=float(fl.mean()),
                coverage_unflagged=float(cov[~fl].mean()) if (~fl).any() else math.nan,
                coverage_unflagged_truth_se=float(cov_se[~fl].mean()) if (~fl).any()
                else math.nan,
                coverage_unflagged_ci=_world_bootstrap(cov_se[~fl], np.array(cluster)[~fl]),
                n_unflagged=int((~fl).sum()),
                rmse_unflagged=float(np.sqrt((err_a[~fl & fin] ** 2).mean())) if (
                    ~fl & fin).any() else math.nan,
                spearman_median=float(np.median(sp)), spearman_p10=float(np.quantile(sp, 0.1)),
                spearman_share_ge_090=float(np.mean(np.array(sp) >= 0.90)),
                spearman_min=float(np.min(sp)), spearman=sp,
                spearman_unflagged=sp_ok,
                spearman_unflagged_share_ge_090=float(np.mean(np.array(
                    [x for x in sp_ok if np.isfinite(x)]) >= 0.90)) if np.isfinite(
                    sp_ok).any() else math.nan,
                spearman_ceiling=ceil,
                ceiling_share_ge_090=(float(np.mean(np.array(ceil) >= 0.90)) if e != "dm"
                                      else math.nan),
                flag_counts=flag_counts)
    return table


def _covers_with_truth_se(r: dict, truth: float, truth_se: float) -> bool:
    """Whether the interval, each arm widened by the truth's own error in quadrature
    (``sqrt(arm^2 + (z * truth_se)^2)``), holds the truth: for a normal interval the same as
    ``|value - truth| <= z * hypot(se, truth_se)``, and it keeps an asymmetric (studentized)
    interval's shape."""
    v, zt = r["value"], Z95 * truth_se
    lo = v - math.hypot(v - r["ci_low"], zt)
    hi = v + math.hypot(r["ci_high"] - v, zt)
    return bool(lo <= truth <= hi)


def _runs(worlds: list[dict], n: int) -> list[tuple[dict, dict]]:
    """``(world, run)`` of every log of ``n`` visits, logs of a world in order (runs from
    before ``--log-reps`` are log 0)."""
    return [(w, r) for w in worlds for r in sorted(
        (r for r in w["runs"] if r["n_visits"] == n), key=lambda r: r.get("rep", 0))]


#: Resamples of the worlds in :func:`_world_bootstrap`.
WORLD_BOOTSTRAP = 2000


def _world_bootstrap(hit: np.ndarray, world: np.ndarray) -> list[float]:
    """95% percentile interval of a coverage share, resampling *worlds* (all the intervals of
    a world's logs together): the targets of one log share its noise, so the intervals of a
    world are not independent draws and the binomial interval over intervals is too narrow."""
    if hit.size == 0:
        return [math.nan, math.nan]
    ids, inv = np.unique(world, return_inverse=True)
    k = np.bincount(inv, weights=hit.astype(float), minlength=ids.size)
    m = np.bincount(inv, minlength=ids.size).astype(float)
    draw = np.random.default_rng([SEED, 77]).integers(0, ids.size, (WORLD_BOOTSTRAP, ids.size))
    share = k[draw].sum(axis=1) / m[draw].sum(axis=1)
    return [float(x) for x in np.quantile(share, [0.025, 0.975])]


def _logs_text(res: dict) -> str:
    reps = res.get("log_reps", 1)
    if reps == 1:
        return "one log per world and size"
    return (f"{reps} independent logs per world and size (log 0 with the seeds of the "
            "single-log runs; Spearman shares count logs, coverage pools every interval)")


def _ci_text(r: dict) -> str:
    ci = r.get("coverage_unflagged_ci")
    return "" if not ci or not np.isfinite(ci[0]) else f" ({ci[0]:.1%}-{ci[1]:.1%})"


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.0%}"


def lines(res: dict) -> list[str]:
    t, sizes = res["table"], res["sizes"]
    big = max(sizes)
    out = ["### Accuracy over random worlds", "",
           f"{len(res['worlds'])} worlds, each a configuration drawn from the ranges of the "
           "world's knobs (members 200-1500, titles 60-220, 2-4 rows x 3-7 positions, row and "
           "position decay 0.6-0.98, device/daypart/weekend context effects, drift 0-1, search "
           "rate, organic popularity 0-2, saturation 0-2, mood rate 0-0.4 with its search "
           "rate and series logit, uplift bias, popularity weight; member state stationary) "
           "and a logging policy cycling through "
           f"{', '.join(LOGGERS)} (parameters drawn). {res['n_targets']} targets per world "
           f"(`_world_sim.target_policies`); {_logs_text(res)}; truth exact over "
           f"{res['truth_visits']:,} fresh visits (truth SE median "
           f"{res['truth_se_median']:.1e}, max {res['truth_se_max']:.1e}); reward model "
           "cross-fitted by visit; 95% analytic intervals clustered by visit. `reliable` = no "
           "`Estimate.flags` (no_support: > 1% of the target's mass where the logger's "
           "exact distribution, passed as `logging_dist`, is zero; low_ess: weights' ESS < 100 "
           "or < 20 expected rewarded rounds; heavy_tail: "
           "the largest weight holds > 5% of the weights' second moment; model_based: DM). "
           f"Seeds from `SEED = {SEED}`.", "",
           "| visits | estimator | bias | RMSE | coverage (all) | all, truth SE added | flagged | "
           "coverage (unflagged) | unflagged, truth SE added (world-resampled 95% CI) | "
           "Spearman median | p10 | share >= 0.90 | Spearman median, unflagged targets | "
           "share >= 0.90, unflagged | ceiling: share >= 0.90 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    unit = "logs" if res.get("log_reps", 1) > 1 else "worlds"
    for n in sizes:
        for e in ESTIMATORS + EXTRA:
            if f"{n}/{e}" not in t:
                continue
            r = t[f"{n}/{e}"]
            sp_ok = np.array(r["spearman_unflagged"], dtype=float)
            sp_ok_med = float(np.median(sp_ok[np.isfinite(sp_ok)])) if np.isfinite(
                sp_ok).any() else math.nan
            nans = f" ({r['n_nan']} NaN)" if r.get("n_nan") else ""
            out.append(f"| {n:,} | {e} | {r['bias']:+.4f}{nans} | {r['rmse']:.4f} | "
                       f"{r['coverage']:.1%} of {r['n_intervals']} | "
                       f"{r['coverage_truth_se']:.1%} | {r['flagged_share']:.1%} | "
                       f"{r['coverage_unflagged']:.1%} of {r['n_unflagged']} | "
                       f"{r['coverage_unflagged_truth_se']:.1%}{_ci_text(r)} | "
                       f"{r['spearman_median']:.3f} | "
                       f"{r['spearman_p10']:.3f} | {r['spearman_share_ge_090']:.0%} | "
                       f"{sp_ok_med:.3f} ({int(np.isfinite(sp_ok).sum())} {unit}) | "
                       f"{_pct(r.get('spearman_unflagged_share_ge_090', math.nan))} | "
                       f"{_pct(r.get('ceiling_share_ge_090', math.nan))} |")
    out += ["", "`Spearman median, unflagged targets` and `share >= 0.90, unflagged` rank only "
            "the targets whose estimate carries no flag (worlds with at least 5 of them). "
            "`ceiling` is what an *unbiased* estimator with the same standard errors would "
            "reach: per world, the mean Spearman to the truth of the truth plus normal noise of "
            "each estimate's own SE (`spearman_ceiling`, "
            f"{CEILING_DRAWS} draws). Where the ceiling is below 0.90 the targets' true values "
            "differ by less than the estimates' noise, so no estimator of that precision ranks "
            "them to 0.90 on average: those worlds need a larger log (or a logger that "
            "explores more where the targets go), not another estimator.", "",
            "Flags raised (count of intervals):", "",
            "| visits | estimator | flags |", "|---|---|---|"]
    for n in sizes:
        for e in ESTIMATORS + ("pbm", "pbm_sn"):
            fc = t[f"{n}/{e}"]["flag_counts"]
            shown = ", ".join(f"{k} {v}" for k, v in sorted(fc.items())) or "none"
            out.append(f"| {n:,} | {e} | {shown} |")
    reps = res.get("log_reps", 1)
    if reps > 1:
        out += ["", f"Unflagged coverage at {big:,} visits by log (log 0 has the seeds of the "
                "single-log runs, so it reproduces them; the spread between logs is how much "
                "one log per world can mislead):", "",
                "| estimator | " + " | ".join(f"log {r}" for r in range(reps)) + " |",
                "|---|" + "---|" * reps]
        for e in ("dr", "pbm", "pbm_sn", "pbm_bt"):
            cells = []
            for rep in range(reps):
                hit = [run["rows"][k][e]["ci_low"] <= w["truth"][k]["value"]
                       <= run["rows"][k][e]["ci_high"]
                       for w, run in _runs(res["worlds"], big) if run.get("rep", 0) == rep
                       for k in w["truth"] if not run["rows"][k][e]["flags"]]
                cells.append(f"{np.mean(hit):.1%} of {len(hit)}" if hit else "n/a")
            out.append(f"| {e} | " + " | ".join(cells) + " |")
    out += ["", f"Per world ({big:,} visits; the mean over the world's logs where there are "
            "several): DR Spearman (all targets, unflagged targets, and the ceiling of an "
            "unbiased estimator with DR's SEs), coverage of all / unflagged intervals; the same "
            "for `pbm`, and `pbm`'s coverage with the studentized interval (`pbm_bt`):", "",
            "| world | logger | titles x slots | logs | Spearman | Spearman, unflagged | "
            "ceiling | coverage | unflagged coverage (n) | pbm Spearman | pbm ceiling | "
            "pbm coverage | pbm_bt coverage |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pb, dr = t[f"{big}/pbm"], t[f"{big}/dr"]
    units = _runs(res["worlds"], big)
    for w in res["worlds"]:
        idx = [j for j, (u, _) in enumerate(units) if u is w]
        names = list(w["truth"])
        tv = [w["truth"][k]["value"] for k in names]

        def covered(est: str, run: dict) -> list[bool]:
            return [run["rows"][k][est]["ci_low"] <= x <= run["rows"][k][est]["ci_high"]
                    for k, x in zip(names, tv)]

        sp, cov, ok, pcov, bcov = [], [], [], [], []
        for j in idx:
            run = units[j][1]
            rows = [run["rows"][k]["dr"] for k in names]
            sp.append(spearmanr([r["value"] for r in rows], tv)[0])
            c = covered("dr", run)
            cov += c
            ok += [x for x, r in zip(c, rows) if not r["flags"]]
            pcov += covered("pbm", run)
            bcov += covered("pbm_bt", run) if "pbm_bt" in run["rows"][names[0]] else []

        def mean(key: dict, name: str) -> float:
            x = np.array([key[name][j] for j in idx], dtype=float)
            return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else math.nan

        c = w["config"]
        out.append(f"| {w['world']} | {w['logger']} | {c['n_titles']} x "
                   f"{c['page_rows'] * c['page_positions']} | {len(idx)} | {np.mean(sp):.3f} | "
                   f"{mean(dr, 'spearman_unflagged'):.3f} | {mean(dr, 'spearman_ceiling'):.3f} | "
                   f"{np.mean(cov):.0%} | "
                   f"{(np.mean(ok) if ok else math.nan):.0%} ({len(ok)}) | "
                   f"{mean(pb, 'spearman'):.3f} | {mean(pb, 'spearman_ceiling'):.3f} | "
                   f"{np.mean(pcov):.0%} | {_pct(np.mean(bcov)) if bcov else 'n/a'} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--start", type=int, default=0, help="index of the first world")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="results JSON of earlier runs (other worlds, same sizes) to report with")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--truth-visits", type=int, default=4000)
    ap.add_argument("--log-reps", type=int, default=1,
                    help="independent logs per world and size (coverage and the Spearman "
                         "shares pool them; log 0 has the seed of single-log runs)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--no-write", action="store_true", help="print the section only")
    args = ap.parse_args()
    t0 = time.perf_counter()
    worlds, earlier_s = [], 0.0
    for path in args.merge:
        earlier = json.loads(path.read_text())
        earlier_s += earlier["seconds"]
        if earlier["sizes"] != args.sizes or earlier["truth_visits"] != args.truth_visits \
                or earlier.get("log_reps", 1) != args.log_reps:
            ap.error(f"--merge {path}: other sizes, truth visits or log reps")
        worlds += earlier["worlds"]
    if args.log_reps < 1:
        ap.error("--log-reps: need at least 1")
    worlds += [one_world(i, args.sizes, args.truth_visits, args.log_reps)
               for i in range(args.start, args.start + args.worlds)]
    worlds.sort(key=lambda w: w["world"])
    if len({w["world"] for w in worlds}) != len(worlds):
        ap.error("--merge: a world appears twice")
    ses = [v["se"] for w in worlds for v in w["truth"].values()]
    res = dict(sizes=args.sizes, truth_visits=args.truth_visits, log_reps=args.log_reps,
               worlds=worlds,
               n_targets=min(len(w["truth"]) for w in worlds),
               truth_se_median=float(np.median(ses)), truth_se_max=float(np.max(ses)),
               table=summarise(worlds, args.sizes),
               seconds=time.perf_counter() - t0 + earlier_s,
               commands=[c for p in args.merge for c in json.loads(p.read_text()).get(
                   "commands", [])] + [" ".join(sys.argv[1:])])
    body = lines(res)
    print("\n".join(body))
    if args.no_write:
        return
    default_out = args.out.resolve() == (ROOT / "BENCHMARKS.md").resolve()
    json_path = (ROOT / "benchmarks" / "results" / "ope_random.json" if default_out
                 else args.out.with_suffix(".json"))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    keep = ("unsupported_mass", "support_method", "weight_max", "weight_second_moment", "ess")
    for w in worlds:   # the diagnostics behind the flags only: the file stays small
        for r in w["runs"]:
            r["diagnostics"] = {k: {f: d[f] for f in keep} for k, d in r["diagnostics"].items()}
    json_path.write_text(json.dumps(res, separators=(",", ":")))
    cmd = "benchmarks/bench_ope_random.py " + " ".join(sys.argv[1:])
    if args.merge:
        cmd += f" (merged with earlier runs: {', '.join(c for c in res['commands'][:-1])})"
    text = [header("Off-policy evaluation over random worlds (`reelpick.ope`)",
                   f"nice .venv/bin/python {cmd}"), "",
            f"Total {res['seconds'] / 60:.1f} min of wall time summed over the runs (each 1 "
            "thread, on 2 shared cores)."
            + (" No world was simulated by this command: it re-summarises the merged results "
               "(the commit above is the summary's, not the runs')." if args.worlds == 0
               else ""), ""] + body
    write_section(args.out, "ope-random", "\n".join(text))


if __name__ == "__main__":
    main()
