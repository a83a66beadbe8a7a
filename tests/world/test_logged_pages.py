"""SimulationLog.logged_pages: the log's observable part as the shared contract, the same
arrays logged_pages reads from the log's own tables."""

from __future__ import annotations

import numpy as np

from reelpick.decision.tables import logged_pages
from reelpick.world import PromotionPolicy, World, WorldConfig


def test_logged_pages_equal_the_tables_route() -> None:
    world = World(WorldConfig.preset("small"), seed=3)
    log = world.simulate(PromotionPolicy(), 400, seed=1)
    a = log.logged_pages(n_titles=world.config.n_titles)
    art = world.artworks()
    index = {x: i for i, x in enumerate(art["artwork_id"])}
    offset: dict[str, tuple[int, int]] = {}
    for i, t in enumerate(art["title_id"]):
        lo, n = offset.get(t, (i, 0))
        offset[t] = (lo, n + 1)
    b = logged_pages(log.impressions(), log.outcomes(), title_ids=world.titles()["title_id"],
                     countries=world.config.countries, artwork_index=index,
                     artwork_offset=offset)
    assert a.title_ids == b.title_ids and a.countries == b.countries
    assert (a.n_rows, a.n_positions) == (b.n_rows, b.n_positions)
    for f in ("page_id", "member_id", "timestamp", "device", "country", "hour", "day_of_week",
              "cell", "policy", "model_version"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    # the tables route orders slots by time, row and position; the log by visit and slot
    o = np.lexsort((b.slot, b.visit))
    for f in ("visit", "title", "artwork", "row_index", "position", "slot", "propensity",
              "artwork_propensity", "play", "watch_seconds", "row_label"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f)[o], err_msg=f)
    assert (a.artwork >= 0).all() and a.play.sum() == log.shown.play.sum()
