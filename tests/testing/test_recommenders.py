"""The recommender contract suite (:func:`reelpick.testing.check_recommender`) on every model."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.models import MostPopular, available_models, make_model
from reelpick.testing import check_recommender
from tests.conftest import make_interactions
from tests.models.test_contract import FAST


@pytest.fixture(scope="module")
def interactions():
    return make_interactions(n_members=30, n_titles=24, per_member=8)


@pytest.mark.parametrize("name", available_models())
def test_every_recommender_meets_the_contract(name, interactions):
    check_recommender(lambda: make_model(name, **FAST[name]), interactions)


class _RecommendsSeen(MostPopular):
    """Broken on purpose: ignores ``exclude_seen``."""

    def recommend(self, member_ids, k=10, **kw):
        kw["exclude_seen"] = False
        return super().recommend(member_ids, k, **kw)


class _NoisyScores(MostPopular):
    """Broken on purpose: scores change from call to call."""

    def _score(self, member_idx):
        s = super()._score(member_idx)
        return s + np.random.default_rng().normal(size=s.shape)


class _Fitted(MostPopular):
    """Broken on purpose: usable before fit (silently empty)."""

    def score(self, member_ids, *, context=None):
        if not self.is_fitted:
            return np.zeros((len(member_ids), 0), np.float32)
        return super().score(member_ids, context=context)


@pytest.mark.parametrize("cls, message", [
    (_RecommendsSeen, "recommends a title 'm0' has seen"),
    (_NoisyScores, "score\\(\\) differs between two calls"),
    (_Fitted, "score\\(\\) before fit did not raise NotFittedError"),
])
def test_the_suite_catches_broken_recommenders(cls, message, interactions):
    with pytest.raises(AssertionError, match=f"^{cls.__name__}: .*{message}"):
        check_recommender(cls, interactions)


def test_a_fitted_factory_is_refused(interactions):
    fitted = MostPopular().fit(interactions)
    with pytest.raises(AssertionError, match="returned a fitted model"):
        check_recommender(lambda: fitted, interactions)
