"""Training rows for the page policy's ranker when only plays were logged (implicit feedback).

A catalogue whose logs hold plays but no impressions (MovieLens, a first launch) has no shown-
and-not-played titles for the ranker to learn from. :func:`implicit_impressions` builds them
the standard way, by negative sampling: every play becomes a *pseudo-page* of one row holding
the played title and ``negatives`` titles drawn uniformly from those released by the play's
time (never the played title), the played title at a uniformly random position (so that
position carries no signal). :func:`reelpick.page.train_page_policy` then trains the same
:class:`~reelpick.page.PagePolicy` on these tables as on logged pages: the ranker learns
p(play | title among random alternatives), the usual sampled approximation of p(play | shown).

The tables follow :data:`reelpick.data.schema.IMPRESSIONS` / ``OUTCOMES`` with ``policy =
"implicit-negatives"`` and propensity 1. They are **not logged decisions**: never evaluate a
policy off-policy on them (``reelpick ope`` needs the service's exported logs).

Example
-------
>>> import pandas as pd
>>> plays = pd.DataFrame({"member_id": ["a", "a", "b"], "title_id": ["t1", "t2", "t1"],
...                       "timestamp": [10, 20, 30]})
>>> titles = pd.DataFrame({"title_id": ["t1", "t2", "t3", "t4"]})
>>> imp, out = implicit_impressions(plays, titles, negatives=2, seed=0)
>>> len(imp), len(out), int(imp.groupby("page_id").size().max())
(9, 3, 3)
>>> bool(imp.merge(out, on="decision_id")["title_id"].tolist() == ["t1", "t2", "t1"])
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reelpick.data.schema import INTERACTIONS, TITLES

__all__ = ["IMPLICIT_POLICY", "implicit_impressions"]

#: The ``policy`` column of pseudo-pages (not a logged decision).
IMPLICIT_POLICY = "implicit-negatives"
_CONTEXT = ("device", "country", "hour", "day_of_week")


def implicit_impressions(interactions: pd.DataFrame, titles: pd.DataFrame, *,
                         negatives: int = 9, seed: int = 0, country: str | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(impressions, outcomes)``: one pseudo-page per play of ``interactions`` (module
    docstring). Plays of titles not in ``titles`` are dropped; the play's context columns
    (``device``, ``country``, ``hour``, ``day_of_week``), when present, are the page's.

    Parameters
    ----------
    interactions : plays, :data:`~reelpick.data.schema.INTERACTIONS`.
    titles : the catalogue, :data:`~reelpick.data.schema.TITLES` (``release_ts`` restricts
        each page's negatives to titles released by then).
    negatives : titles drawn per play (>= 1); fewer when fewer titles were released.
    seed : the draw's seed.
    country : the pages' country when the plays have no ``country`` column.
    """
    if negatives < 1:
        raise ValueError(f"negatives: must be >= 1, got {negatives!r}")
    inter = INTERACTIONS.validate(interactions, source="interactions")
    titles = TITLES.validate(titles, source="titles")
    ids = titles["title_id"].astype(str).to_numpy()
    index = pd.Index(ids)
    t_pos = index.get_indexer(inter["title_id"].astype(str))
    inter = inter[t_pos >= 0].sort_values("timestamp", kind="stable").reset_index(drop=True)
    t_pos = index.get_indexer(inter["title_id"].astype(str))
    if len(inter) == 0:
        raise ValueError("interactions: no plays of a title in the titles table")
    n, T = len(inter), len(ids)
    ts = inter["timestamp"].to_numpy(dtype=np.int64)
    release = (titles["release_ts"].fillna(0).to_numpy(dtype=np.int64)
               if "release_ts" in titles else np.zeros(T, np.int64))
    by_release = np.argsort(release, kind="stable")
    # titles released by each play's time (its own title always counts, even if earlier)
    n_out = np.maximum(np.searchsorted(release[by_release], ts, side="right"), 1)
    k = np.minimum(negatives, np.maximum(n_out - 1, 0))          # negatives per page
    rng = np.random.default_rng(seed)
    neg = np.full((n, negatives), -1, dtype=np.int64)
    for j in range(negatives):
        need = np.flatnonzero(j < k)
        while need.size:  # rejection: not the played title, not a title already drawn
            draw = by_release[(rng.random(need.size) * n_out[need]).astype(np.int64)]
            bad = (draw == t_pos[need]) | (neg[need, :j] == draw[:, None]).any(axis=1)
            neg[need[~bad], j] = draw[~bad]
            need = need[bad]
    size = 1 + k                                                  # slots per page
    slot_page = np.repeat(np.arange(n), size)
    slot = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
    hit = (rng.random(n) * size).astype(np.int64)                 # the played title's slot
    # slot s < hit holds negative s, slot hit the play, slot s > hit negative s - 1
    neg_col = np.where(slot < hit[slot_page], slot, slot - 1)
    title = np.where(slot == hit[slot_page], t_pos[slot_page],
                     neg[slot_page, np.maximum(neg_col, 0)])
    page_id = np.char.add("implicit-", np.arange(n).astype(str))
    decision = np.char.add(np.char.add(page_id[slot_page], "-"), slot.astype(str))
    imp = pd.DataFrame({
        "decision_id": decision, "page_id": page_id[slot_page], "timestamp": ts[slot_page],
        "member_id": inter["member_id"].astype(str).to_numpy()[slot_page], "row": "implicit",
        "row_index": 0, "position": slot, "title_id": ids[title], "policy": IMPLICIT_POLICY,
        "propensity": 1.0})
    for c in _CONTEXT:
        if c in inter:
            imp[c] = inter[c].to_numpy()[slot_page]
    if "country" not in inter and country is not None:
        imp["country"] = country
    played = slot == hit[slot_page]
    out = pd.DataFrame({"decision_id": decision[played], "play": 1,
                        "timestamp": ts})
    if "watch_seconds" in inter:
        out["watch_seconds"] = inter["watch_seconds"].fillna(0).to_numpy()
    return imp, out
