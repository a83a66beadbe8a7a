"""Per-visit row labels and page makers (e.g. the greedy winner's name) reach the logs."""

from __future__ import annotations

import numpy as np

from reelpick.data.schema import IMPRESSIONS
from reelpick.policies import UniformPolicy
from reelpick.world import World, WorldConfig


class LabelledUniform:
    """Uniform pages whose rows are named per visit and whose maker alternates by member."""

    name = "labelled"

    def __init__(self) -> None:
        self.inner = UniformPolicy()

    def choose(self, visits, rng):
        page = self.inner.choose(visits, rng)
        n, s = page.titles.shape
        member = visits.member[:, None]
        label = np.where(member % 2 == 0, "Top picks", "Trending now")
        slot_label = np.broadcast_to(label, (n, s)).astype(object)
        slot_label = np.where(page.row_index == 0, slot_label, "Because you watched")
        source = np.where(visits.member % 2 == 0, "als", "seq").astype(object)
        return type(page)(**{**page.__dict__, "slot_label": slot_label, "source": source})


def test_slot_labels_and_sources_are_logged():
    world = World(WorldConfig.preset("small"), seed=3)
    log = world.simulate(LabelledUniform(), 300, seed=3)
    imp = IMPRESSIONS.validate(log.impressions(), source="log")
    member_num = imp["member_id"].str[1:].astype(int)
    first_row = imp["row_index"] == 0
    expected = np.where(member_num % 2 == 0, "Top picks", "Trending now")
    assert (imp.loc[first_row, "row"].to_numpy() == expected[first_row.to_numpy()]).all()
    assert (imp.loc[~first_row, "row"] == "Because you watched").all()
    assert (imp["page_source"].to_numpy() == np.where(member_num % 2 == 0, "als", "seq")).all()


def test_plain_pages_have_no_page_source():
    world = World(WorldConfig.preset("small"), seed=3)
    imp = world.simulate(UniformPolicy(), 50, seed=1).impressions()
    assert "page_source" not in imp.columns


def test_greedy_winner_name_is_logged():
    from reelpick.policies import GreedyWinnerPolicy, PopularityScorer

    class Flat:
        """A model with no opinion: constant scores, so popularity always wins on 'max'."""

        def score(self, visits):
            return np.zeros((len(visits), visits.catalog.n_titles))

    world = World(WorldConfig.preset("small"), seed=0)
    policy = GreedyWinnerPolicy((("flat", Flat()), ("popular", PopularityScorer())),
                                confidence="max")
    imp = world.simulate(policy, 100, seed=0).impressions()
    assert set(imp["page_source"]) == {"popular"}
