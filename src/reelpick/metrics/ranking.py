r"""Top-k ranking metrics: HR, Precision, Recall, NDCG, MRR, catalogue coverage and novelty.

Inputs use one vocabulary: ``recommended`` is ``(n_members, k)`` int title indices (best first,
``-1`` for an empty slot) and ``truth`` a ``(n_members, n_titles)`` sparse 0/1 matrix of held-out
titles, row ``u`` for the member of row ``u`` of ``recommended``. Members without any held-out
title are skipped. With :math:`h_{u,r} \in \{0,1\}` the hit at rank :math:`r` (1-based) and
:math:`T_u` the member's held-out set:

.. math::

    \mathrm{HR@k} = \mathbb{1}[\textstyle\sum_{r \le k} h_{u,r} > 0], \quad
    \mathrm{Recall@k} = \frac{\sum_{r \le k} h_{u,r}}{|T_u|}, \quad
    \mathrm{MRR@k} = \max_{r \le k} \frac{h_{u,r}}{r}

.. math::

    \mathrm{NDCG@k} = \frac{\sum_{r \le k} h_{u,r} / \log_2(r + 1)}
                           {\sum_{r \le \min(k, |T_u|)} 1 / \log_2(r + 1)}

Coverage@k is the share of the catalogue recommended to anyone; Novelty@k the mean
self-information :math:`-\log_2 p_i` of recommended titles, :math:`p_i` the share of members who
interacted with title :math:`i` in training (Zhou et al., PNAS 2010), floored at one member.

Example
-------
>>> import numpy as np, scipy.sparse as sp
>>> rec = np.array([[3, 1, 2]])
>>> truth = sp.csr_matrix(([1], ([0], [1])), shape=(1, 4))
>>> round(ranking_metrics(rec, truth, ks=(3,)).summary["NDCG@3"], 4)
0.6309
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class RankingResult:
    """Per-member metric values (``per_member``, one row per evaluated member) and their means
    plus catalogue-level metrics (``summary``, e.g. ``{"NDCG@10": 0.07, "Coverage@10": 0.2}``)."""

    per_member: pd.DataFrame
    summary: dict[str, float]


def truth_matrix(member_idx: np.ndarray, title_idx: np.ndarray, n_members: int,
                 n_titles: int) -> sp.csr_matrix:
    """A 0/1 CSR matrix with ones at (member, title); title indices < 0 (unknown) are dropped."""
    keep = (title_idx >= 0) & (member_idx >= 0)
    data = np.ones(int(keep.sum()), dtype=np.float32)
    m = sp.csr_matrix((data, (member_idx[keep], title_idx[keep])), shape=(n_members, n_titles))
    m.data[:] = 1.0  # duplicates summed: back to 0/1
    return m


def hits_at_k(recommended: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_members, k)``: whether the title at each rank is in that member's truth."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be (n_members, k), got shape {rec.shape}")
    if rec.shape[0] != truth.shape[0]:
        raise ValueError(f"recommended has {rec.shape[0]} rows but truth has {truth.shape[0]}")
    truth = sp.csr_matrix(truth)
    rows = np.repeat(np.arange(rec.shape[0]), rec.shape[1])
    cols = rec.ravel()
    valid = cols >= 0
    hits = np.zeros(rows.shape, dtype=bool)
    hits[valid] = np.asarray(truth[rows[valid], cols[valid]]).ravel() > 0
    return hits.reshape(rec.shape)


def ranking_metrics(
    recommended: np.ndarray,
    truth: sp.csr_matrix,
    *,
    ks: Sequence[int] = (10,),
    item_popularity: np.ndarray | None = None,
    n_titles: int | None = None,
) -> RankingResult:
    """Compute HR, Precision, Recall, NDCG, MRR at every ``k`` in ``ks`` (``k`` at most the number
    of columns of ``recommended``), plus Coverage@k and, with ``item_popularity`` (share of
    training members per title, length ``n_titles``), Novelty@k."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be (n_members, k), got shape {rec.shape}")
    kmax = rec.shape[1]
    if any(k < 1 or k > kmax for k in ks):
        raise ValueError(f"every k must be in 1..{kmax} (columns of recommended), got {list(ks)}")
    n_titles = truth.shape[1] if n_titles is None else n_titles
    n_true = np.asarray(truth.getnnz(axis=1)).ravel()
    evaluated = n_true > 0
    hits = hits_at_k(rec, truth)[evaluated]
    n_true = n_true[evaluated]
    ranks = np.arange(1, kmax + 1)
    discount = 1.0 / np.log2(ranks + 1)
    cum_discount = np.concatenate([[0.0], np.cumsum(discount)])
    per: dict[str, np.ndarray] = {}
    summary: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        per[f"HR@{k}"] = (n_hit > 0).astype(float)
        per[f"Precision@{k}"] = n_hit / k
        per[f"Recall@{k}"] = n_hit / n_true
        idcg = cum_discount[np.minimum(n_true, k)]
        per[f"NDCG@{k}"] = (h * discount[:k]).sum(axis=1) / idcg
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, np.inf)
        per[f"MRR@{k}"] = 1.0 / first
        top = rec[:, :k]
        summary[f"Coverage@{k}"] = float(np.unique(top[top >= 0]).size / max(n_titles, 1))
        if item_popularity is not None:
            pop = np.asarray(item_popularity, dtype=float)
            floor = pop[pop > 0].min() if (pop > 0).any() else 1.0
            info = -np.log2(np.maximum(pop, floor))
            valid = top >= 0
            summary[f"Novelty@{k}"] = float(info[top[valid]].mean()) if valid.any() else 0.0
    per_member = pd.DataFrame(per)
    means = {name: float(v.mean()) if len(v) else float("nan") for name, v in per.items()}
    means.update(summary)
    means["n_members"] = float(evaluated.sum())
    return RankingResult(per_member=per_member, summary=means)
