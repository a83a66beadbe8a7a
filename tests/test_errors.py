"""One NotFittedError: every estimator raises :class:`reelpick.errors.NotFittedError` before fit."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pandas as pd
import pytest

import reelpick
from reelpick import causal, models
from reelpick.causal import (
    SGDIV,
    SegmentUpliftModel,
    TLearnerUplift,
    TwoStageLeastSquares,
    UpliftPolicy,
)
from reelpick.errors import NotFittedError
from reelpick.ope import LinearRewardModel, LinearSoftmaxPolicy, MultinomialLogit

CTX = pd.DataFrame({"member_id": ["m1"], "device": ["tv"], "hour": [20], "day_of_week": [1],
                    "timestamp": [0]})


def _sequence() -> models.Recommender:
    return models.SequenceRecommender()


def _stack() -> models.Recommender:
    return models.StackRanker()


#: (estimator factory, a call that needs the fitted state) for every estimator class.
BEFORE_FIT = {
    "MostPopular.score": (models.MostPopular, lambda m: m.score(["m1"])),
    "MostPopular.recommend": (models.MostPopular, lambda m: m.recommend(["m1"], k=3)),
    "MostPopular.save": (models.MostPopular, lambda m: m.save("model.npz")),
    "ItemKNN.recommend": (models.ItemKNN, lambda m: m.recommend(["m1"])),
    "ALS.score": (models.ALS, lambda m: m.score(["m1"])),
    "BPR.score": (models.BPR, lambda m: m.score(["m1"])),
    "SequenceRecommender.score": (_sequence, lambda m: m.score(["m1"])),
    "TrendBlend.score": (models.TrendBlend, lambda m: m.score(["m1"])),
    "StackRanker.recommend": (_stack, lambda m: m.recommend(["m1"], k=3)),
    "TrendBlend.refresh_prior": (models.TrendBlend, lambda m: m.refresh_prior(pd.DataFrame(
        {"member_id": ["m1"], "title_id": ["t1"], "timestamp": [0]}))),
    "TwoStageLeastSquares.params_": (TwoStageLeastSquares, lambda m: m.params_),
    "TwoStageLeastSquares.conf_int": (TwoStageLeastSquares, lambda m: m.conf_int()),
    "SGDIV.conf_int": (SGDIV, lambda m: m.conf_int()),
    "SegmentUpliftModel.scores": (SegmentUpliftModel,
                                  lambda m: m.scores(np.array(["m1"]), np.array(["tv"]))),
    "TLearnerUplift.context_scores": (TLearnerUplift, lambda m: m.context_scores(CTX)),
    "UpliftPolicy(unfitted model).choose": (
        lambda: UpliftPolicy(SegmentUpliftModel(), np.array(["m1"]), np.array(["t1"])),
        lambda p: p.choose(None, np.random.default_rng(0))),
    "LinearRewardModel.predict": (lambda: LinearRewardModel(3, 2), lambda m: m.predict(None, 2)),
    "MultinomialLogit.predict_proba": (lambda: MultinomialLogit(3),
                                       lambda m: m.predict_proba(np.zeros((2, 1)))),
    "LinearSoftmaxPolicy.action_dist": (lambda: LinearSoftmaxPolicy(3),
                                        lambda m: m.action_dist(None, 2)),
}

#: Classes with ``fit`` that are usable before it: bandits and scorers start from their prior
#: (cold start).
USABLE_BEFORE_FIT = {
    "reelpick.artwork.bandits": {"EpsilonGreedyArtwork", "LinUCBArtwork", "ThompsonArtwork"},
    "reelpick.policies.bandits": {"LinUCBPolicy", "ThompsonSamplingPolicy"},
    "reelpick.loop.policies": {"PlayCountScorer"},
}

#: ``reelpick.ranking``: the ranker and the candidate sources (which share one base check).
RANKING = {
    "Ranker.predict": ("reelpick.ranking.ranker", "Ranker",
                       lambda m: m.predict(np.zeros((1, 1)))),
    "TrendingSource.score": ("reelpick.ranking.sources", "TrendingSource",
                             lambda s: s.score(None)),
}


def _estimator_classes() -> dict[str, set[str]]:
    """Concrete public classes with ``fit``, by module, over the whole package."""
    out: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(reelpick.__path__, "reelpick."):
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and obj.__module__ == info.name
                    and not name.startswith("_") and callable(getattr(obj, "fit", None))
                    and not inspect.isabstract(obj) and not getattr(obj, "_is_protocol", False)):
                out.setdefault(info.name, set()).add(name)
    return out


def test_the_error_is_a_value_and_attribute_error_and_exported_once():
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert models.NotFittedError is NotFittedError and causal.NotFittedError is NotFittedError


@pytest.mark.parametrize("case", sorted(BEFORE_FIT))
def test_estimator_raises_not_fitted_before_fit(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, call = BEFORE_FIT[case]
    with pytest.raises(NotFittedError, match="is not fitted: call .*fit"):
        call(make())
    assert not (tmp_path / "model.npz").exists()


def test_learned_attributes_are_absent_before_fit():
    """As in scikit-learn: a property over the fitted state is not there (``hasattr``)."""
    assert not hasattr(TwoStageLeastSquares(), "params_")
    assert not hasattr(models.MostPopular(), "user_items_")


@pytest.mark.parametrize("case", sorted(RANKING))
def test_ranking_raises_not_fitted_before_fit(case):
    module, name, call = RANKING[case]
    with pytest.raises(NotFittedError):
        call(getattr(importlib.import_module(module), name)())


def test_every_estimator_class_is_covered():
    """A new class with ``fit`` must be added to one of the tables above."""
    covered = {type(make()).__name__ for make, _ in BEFORE_FIT.values()}
    missing = []
    for module, names in _estimator_classes().items():
        if module.startswith("reelpick.ranking."):
            continue  # RANKING above; the sources share one base check
        missing += [f"{module}.{n}" for n in names
                    if n not in covered and n not in USABLE_BEFORE_FIT.get(module, set())]
    assert not missing, f"estimator classes without a before-fit case: {sorted(missing)}"
