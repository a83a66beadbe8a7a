"""Ranking metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from reelpick.metrics import hits_at_k, ranking_metrics, truth_matrix


def _truth(rows, n_titles=6):
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [t for items in rows for t in items]
    return truth_matrix(np.array(r), np.array(c), len(rows), n_titles)


def test_hand_computed_member():
    # member 0: truth {1, 4}; list [3, 1, 5, 4] -> hits at ranks 2 and 4
    rec = np.array([[3, 1, 5, 4]])
    res = ranking_metrics(rec, _truth([[1, 4]]), ks=(2, 4))
    s = res.summary
    dcg4 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg2 = 1 + 1 / math.log2(3)
    assert s["NDCG@4"] == pytest.approx(dcg4 / idcg2)
    assert s["NDCG@2"] == pytest.approx((1 / math.log2(3)) / idcg2)
    assert s["HR@2"] == 1.0 and s["Recall@2"] == 0.5 and s["Recall@4"] == 1.0
    assert s["MRR@4"] == pytest.approx(0.5) and s["Precision@4"] == 0.5
    assert s["Coverage@2"] == pytest.approx(2 / 6)


def test_members_average_and_skip_without_truth():
    rec = np.array([[0, 1], [2, 3], [4, 5]])
    res = ranking_metrics(rec, _truth([[0], [5], []]), ks=(2,))
    assert res.summary["n_members"] == 2
    assert res.summary["HR@2"] == pytest.approx(0.5)
    assert res.summary["NDCG@2"] == pytest.approx(0.5)
    assert len(res.per_member) == 2


def test_empty_slots_and_novelty():
    rec = np.array([[2, -1]])
    pop = np.array([0.5, 0.25, 0.125, 0.0, 0.0, 0.0])
    res = ranking_metrics(rec, _truth([[2]]), ks=(2,), item_popularity=pop)
    assert res.summary["NDCG@2"] == pytest.approx(1.0)
    assert res.summary["Novelty@2"] == pytest.approx(3.0)  # -log2(1/8)
    assert hits_at_k(rec, _truth([[2]])).tolist() == [[True, False]]


@pytest.mark.parametrize(("rec", "truth", "ks", "message"), [
    (np.array([1, 2]), sp.csr_matrix((1, 4)), (1,), "n_members, k"),
    (np.array([[1, 2]]), sp.csr_matrix((2, 4)), (1,), "rows"),
    (np.array([[1, 2]]), sp.csr_matrix((1, 4)), (3,), "every k"),
])
def test_bad_inputs(rec, truth, ks, message):
    with pytest.raises(ValueError, match=message):
        ranking_metrics(rec, truth, ks=ks)
