r"""Candidate page policies evaluated on the served logs, and the rule that promotes one.

:func:`evaluate_candidates` replays every logged visit through each candidate's deterministic
page (:meth:`PagePolicy.greedy <reelpick.page.PagePolicy.greedy>`) and estimates its page
plays per visit with the slot-level estimators of :mod:`reelpick.ope.pages` (IPS and SNIPS:
a logged slot counts when it shows the candidate's title there, weighted by the inverse of the
exact logged propensity; per-visit clustered 95% intervals). The on-policy value of the served
logs (their mean page plays per visit, with its interval) is the baseline.

:func:`promotion_decision` is the stated rule:

1. a candidate is **eligible** when its estimate rests on enough logged evidence:
   effective sample size ``ess >= min_ess`` and matched slots per visit
   ``matched >= min_matched`` (the logging policy explored enough where the candidate goes);
2. among the eligible, the one with the highest SNIPS estimate is the **winner**;
3. it is **promoted** when the lower end of its interval beats the served baseline's value
   (``margin`` may demand more); otherwise nothing ships and the reason says why.

Example
-------
>>> decision = promotion_decision(
...     [{"name": "a", "snips": {"value": 1.3, "lo": 1.2, "hi": 1.4, "ess": 900.0,
...       "matched": 3.1}}], baseline={"value": 1.0, "lo": 0.95, "hi": 1.05})
>>> decision.promote, decision.winner
(True, 'a')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reelpick.decision import VisitBatch
from reelpick.decision.tables import LoggedPages
from reelpick.ope.pages import Z95, slot_match
from reelpick.page.policy import PagePolicy

__all__ = ["PromotionDecision", "evaluate_candidates", "logged_visits", "promotion_decision",
           "served_value"]

DAY = 86_400


def logged_visits(policy: PagePolicy, pages: LoggedPages) -> list[tuple[np.ndarray, VisitBatch]]:
    """The logged pages' visits as the policy's :class:`~reelpick.decision.VisitBatch` es, one
    per day (titles released by each visit's day), with the page indices of each batch."""
    k = {c: i for i, c in enumerate(policy.catalogue.countries)}
    country = np.array([k.get(c, -1) for c in np.asarray(pages.countries)[pages.country]])
    if (country < 0).any():
        bad = np.asarray(pages.countries)[pages.country][country < 0][0]
        raise ValueError(f"logged country {bad!r} is not in the policy's catalogue")
    day = pages.timestamp // DAY
    out = []
    for d in np.unique(day):
        idx = np.flatnonzero(day == d)
        vb = policy.visits(pages.member_id[idx], timestamp=pages.timestamp[idx],
                           device=pages.device[idx], country=country[idx],
                           hour=pages.hour[idx], day_of_week=pages.day_of_week[idx])
        vb = vb.with_layout(pages.n_rows, pages.n_positions)
        out.append((idx, vb))
    return out


def _target_pages(policy: PagePolicy, pages: LoggedPages) -> np.ndarray:
    target = np.full((pages.n_pages, pages.n_slots), -1, np.int64)
    rng = np.random.default_rng(0)  # unused: the greedy page is deterministic
    for idx, vb in logged_visits(policy, pages):
        target[idx] = policy.greedy(vb, rng).titles
    return target


def served_value(pages: LoggedPages) -> dict[str, float]:
    """The served logs' own value: mean page plays per visit with a 95% interval."""
    per = np.bincount(pages.visit, weights=pages.play, minlength=pages.n_pages)
    m = float(per.mean())
    se = float(per.std(ddof=1) / np.sqrt(per.size)) if per.size > 1 else float("nan")
    return {"value": m, "lo": m - Z95 * se, "hi": m + Z95 * se, "se": se, "n": int(per.size)}


def evaluate_candidates(pages: LoggedPages, candidates: Sequence[PagePolicy], *,
                        names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Each candidate's estimated page plays per visit on ``pages`` (module docstring).
    Returns one record per candidate: ``name``, ``version``, ``ips`` and ``snips``
    (``value``, ``lo``, ``hi``, ``se``, ``n``, ``ess``, ``matched``)."""
    if pages.n_pages < 2:
        raise ValueError("need at least 2 logged pages")
    logged = pages.slot_matrix("title")
    reward = pages.slot_matrix("play", fill=0).astype(float)
    mu = pages.slot_matrix("propensity", fill=1.0)
    out = []
    for i, pol in enumerate(candidates):
        if pol.n_titles != len(pages.title_ids) or list(
                pol.titles["title_id"].astype(str)) != list(pages.title_ids):
            raise ValueError(f"candidate {i}: its titles differ from the logs' catalogue")
        target = _target_pages(pol, pages)
        est = slot_match(logged, reward, target, mu)
        out.append({"name": names[i] if names is not None else pol.name,
                    "version": pol.version,
                    **{k: v.to_dict() for k, v in est.items()}})
    return out


@dataclass(frozen=True)
class PromotionDecision:
    """Whether to ship, which candidate, and why (``eligible``: names passing the evidence
    checks; ``reason``: one sentence)."""

    promote: bool
    winner: str | None
    reason: str
    eligible: tuple[str, ...]
    rule: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_decision(results: Sequence[dict[str, Any]], baseline: dict[str, float], *,
                       estimator: str = "snips", min_ess: float = 200.0,
                       min_matched: float = 0.5, margin: float = 0.0) -> PromotionDecision:
    """The promotion rule of the module docstring over :func:`evaluate_candidates` records
    and the served baseline (:func:`served_value`)."""
    rule = {"min_ess": min_ess, "min_matched": min_matched, "margin": margin}
    if not results:
        return PromotionDecision(False, None, "no candidates", (), rule)
    eligible, why_not = [], []
    for r in results:
        e = r[estimator]
        if not np.isfinite(e["value"]):
            why_not.append(f"{r['name']}: no estimate")
        elif e["ess"] < min_ess:
            why_not.append(f"{r['name']}: ESS {e['ess']:.0f} < {min_ess:g}")
        elif e["matched"] < min_matched:
            why_not.append(f"{r['name']}: {e['matched']:.2f} matched slots per visit "
                           f"< {min_matched:g}")
        else:
            eligible.append(r)
    if not eligible:
        return PromotionDecision(False, None, "refused: no candidate has enough logged "
                                 "support (" + "; ".join(why_not) + ")", (), rule)
    best = max(eligible, key=lambda r: r[estimator]["value"])
    e = best[estimator]
    names = tuple(r["name"] for r in eligible)
    bar = baseline["value"] + margin
    if e["lo"] > bar:
        return PromotionDecision(True, best["name"], (
            f"{best['name']}: {estimator} {e['value']:.4f} [{e['lo']:.4f}, {e['hi']:.4f}] "
            f"beats the served {baseline['value']:.4f} + margin {margin:g}"), names, rule)
    return PromotionDecision(False, best["name"], (
        f"refused: the best candidate {best['name']} ({estimator} {e['value']:.4f} "
        f"[{e['lo']:.4f}, {e['hi']:.4f}]) does not beat the served {baseline['value']:.4f} "
        f"+ margin {margin:g} at 95%"), names, rule)
