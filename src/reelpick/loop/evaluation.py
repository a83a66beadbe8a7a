r"""Offline and online evaluation of deterministic page policies in the loop.

**Offline** (:func:`offline_estimates`), on logged visits of the exploring policy; rounds are
impressions (title :math:`a_i` in slot :math:`k_i`, reward = play, ``pscore`` the logged exact
propensity). A deterministic target page :math:`\pi` puts probability
:math:`\pi_i = [\pi(x_i)_{k_i} = a_i]` on the logged action, so each round needs two actions
only: "the logged title" and "what the target shows in that slot instead". The estimators of
:mod:`reelpick.ope` run on that exact two-action form (``action_dist = [\pi_i, 1 - \pi_i]``,
``reward_hat = [\hat q(x_i, a_i, k_i), \hat q(x_i, \pi(x_i)_{k_i}, k_i)]``), which gives the same
IPS, SNIPS and DR values as the full ``(n, T, S)`` form without materialising it. Values are
per impression; times the slots per visit they become **page plays per visit**.

* ``replay`` — :class:`~reelpick.ope.Replay` on the uniform share (conditional propensity
  :math:`1/A`); when :math:`A` varies across countries replay's precondition fails and the
  uniform-share SNIPS (replay's importance-weighted generalisation) is reported instead
  (``method`` says which);
* ``snips``, ``dr`` (and ``ips``) — on every sampled round with the mixture propensities; the DR
  reward model is the previous release's ranker (trained on older logs: out of sample).

**Naive** metric: the share of logged plays (page and organic) in those visits whose title is on
the target's page — the correlational "hit rate".

**Online**: the world's truth for the target's pages on fresh visits
(:func:`reelpick.loop.simulator.page_truth`), and a split-traffic A/B test of the best candidates
with plays sampled by the world (:func:`ab_test`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from reelpick.loop.simulator import simulate_visits
from reelpick.ope import DR, IPS, SNIPS, LoggedFeedback, OPEWarning, Replay, evaluate_policy
from reelpick.world import MemberState, SimulationLog, VisitBatch, World

Z95 = 1.959963984540054


def _est(e) -> dict[str, float]:
    return {"value": float(e.value), "lo": float(e.ci_low), "hi": float(e.ci_high),
            "ess": float(e.ess)}


def offline_estimates(log: SimulationLog, visit_idx: np.ndarray, explored: np.ndarray,
                      pages: np.ndarray, q_logged: np.ndarray, q_target: np.ndarray,
                      available: np.ndarray, epsilon: float) -> dict[str, object]:
    """OPE of a deterministic target with pages ``pages (len(visit_idx), S)`` on the visits
    ``visit_idx`` of ``log`` (module docstring). ``q_logged``/``q_target`` are the reward model
    at each round of those visits (rounds in log order); ``available (len(visit_idx),)`` the
    number of titles available to each visit; ``explored`` per visit of the log."""
    s = log.shown
    pos = np.full(log.n_visits, -1)
    pos[visit_idx] = np.arange(visit_idx.size)
    rounds = np.flatnonzero(pos[s.visit] >= 0)
    local = pos[s.visit[rounds]]
    slot = s.slot[rounds]
    pi = (pages[local, slot] == s.title[rounds]).astype(float)
    reward = s.play[rounds].astype(float)
    per_visit = rounds.size / max(visit_idx.size, 1)
    ad = np.column_stack([pi, 1.0 - pi])
    rh = np.column_stack([q_logged, q_target])
    out: dict[str, object] = {"rounds": int(rounds.size), "matches": int(pi.sum()),
                              "scale": per_visit}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OPEWarning)
        fb = LoggedFeedback(action=np.zeros(rounds.size, np.int64), reward=reward,
                            pscore=s.propensity[rounds], n_actions=2)
        res = evaluate_policy(fb, ad, [IPS(), SNIPS(), DR()], rh)
        for k in ("ips", "snips", "dr"):
            out[k] = _scaled(_est(res[k]), per_visit)
        ex = explored[s.visit[rounds]]
        out["replay"] = None
        if ex.sum() and pi[ex].sum() > 0:
            p_uni = 1.0 / available[local[ex]]
            fb_u = LoggedFeedback(action=np.zeros(int(ex.sum()), np.int64), reward=reward[ex],
                                  pscore=p_uni, n_actions=2)
            try:
                r = Replay().estimate_policy_value(fb_u, ad[ex])
                method = "replay"
            except ValueError:
                r = SNIPS().estimate_policy_value(fb_u, ad[ex])
                method = "snips (uniform share)"
            out["replay"] = {**_scaled(_est(r), per_visit), "method": method,
                             "matches": int(pi[ex].sum()), "rounds": int(ex.sum())}
    return out


def _scaled(d: dict[str, float], k: float) -> dict[str, float]:
    return {key: (v * k if key in ("value", "lo", "hi") else v) for key, v in d.items()}


def naive_hit_rate(log: SimulationLog, visit_idx: np.ndarray, pages: np.ndarray) -> float:
    """Share of logged plays (page and organic) in visits ``visit_idx`` whose title is on the
    target's page for that visit."""
    s = log.shown
    pos = np.full(log.n_visits, -1)
    pos[visit_idx] = np.arange(visit_idx.size)
    pv = np.flatnonzero((s.play > 0) & (pos[s.visit] >= 0))
    ov = np.flatnonzero(pos[log.organic_visit] >= 0)
    v = np.concatenate([pos[s.visit[pv]], pos[log.organic_visit[ov]]])
    t = np.concatenate([s.title[pv], log.organic_title[ov]])
    if v.size == 0:
        return float("nan")
    return float((pages[v] == t[:, None]).any(axis=1).mean())


def mean_ci(x: np.ndarray) -> dict[str, float]:
    """Mean with a normal 95% interval over visits."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return {"value": m, "lo": m - Z95 * se, "hi": m + Z95 * se, "se": se, "n": int(x.size)}


def ab_test(world: World, arms: Sequence[tuple[str, object]], batches: Sequence[VisitBatch],
            visits: dict[str, np.ndarray], state: MemberState, seed: int,
            on_arm: Callable[[str], None] | None = None) -> dict[str, object]:
    """Split ``visits`` at random between ``arms`` (name, policy) and sample each arm's plays
    with the world (state held fixed); per arm the realised plays per visit with a 95% CI.
    The winner has the highest mean; ``difference`` = winner − runner-up (Welch interval)."""
    del batches
    rng = np.random.default_rng([seed, 31])
    n = len(visits["member"])
    assign = rng.permutation(n) % len(arms)
    res = []
    for a, (name, pol) in enumerate(arms):
        idx = np.flatnonzero(assign == a)
        sub = {k: v[idx] for k, v in visits.items()}
        log, _ = simulate_visits(world, pol, sub, state, np.random.default_rng([seed, 32, a]),
                                 np.random.default_rng([seed, 33, a]), commit=False)
        plays = (np.bincount(log.shown.visit, weights=log.shown.play, minlength=idx.size)
                 + np.bincount(log.organic_visit, minlength=idx.size))
        res.append({"name": name, **mean_ci(plays)})
        if on_arm is not None:
            on_arm(name)
    order = sorted(range(len(res)), key=lambda i: -res[i]["value"])
    w, r = res[order[0]], res[order[1]]
    d = w["value"] - r["value"]
    se = float(np.hypot(w["se"], r["se"]))
    return {"arms": res, "winner": w["name"],
            "difference": {"value": d, "lo": d - Z95 * se, "hi": d + Z95 * se,
                           "significant": bool(d - Z95 * se > 0)}}
