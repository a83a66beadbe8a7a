r"""Candidate page policies evaluated on the served logs, and the rule that promotes one.

:func:`evaluate_candidates` replays every logged visit through each candidate and estimates
its page plays per visit two ways:

* **page-level, position-based** (``pbm_ips``, ``pbm_snips``, ``pbm_dr``, ``pbm_sndr``; the
  default for promotion is ``pbm_dr``): the candidate *as it would be served* — its composed
  page with probability :math:`1 - \epsilon_c` and a uniformly random page otherwise, exact
  marginals :class:`~reelpick.ope.pages.PageMarginals` — estimated by
  :func:`~reelpick.ope.pages.position_based` on the logger's **exploration bucket** (the
  visits served a uniformly random page, drawn independently of the visit, so the logger's
  marginals there are exactly :math:`1 / A_v` per title and slot; the logs mark them with an
  ``explored`` or ``page_source == "explore"`` column). A logged title counts wherever it was
  shown, rescaled by the examination of the slots (:func:`~reelpick.ope.pages.examination_curve`
  on the same bucket); the DR model is a position-based title model
  :math:`\hat q(v, t, s) = \hat e_s \hat\theta_t` cross-fitted by visit (each visit predicted
  by the play rates of the other folds' impressions) whose value of the candidate averages
  over all logged visits;
* **exact slot match** of the composed page (``ips``, ``snips``: a logged slot counts when it
  shows the candidate's title there, :func:`~reelpick.ope.pages.slot_match`), kept for
  comparison: its effective sample size collapses when candidate pages differ from the
  served one.

Each page-level estimate carries ``reliable`` and ``reason`` (unreliable without a marked
exploration bucket or with fewer than ``min_bucket`` explored visits). The on-policy value of
the served logs (their mean page plays per visit, with its interval) is the baseline.

:func:`promotion_decision` is the stated rule:

1. a candidate is **eligible** when its estimate is ``reliable`` and rests on enough logged
   evidence: effective sample size ``ess >= min_ess`` and matched titles per visit
   ``matched >= min_matched``;
2. among the eligible, the one with the highest estimate is the **winner**;
3. it is **promoted** when the lower end of its interval beats the served baseline's value
   (``margin`` may demand more); otherwise nothing ships and the reason says why.

Example
-------
>>> decision = promotion_decision(
...     [{"name": "a", "pbm_dr": {"value": 1.3, "lo": 1.2, "hi": 1.4, "ess": 900.0,
...       "matched": 3.1, "reliable": True, "reason": ""}}],
...     baseline={"value": 1.0, "lo": 0.95, "hi": 1.05})
>>> decision.promote, decision.winner
(True, 'a')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from reelpick.decision import VisitBatch
from reelpick.decision.tables import LoggedPages
from reelpick.ope.pages import (
    Z95,
    PageEstimate,
    PageMarginals,
    examination_curve,
    examination_net_of_organic,
    position_based,
    slot_match,
)
from reelpick.ope.propensity import kfold_indices
from reelpick.page.policy import PagePolicy

__all__ = ["PAGE_ESTIMATORS", "PLAYS_ESTIMATORS", "PromotionDecision", "evaluate_candidates",
           "explored_pages", "logged_visits", "organic_plays", "promotion_decision",
           "served_value"]

#: the page-level estimates of :func:`evaluate_candidates` (``pbm_dr`` is the default)
PAGE_ESTIMATORS = ("pbm_ips", "pbm_snips", "pbm_dr", "pbm_sndr")
#: the page-level estimate of *all* plays per visit (organic plays included: what an A/B test
#: counts), when :func:`evaluate_candidates` is given the organic plays (:func:`organic_plays`)
PLAYS_ESTIMATORS = ("pbm_plays",)

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


def organic_plays(pages: LoggedPages, interactions: Any, *, window_seconds: int = 3600
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The plays of ``interactions`` (``member_id``, ``title_id``, ``timestamp``: every play,
    the ones from the page and the members' own) that happened **off the logged page**: each
    play is attributed to its member's latest logged page at or before it, within
    ``window_seconds``, and kept when its title is not on that page (a play of a title on the
    page is the page's, and the outcomes already count it). Returns ``(page index, title
    index)`` arrays for :func:`evaluate_candidates` (``organic=``); plays of titles outside
    the logs' catalogue, of members without a page, or outside every window are dropped.

    >>> import pandas as pd
    >>> from reelpick.decision.tables import logged_pages
    >>> imp = pd.DataFrame({"decision_id": ["p1-0", "p1-1"], "page_id": "p1", "member_id": "m1",
    ...     "timestamp": 1_000, "row": "Top picks", "row_index": 0, "position": [0, 1],
    ...     "title_id": ["a", "b"], "policy": "p", "propensity": 0.5, "play": 0})
    >>> pages = logged_pages(imp, title_ids=["a", "b", "c"])
    >>> plays = pd.DataFrame({"member_id": ["m1", "m1", "m1", "m2"],
    ...     "title_id": ["a", "c", "c", "c"], "timestamp": [1_060, 1_030, 9_000, 1_030]})
    >>> organic_plays(pages, plays)       # "a" is on the page; the later "c" is too late
    (array([0]), array([2]))
    """
    for col in ("member_id", "title_id", "timestamp"):
        if col not in interactions.columns:
            raise ValueError(f"interactions: missing column {col!r}")
    tindex = {t: i for i, t in enumerate(pages.title_ids)}
    title = np.array([tindex.get(str(t), -1) for t in interactions["title_id"].astype(str)],
                     np.int64)
    ts = interactions["timestamp"].to_numpy().astype(np.int64)
    member = interactions["member_id"].astype(str).to_numpy()
    page_member = np.asarray(pages.member_id).astype(str)
    page_ts = np.asarray(pages.timestamp, np.int64)
    # one sorted key (member code, time) for pages and plays: each play's member's latest page
    # at or before it is one binary search away
    codes, _ = pd.factorize(np.concatenate([page_member, member]))
    pc, mc = codes[: page_member.size].astype(np.int64), codes[page_member.size:].astype(np.int64)
    both = np.concatenate([page_ts, ts])
    t0 = int(both.min()) if both.size else 0
    span = int(both.max()) - t0 + 1 if both.size else 1
    pkey = pc * span + (page_ts - t0)
    order = np.argsort(pkey, kind="stable")
    at = np.searchsorted(pkey[order], mc * span + (ts - t0), side="right") - 1
    idx = order[np.maximum(at, 0)]
    ok = (title >= 0) & (at >= 0) & (pc[idx] == mc) & (ts - page_ts[idx] < window_seconds)
    idx = np.where(ok, idx, -1)
    page, title = idx[ok], title[ok]
    logged = pages.slot_matrix("title")
    off = ~(logged[page] == title[:, None]).any(axis=1)
    return page[off], title[off]


