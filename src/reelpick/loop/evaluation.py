r"""Online evaluation of page policies in the loop, and the naive offline metric.

Offline estimates (replay, SNIPS, DR on whole pages; per-slot estimators) are computed with
:mod:`reelpick.ope.pages` in :mod:`reelpick.loop.pipeline` from the candidate-pool logs.

**Naive** metric: the share of logged plays (page and organic) in those visits whose title is on
the target's page — the correlational "hit rate".

**Online**: the world's truth for the target's pages on fresh visits
(:func:`reelpick.loop.simulator.page_truth`), and a split-traffic A/B test of the best candidates
with plays sampled by the world (:func:`ab_test`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reelpick.decision import Policy
from reelpick.loop.simulator import simulate_visits
from reelpick.world import MemberState, SimulationLog, VisitBatch, World

Z95 = 1.959963984540054


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


def ab_test(world: World, arms: Sequence[tuple[str, Policy]], batches: Sequence[VisitBatch],
            visits: dict[str, np.ndarray], state: MemberState, seed: int,
            on_arm: Callable[[str], None] | None = None) -> dict[str, object]:
    """Split ``visits`` at random between ``arms`` (name, policy) and sample each arm's plays
    with the world (state held fixed); per arm the realised plays per visit with a 95% CI.
    The winner has the highest mean; ``difference`` = winner − runner-up (Welch interval)."""
    del batches
    rng = np.random.default_rng([seed, 31])
    n = len(visits["member"])
    assign = rng.permutation(n) % len(arms)
    res: list[dict[str, Any]] = []
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
