"""Shared fixtures: a small world, an image-explore log and fitted artwork bandits."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.artwork import (
    ArtworkCatalog,
    ArtworkRows,
    EpsilonGreedyArtwork,
    FeatureConfig,
    LinUCBArtwork,
    ThompsonArtwork,
    UniformArtwork,
    image_explore,
)
from reelpick.policies import UniformPolicy
from reelpick.world import World, WorldConfig


@pytest.fixture(scope="session")
def world() -> World:
    # strong theme tastes, few members: every member builds a history quickly
    cfg = WorldConfig.preset("small", n_members=120, n_titles=80, theme_weight=1.5,
                             theme_scale=1.0, page_rows=2, page_positions=5)
    return World(cfg, seed=11)


@pytest.fixture(scope="session")
def catalog(world) -> ArtworkCatalog:
    return ArtworkCatalog.from_world(world)


@pytest.fixture(scope="session")
def explore_rows(world, catalog) -> ArtworkRows:
    log = world.simulate(image_explore(UniformPolicy(), seed=1), 8_000, seed=21)
    return ArtworkRows.from_pages(log.logged_pages(), catalog.art_offset,
                                  world.members()["member_id"])


def make_selectors(catalog, n_members):
    return {
        "egreedy": EpsilonGreedyArtwork(catalog, n_members, epsilon=0.2),
        "linucb": LinUCBArtwork(catalog, n_members, alpha=0.5, epsilon=0.05),
        "thompson": ThompsonArtwork(catalog, n_members, noise=0.25),
        "best-image": ThompsonArtwork(catalog, n_members, features=FeatureConfig.non_personal()),
        "uniform": UniformArtwork(sticky=False),
    }


@pytest.fixture(scope="session")
def fitted(world, catalog, explore_rows):
    sel = make_selectors(catalog, world.config.n_members)
    for k, s in sel.items():
        if k != "uniform":
            s.fit(explore_rows)
    return sel


@pytest.fixture
def visits(world):
    return world.make_visits(np.arange(6), world.config.start + 5 * 86_400 + 20 * 3600,
                             device=["tv", "mobile", "tablet", "web", "tv", "mobile"])