def served_value(pages: LoggedPages, organic: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> dict[str, float]:
    """The served logs' own value: mean page plays per visit with a 95% interval; with
    ``organic`` (:func:`organic_plays`), all plays per visit (the organic plays off the page
    added)."""
    per = np.bincount(pages.visit, weights=pages.play, minlength=pages.n_pages)
    if organic is not None:
        per = per + np.bincount(np.asarray(organic[0], np.int64), minlength=pages.n_pages)
    m = float(per.mean())
    se = float(per.std(ddof=1) / np.sqrt(per.size)) if per.size > 1 else float("nan")
    return {"value": m, "lo": m - Z95 * se, "hi": m + Z95 * se, "se": se, "n": int(per.size)}


def explored_pages(impressions: Any, pages: LoggedPages) -> np.ndarray | None:
    """``(n_pages,)`` whether each logged page was the logger's uniformly random page (every
    impression of it marked by an ``explored`` (bool) or ``page_source == "explore"`` column
    of ``impressions``, as the exploring page policies log it); ``None`` when the table has
    neither column."""
    cols = set(impressions.columns)
    if "explored" in cols:
        flag = impressions["explored"].fillna(False).astype(bool).to_numpy()
    elif "page_source" in cols:
        flag = (impressions["page_source"].astype(str) == "explore").to_numpy()
    else:
        return None
    index = {p: i for i, p in enumerate(np.asarray(pages.page_id).astype(str))}
    rows = np.array([index.get(p, -1) for p in impressions["page_id"].astype(str)], np.int64)
    ok = rows >= 0
    seen = np.bincount(rows[ok], minlength=pages.n_pages)
    marked = np.bincount(rows[ok], weights=flag[ok], minlength=pages.n_pages)
    return (seen > 0) & (marked == seen)


def _title_model(pages: LoggedPages, e: np.ndarray, folds: np.ndarray, n_folds: int,
                 prior: float) -> np.ndarray:
    """``(n_folds, T)`` examination-adjusted play rate of every title on the other folds'
    impressions, shrunk towards the overall rate by ``prior`` examined impressions."""
    T = len(pages.title_ids)
    ex = e[pages.slot]
    f = folds[pages.visit]
    out = np.empty((n_folds, T))
    for k in range(n_folds):
        m = f != k
        plays = np.bincount(pages.title[m], weights=pages.play[m], minlength=T)
        exposure = np.bincount(pages.title[m], weights=ex[m], minlength=T)
        r0 = plays.sum() / max(exposure.sum(), 1e-12)
        out[k] = (plays + prior * r0) / (exposure + prior)
    return out


def _record(est: PageEstimate, meta: dict[str, Any]) -> dict[str, Any]:
    """A page-level estimate as a record: reliable when finite, with ``meta`` (logger, ...)."""
    d = est.to_dict()
    ok = bool(np.isfinite(d["value"]) and np.isfinite(d["se"]))
    return {**d, "reliable": ok, **meta, "reason": "" if ok else "the estimate is not finite"}


def _unreliable(reason: str, n: int) -> dict[str, Any]:
    nan = float("nan")
    return {**PageEstimate(nan, nan, nan, nan, n, 0.0, 0.0).to_dict(), "reliable": False,
            "reason": reason}


def served_marginals(served: PagePolicy, pages: LoggedPages
                     ) -> tuple[PageMarginals | None, np.ndarray, str]:
    """The logging policy's exact marginals on the logged visits when ``served`` (the page
    policy that served them) reproduces the logged propensities: ``(marginals, agree, note)``
    with ``agree`` ``(n_pages,)`` the visits whose every logged propensity it reproduces;
    ``marginals`` is ``None`` (and ``note`` says why) when fewer than 99% do."""
    n, S = pages.n_pages, pages.n_slots
    if list(served.titles["title_id"].astype(str)) != list(pages.title_ids):
        return None, np.zeros(n, bool), "the served policy's titles differ from the logs'"
    base = np.full((n, S), -1, np.int64)
    avail = np.ones(n)
    rng = np.random.default_rng(0)
    for idx, vb in logged_visits(served, pages):
        base[idx] = served.greedy(vb, rng).titles
        avail[idx] = vb.n_available()
    m = PageMarginals.exploring(base, float(served.config.epsilon), avail)
    logged = pages.slot_matrix("title")
    mu = pages.slot_matrix("propensity", fill=1.0)
    prop = m.at(logged, np.broadcast_to(np.arange(S), (n, S)))
    ok = np.isclose(prop, mu, rtol=1e-6, atol=1e-12) | (logged < 0)
    agree = ok.all(axis=1)
    if agree.mean() < 0.99:
        return None, agree, (f"the served policy reproduces the logged propensities on only "
                             f"{agree.mean():.1%} of the visits (< 99%)")
    return m, agree, ""


def evaluate_candidates(pages: LoggedPages, candidates: Sequence[PagePolicy], *,
                        names: Sequence[str] | None = None, explored: np.ndarray | None = None,
                        served: PagePolicy | None = None, n_folds: int = 5,
                        min_bucket: int = 30, prior: float = 5.0, seed: int = 0,
                        organic: tuple[np.ndarray, np.ndarray] | None = None
                        ) -> list[dict[str, Any]]:
    """Each candidate's estimated page plays per visit on ``pages`` (module docstring).

    ``explored`` ``(n_pages,)``: the logger's exploration bucket (:func:`explored_pages`);
    without it the page-level estimates are unreliable. ``served``: the page policy that
    served the logs; when it reproduces the logged propensities (:func:`served_marginals`)
    the estimates use every logged visit with its exact marginals (a title shown on the
    served page counts too), else the bucket alone (``logger`` in the records says which,
    ``note`` why). ``n_folds`` of visits cross-fit the
    reward model (``prior``: its shrinkage, in examined impressions). Returns one record per
    candidate: ``name``, ``version``, ``epsilon``, ``ips``/``snips`` (exact slot match of the
    composed page) and :data:`PAGE_ESTIMATORS` (each ``value``, ``lo``, ``hi``, ``se``, ``n``,
    ``ess``, ``matched``, ``reliable``, ``reason``, ``bucket_visits``).

    ``organic`` ``(page index, title index)``: the plays members made off the logged pages
    (:func:`organic_plays`). With them each record also holds ``pbm_plays``, the candidate's
    **all plays** per visit (organic ones included, what an A/B test counts; the same DR with
    the organic plays taken out of the page-play sum and the examination estimated net of
    them, :func:`reelpick.ope.pages.organic_terms`); without them ``pbm_plays`` is
    unreliable."""
    if pages.n_pages < 2:
        raise ValueError("need at least 2 logged pages")
    logged = pages.slot_matrix("title")
    reward = pages.slot_matrix("play", fill=0).astype(float)
    mu = pages.slot_matrix("propensity", fill=1.0)
    n, S = logged.shape
    reason = ""
    if explored is None:
        reason = ("the logs do not mark the exploration bucket (no `explored` or "
                  "`page_source` column): the page-level estimate needs it")
    else:
        explored = np.asarray(explored, bool)
        if explored.shape != (n,):
            raise ValueError(f"explored: expected shape ({n},), got {explored.shape}")
        nb = int(explored.sum())
        if nb < max(min_bucket, 2):
            reason = (f"only {nb} explored visits in the logs (< {max(min_bucket, 2)}): too "
                      "few uniformly random pages to estimate a page from")
        else:
            sb = explored[pages.visit]
            if pages.play[sb].sum() <= 0:
                reason = "no plays in the exploration bucket"
    full: PageMarginals | None = None
    agree = np.ones(n, bool)
    note = "" if served is not None else "no served policy given: the exploration bucket alone"
    if served is not None:
        full, agree, note = served_marginals(served, pages)
        if full is not None and not agree.all():
            note = (f"{int((~agree).sum())} visits whose propensities the served policy does "
                    "not reproduce are left out")
    e = folds = theta = None
    if not reason:
        assert explored is not None
        sb = explored[pages.visit]
        e = examination_curve(pages.row_index[sb], pages.position[sb], pages.play[sb],
                              pages.n_rows, pages.n_positions).ravel()
        folds = kfold_indices(n, min(n_folds, n), seed)
        theta = _title_model(pages, e, folds, min(n_folds, n), prior)
    if organic is not None:
        o_page, o_title = (np.asarray(x, np.int64).ravel() for x in organic)
        if o_page.shape != o_title.shape or (o_page.size and (
                o_page.min() < 0 or o_page.max() >= n or o_title.min() < 0
                or o_title.max() >= len(pages.title_ids))):
            raise ValueError("organic: need (page index, title index) arrays of one length "
                             "within the logs (see organic_plays)")
    out = []
    e_net: np.ndarray | None = None
    for i, pol in enumerate(candidates):
        if pol.n_titles != len(pages.title_ids) or list(
                pol.titles["title_id"].astype(str)) != list(pages.title_ids):
            raise ValueError(f"candidate {i}: its titles differ from the logs' catalogue")
        target = np.full((n, S), -1, np.int64)
        avail = np.ones(n)
        theta_mean = np.zeros(n)
        rng = np.random.default_rng(0)  # unused: the composed page is deterministic
        for idx, vb in logged_visits(pol, pages):
            target[idx] = pol.greedy(vb, rng).titles
            avail[idx] = vb.n_available()
            if theta is not None and folds is not None:
                a = vb.available[vb.country]  # (n_b, T)
                th = theta[folds[idx]]
                theta_mean[idx] = (th * a).sum(axis=1) / np.maximum(a.sum(axis=1), 1)
        est = slot_match(logged, reward, target, mu)
        eps = float(pol.config.epsilon)
        rec: dict[str, Any] = {"name": names[i] if names is not None else pol.name,
                               "version": pol.version, "epsilon": eps,
                               **{k: v.to_dict() for k, v in est.items()}}
        if reason:
            for k in PAGE_ESTIMATORS:
                rec[k] = _unreliable(reason, n)
        else:
            assert e is not None and theta is not None and folds is not None
            assert explored is not None
            tm = PageMarginals.exploring(target, eps, avail)
            th_logged = theta[folds[:, None], np.maximum(logged, 0)]
            q_logged = np.where(logged >= 0, e[None, :S] * th_logged, 0.0)
            th_target = theta[folds[:, None], np.maximum(target, 0)][:, None, :]
            dm = tm.model_value(th_target, theta_mean, e)
            if full is not None:
                keep = agree
                pe = position_based(logged[keep], reward[keep], tm.take(keep), full.take(keep),
                                    examination=e, q_logged=q_logged[keep], dm=dm[keep])
                how = "served policy"
            else:
                pe = position_based(logged, reward, tm, PageMarginals.uniform_page(avail, S),
                                    examination=e, rows=explored, q_logged=q_logged, dm=dm)
                how = "exploration bucket"
            meta = {"bucket_visits": int(explored.sum()), "logger": how, "note": note}
            for k in PAGE_ESTIMATORS:
                rec[k] = _record(pe[k.removeprefix("pbm_")], meta)
            if organic is not None:
                if e_net is None:  # the same bucket and catalogue for every candidate
                    sb = explored[pages.visit]
                    e_net = examination_net_of_organic(
                        pages.row_index[sb], pages.position[sb], pages.play[sb], pages.n_rows,
                        pages.n_positions,
                        organic_count=np.bincount(o_page, minlength=n)[explored],
                        off_page=(avail - (logged >= 0).sum(axis=1))[explored]).ravel()
                if full is not None:
                    at = np.cumsum(agree) - 1
                    sel = agree[o_page]
                    pp = position_based(logged[agree], reward[agree], tm.take(agree),
                                        full.take(agree), examination=e_net,
                                        q_logged=q_logged[agree], dm=dm[agree],
                                        organic=(at[o_page[sel]], o_title[sel]))
                else:
                    pp = position_based(logged, reward, tm, PageMarginals.uniform_page(avail, S),
                                        examination=e_net, rows=explored, q_logged=q_logged,
                                        dm=dm, organic=(o_page, o_title))
                rec["pbm_plays"] = _record(pp["plays_dr"], meta)
        if "pbm_plays" not in rec:
            rec["pbm_plays"] = _unreliable(
                reason or "no organic plays given (the logs' interactions table): all plays "
                "per visit cannot be estimated, only page plays", n)
        out.append(rec)
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
                       estimator: str = "pbm_dr", min_ess: float = 200.0,
                       min_matched: float = 0.5, margin: float = 0.0) -> PromotionDecision:
    """The promotion rule of the module docstring over :func:`evaluate_candidates` records
    and the served baseline (:func:`served_value`), on the estimate ``estimator`` (one of
    :data:`PAGE_ESTIMATORS`, or the slot-match ``snips``/``ips``)."""
    rule = {"min_ess": min_ess, "min_matched": min_matched, "margin": margin}
    if not results:
        return PromotionDecision(False, None, "no candidates", (), rule)
    eligible, why_not = [], []
    for r in results:
        if estimator not in r:
            have = sorted(k for k, v in r.items() if isinstance(v, dict))
            raise ValueError(f"estimator: {estimator!r} is not in the candidate records "
                             f"(they have {have})")
        e = r[estimator]
        if not e.get("reliable", True):
            why_not.append(f"{r['name']}: unreliable estimate ({e.get('reason') or 'flagged'})")
        elif not np.isfinite(e["value"]):
            why_not.append(f"{r['name']}: no estimate")
        elif e["ess"] < min_ess:
            why_not.append(f"{r['name']}: ESS {e['ess']:.0f} < {min_ess:g}")
        elif e["matched"] < min_matched:
            why_not.append(f"{r['name']}: {e['matched']:.2f} matched titles per visit "
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
