"""Invalid inputs fail early with a message naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.artwork import (
    ArtworkBanditConfig,
    ArtworkCatalog,
    EpsilonGreedyArtwork,
    FeatureConfig,
    LinUCBArtwork,
    ThompsonArtwork,
    UniformArtwork,
    WithArtwork,
    evaluate_artwork_policy,
    normal_argmax_probabilities,
    render_artwork,
    replay_take_fraction,
)
from reelpick.policies import UniformPolicy

CAT = dict(art_offset=[0, 2, 5], theme=[0, 1, 2, 3, 4], quality=[0.0] * 5,
           genre_onehot=np.eye(2))

CASES = [
    (lambda: ArtworkCatalog(**{**CAT, "art_offset": [0, 2, 2]}), ValueError, "art_offset"),
    (lambda: ArtworkCatalog(**{**CAT, "theme": [0, 1, 2, 3, 9]}), ValueError, "theme"),
    (lambda: ArtworkCatalog(**{**CAT, "quality": [0, 0, np.nan, 0, 0]}), ValueError, "quality"),
    (lambda: FeatureConfig(smoothing=0), ValueError, "smoothing"),
    (lambda: FeatureConfig(min_history=-1), ValueError, "min_history"),
    (lambda: ArtworkBanditConfig(epsilon=1.5), ValueError, "epsilon"),
    (lambda: ArtworkBanditConfig(noise=0), ValueError, "noise"),
    (lambda: ArtworkBanditConfig(alpha=-1), ValueError, "alpha"),
    (lambda: ArtworkBanditConfig(l2=0), ValueError, "l2"),
    (lambda: ArtworkBanditConfig(n_folds=1), ValueError, "n_folds"),
    (lambda: EpsilonGreedyArtwork(ArtworkCatalog(**CAT), 3, epsilon=-0.1), ValueError,
     "epsilon"),
    (lambda: LinUCBArtwork("catalog", 3), TypeError, "catalog"),
    (lambda: ThompsonArtwork(ArtworkCatalog(**CAT), 3).fit("rows"), TypeError, "rows"),
    (lambda: UniformArtwork(seed=-1), ValueError, "seed"),
    (lambda: WithArtwork(object(), UniformArtwork()), TypeError, "title_policy"),
    (lambda: WithArtwork(UniformPolicy(), object()), TypeError, "selector"),
    (lambda: normal_argmax_probabilities(np.zeros((1, 2)), np.array([[1.0, 0.0]])),
     ValueError, "sd"),
    (lambda: normal_argmax_probabilities(np.full((1, 2), -np.inf), np.ones((1, 2))),
     ValueError, "mean"),
    (lambda: render_artwork("x", "western"), ValueError, "theme"),
    (lambda: render_artwork("x", "comedy", variant=-1), ValueError, "variant"),
    (lambda: render_artwork("x", "comedy", quality=float("inf")), ValueError, "quality"),
]


@pytest.mark.parametrize(("make", "error", "match"), CASES)
def test_invalid_inputs(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_invalid_select_and_evaluation(fitted, world, visits, explore_rows):
    sel = fitted["egreedy"]
    with pytest.raises(ValueError, match="titles: expected shape"):
        sel.select(visits, np.zeros((len(visits) + 1, 3), int), np.random.default_rng(0))
    with pytest.raises(ValueError, match="titles: indices"):
        sel.select(visits, np.full((len(visits), 2), 10_000), np.random.default_rng(0))
    far = world.make_visits([0], world.config.start + 3600)
    bad = EpsilonGreedyArtwork(sel.catalog, 1)
    with pytest.raises(ValueError, match="visits.member"):
        bad.select(world.make_visits([5], world.config.start + 3600), np.array([[0]]),
                   np.random.default_rng(0))
    del far
    p = sel.row_probabilities(explore_rows)
    with pytest.raises(ValueError, match="target: expected shape"):
        replay_take_fraction(explore_rows, p[:-1])
    with pytest.raises(ValueError, match="unknown"):
        evaluate_artwork_policy(explore_rows, p, ["magic"])
    with pytest.raises(ValueError, match="cluster"):
        replay_take_fraction(explore_rows, p, cluster="title")
    with pytest.raises(ValueError, match="cluster"):
        evaluate_artwork_policy(explore_rows, p, ["ips"], cluster="page")
    with pytest.raises(ValueError, match="reward_hat"):
        evaluate_artwork_policy(explore_rows, p, ["dr"])
    skewed = explore_rows.take(np.arange(100))
    object.__setattr__(skewed, "pscore", np.full(100, 0.9))
    with pytest.raises(ValueError, match="image-explore"):
        replay_take_fraction(skewed, p[:100])
