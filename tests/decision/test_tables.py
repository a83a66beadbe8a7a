"""Logged tables -> LoggedPages: the simulator's own arrays come back exactly, bad rows are
named by line and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data.schema import SchemaError
from reelpick.decision.tables import logged_pages
from reelpick.policies import PopularPolicy
from reelpick.world import World, WorldConfig


@pytest.fixture(scope="module")
def sim():
    world = World(WorldConfig.preset("small"), seed=12)
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), 400, seed=1)
    return world, log


def _artwork_maps(artworks: pd.DataFrame):
    index = {a: i for i, a in enumerate(artworks["artwork_id"].astype(str))}
    offset: dict[str, tuple[int, int]] = {}
    for i, t in enumerate(artworks["title_id"].astype(str)):
        lo, n = offset.get(t, (i, 0))
        offset[t] = (lo, n + 1)
    return index, offset


def test_simulated_tables_round_trip_to_the_simulator_arrays(sim) -> None:
    world, log = sim
    index, offset = _artwork_maps(world.artworks())
    lp = logged_pages(log.impressions(), log.outcomes(), title_ids=world.titles()["title_id"],
                      countries=world.config.countries, artwork_index=index,
                      artwork_offset=offset)
    s = log.shown
    assert lp.n_pages == log.n_visits and len(lp) == s.visit.size
    np.testing.assert_array_equal(lp.visit, s.visit)
    np.testing.assert_array_equal(lp.slot, s.slot)
    np.testing.assert_array_equal(lp.title, s.title)
    np.testing.assert_array_equal(lp.play, s.play)
    np.testing.assert_allclose(lp.propensity, s.propensity)
    np.testing.assert_allclose(lp.artwork_propensity, s.artwork_propensity)
    # the artwork variant within its title is the global index minus the title's first image
    np.testing.assert_array_equal(lp.artwork, s.artwork - world.entities.art_offset[s.title])
    np.testing.assert_array_equal(lp.timestamp, log.visits.timestamp)
    np.testing.assert_array_equal(lp.device, log.visits.device)
    np.testing.assert_array_equal(lp.country, log.visits.country)
    titles = lp.slot_matrix("title")
    assert titles.shape == (log.n_visits, world.config.page_rows * world.config.page_positions)
    np.testing.assert_array_equal(titles[s.visit, s.slot], s.title)


def test_take_pages_keeps_their_slots(sim) -> None:
    world, log = sim
    lp = logged_pages(log.impressions(), log.outcomes(), title_ids=world.titles()["title_id"])
    sub = lp.take_pages(np.array([5, 2]))
    assert sub.n_pages == 2 and sub.page_id.tolist() == [lp.page_id[2], lp.page_id[5]]
    np.testing.assert_array_equal(sub.slot_matrix("title"), lp.slot_matrix("title")[[2, 5]])


def _toy() -> pd.DataFrame:
    return pd.DataFrame({
        "decision_id": ["d0", "d1", "d2"], "page_id": ["p0", "p0", "p1"],
        "timestamp": [10, 10, 20], "member_id": ["ana", "ana", "bo"], "row": ["Top"] * 3,
        "row_index": [0, 0, 0], "position": [0, 1, 0], "title_id": ["up", "coco", "heat"],
        "policy": ["uniform"] * 3, "propensity": [0.5, 0.5, 0.25]})


def test_unknown_title_is_named_with_its_line() -> None:
    with pytest.raises(SchemaError, match=r"title_id.*'heat'|'heat'.*title_id") as exc:
        logged_pages(_toy(), pd.DataFrame({"decision_id": ["d1"], "play": [1]}),
                     title_ids=["up", "coco"])
    assert "line 4" in str(exc.value)


def test_needs_outcomes_or_a_play_column() -> None:
    with pytest.raises(SchemaError, match="play"):
        logged_pages(_toy(), None, title_ids=["up", "coco", "heat"])
    lp = logged_pages(_toy().assign(play=[0, 1, 1]), None, title_ids=["up", "coco", "heat"])
    assert lp.slot_matrix("play").tolist() == [[0, 1], [1, -1]]


def test_position_beyond_the_layout_is_refused() -> None:
    with pytest.raises(SchemaError, match="n_positions"):
        logged_pages(_toy().assign(play=0), None, title_ids=["up", "coco", "heat"],
                     n_positions=1)
