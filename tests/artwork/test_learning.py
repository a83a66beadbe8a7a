"""The bandits learn what the world knows: members with a clear theme taste get images of
that theme, and the personalised choice is the truly best image more often than the best
single image per title, which beats random."""

from __future__ import annotations

import numpy as np
import pytest


def truth_best(world, visits, titles):
    """The world's play probability of every variant ``(n, S, V)`` (``-inf`` padding)."""
    ent = world.entities
    V = int(ent.n_variants.max())
    out = np.full((*titles.shape, V), -np.inf)
    for k in range(V):
        ok = k < ent.n_variants[titles]
        p = world.play_probability(visits, titles, np.where(ok, k, 0))
        out[..., k] = np.where(ok, p, -np.inf)
    return out


@pytest.fixture(scope="module")
def clear_case(world):
    taste = world.entities.theme_taste
    srt = np.sort(taste, axis=1)
    members = np.flatnonzero(srt[:, -1] - srt[:, -2] > 0.8)[:30]
    assert members.size >= 10
    vb = world.make_visits(members, world.config.start + 3 * 86_400 + 21 * 3600)
    avail = np.flatnonzero(vb.available[vb.country].all(axis=0))[:40]
    titles = np.tile(avail, (members.size, 1))
    return members, vb, titles, taste[members].argmax(axis=1)


@pytest.mark.parametrize("name", ["egreedy", "linucb", "thompson"])
def test_clear_theme_taste_gets_its_theme(name, fitted, world, catalog, clear_case):
    members, vb, titles, top = clear_case
    p = fitted[name].probabilities(vb, titles)
    glob, valid = catalog.pad(titles)
    theme = catalog.theme[glob]
    has = (valid & (theme == top[:, None, None])).any(axis=2)           # title has that image
    share = (p * (valid & (theme == top[:, None, None]))).sum(axis=2)   # P(show that theme)
    chance = ((valid & (theme == top[:, None, None])).sum(axis=2) / valid.sum(axis=2))
    assert share[has].mean() > 0.7
    assert share[has].mean() > chance[has].mean() + 0.3


def test_personalised_beats_best_image_beats_random(fitted, world, clear_case):
    members, vb, titles, _ = clear_case
    truth = truth_best(world, vb, titles)
    best = np.argmax(truth, axis=2)

    def hit(name):
        p = fitted[name].probabilities(vb, titles)
        return float(np.take_along_axis(p, best[..., None], axis=2).mean())

    personal, single, rand = hit("egreedy"), hit("best-image"), hit("uniform")
    assert personal > single + 0.1
    assert single > rand
