"""concat_logs keeps row labels and page makers of every part."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reelpick.loop import concat_logs
from reelpick.world import World, WorldConfig
from tests.world.test_page_annotations import LabelledUniform


def test_concat_keeps_rows_and_page_sources():
    world = World(WorldConfig.preset("small"), seed=3)
    a = world.simulate(LabelledUniform(), 60, seed=1)
    b = world.simulate(LabelledUniform(), 40, seed=2)
    merged = concat_logs([a, b]).impressions()
    parts = pd.concat([a.impressions(), b.impressions()], ignore_index=True)
    assert len(merged) == len(parts)
    for col in ("row", "page_source", "title_id"):
        assert np.array_equal(merged[col].to_numpy(), parts[col].to_numpy())
