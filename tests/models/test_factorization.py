"""ALS recency weighting: confidence halves every half-life (closed form)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.models import ALS

DAY = 86400


def test_recency_confidence_halves_each_half_life():
    df = pd.DataFrame({"member_id": ["a", "a", "b"], "title_id": ["x", "y", "x"],
                       "timestamp": [100 * DAY, 90 * DAY, 80 * DAY]})
    model = ALS(factors=2, iterations=1, recency_half_life_days=10.0).fit(df)
    conf = model._confidence(model.user_items_, df).toarray()
    a, b = model.member_vocab_.index(["a", "b"])
    x, y = model.title_vocab_.index(["x", "y"])
    assert conf[a, x] == pytest.approx(1.0)
    assert conf[a, y] == pytest.approx(0.5)
    assert conf[b, x] == pytest.approx(0.25)
    plain = ALS(factors=2, iterations=1).fit(df)
    assert np.array_equal(plain._confidence(plain.user_items_, df).toarray(),
                          plain.user_items_.toarray())



def test_bm25_weighting_matches_implicit_and_damps_popular_titles():
    from implicit.nearest_neighbours import bm25_weight

    df = pd.DataFrame({"member_id": ["a", "b", "c", "a"], "title_id": ["x", "x", "x", "y"],
                       "timestamp": [1, 2, 3, 4]})
    model = ALS(factors=2, iterations=1, weighting="bm25", bm25_k1=1.2, bm25_b=0.75).fit(df)
    conf = model._confidence(model.user_items_, df).toarray()
    expected = bm25_weight(model.user_items_, K1=1.2, B=0.75).toarray()
    np.testing.assert_allclose(conf, expected, rtol=1e-6)
    a = model.member_vocab_.index(["a"])[0]
    x, y = model.title_vocab_.index(["x", "y"])
    assert conf[a, y] > conf[a, x]  # the title everyone played counts for less


@pytest.mark.parametrize(("params", "message"), [
    ({"weighting": "tfidf"}, "ALSConfig.weighting: must be 'none' or 'bm25'"),
    ({"bm25_b": 1.5}, "ALSConfig.bm25_b"),
    ({"recency_half_life_days": 0.0}, "ALSConfig.recency_half_life_days"),
])
def test_invalid_als_weighting(params, message):
    with pytest.raises(ValueError, match=message):
        ALS(**params)
