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

