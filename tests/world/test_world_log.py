"""The simulation log's storage: impressions filled in place, Parquet written chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelpick.data import IMPRESSIONS, INTERACTIONS, OUTCOMES
from reelpick.data.loaders import load_table
from reelpick.policies import UniformPolicy
from reelpick.world import World, WorldConfig
from reelpick.world.log import ImpressionBuffer


class HoleyUniform:
    """Uniform pages with empty slots (some pages entirely empty) and a page maker named on odd
    days only, so that the log keeps a subset of slots and some batches record no maker."""

    name = "holey"

    def __init__(self) -> None:
        self.inner = UniformPolicy()

    def choose(self, visits, rng):
        page = self.inner.choose(visits, rng)
        titles = page.titles.copy()
        drop = rng.random(titles.shape) < 0.3
        drop[::7] = True
        titles[drop] = -1
        kw = {**page.__dict__, "titles": titles}
        if visits.day % 2:
            kw["source"] = np.where(visits.member % 3 == 0, "als", "seq").astype(object)
        return type(page)(**kw)


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig.preset("small"), seed=4)


def test_impressions_are_the_shown_slots_in_page_order(world: World) -> None:
    policy, n, seed = HoleyUniform(), 1500, 2
    log = world.simulate(policy, n, seed=seed)
    # replay the pages: the policy's draws depend on the visits only, not on the member state
    visits = world.draw_visits(n, np.random.default_rng([seed, 1]))
    prng = np.random.default_rng([seed, 2])
    want: dict[str, list[np.ndarray]] = {k: [] for k in ("visit", "slot", "title", "propensity",
                                                          "source")}
    for sl, vb in world.batches(visits):
        page = policy.choose(vb, prng)
        i, j = np.nonzero(page.titles >= 0)
        want["visit"].append(i + sl.start)
        want["slot"].append(j)
        want["title"].append(page.titles[i, j])
        want["propensity"].append(page.propensity[i, j])
        src = (np.full(i.size, "-", dtype=object) if page.source is None
               else np.asarray(page.source)[i])
        want["source"].append(src)
    s = log.shown
    for k in ("visit", "slot", "title", "propensity"):
        np.testing.assert_array_equal(getattr(s, k), np.concatenate(want[k]))
    got_source = np.where(s.source_code >= 0,
                          np.asarray(log.sources + ("-",), dtype=object)[s.source_code], "-")
    np.testing.assert_array_equal(got_source, np.concatenate(want["source"]))
    assert (s.source_code < 0).any() and (s.source_code >= 0).any()
    assert len(s) < n * world.config.n_slots  # the holes are not logged


def test_narrow_dtypes_and_no_copies(world: World) -> None:
    log = world.simulate(UniformPolicy(), 200, seed=1)
    s = log.shown
    assert s.visit.dtype == np.int32 and s.slot.dtype == np.int16
    assert s.title.dtype == np.int32 and s.play.dtype == np.int8
    assert s.propensity.dtype == np.float64 and s.p_play.dtype == np.float64
    assert (s.source_code == -1).all() and len(s.source_code) == len(s)
    assert "page_source" not in log.impressions().columns


def test_buffer_widens_grows_and_fills_missing_sources() -> None:
    buf = ImpressionBuffer(capacity=3)
    shown = np.array([[True, False], [True, True]])
    buf.append(shown, {"title": np.array([[1, 2], [3, 4]]), "slot": np.array([[0, 1]]),
                       "source_code": None})
    buf.append(shown, {"title": np.array([[70_000, 5], [6, 7]]), "slot": np.array([[0, 40_000]]),
                       "source_code": np.array([[1], [0]])})
    buf.append(np.ones((1, 2), bool), {"title": np.array([[8, 9]]), "slot": np.array([[0, 1]]),
                                       "source_code": None})
    out = buf.finish()
    assert buf.capacity >= 8 and len(out["title"]) == 8
    np.testing.assert_array_equal(out["title"], [1, 3, 4, 70_000, 6, 7, 8, 9])
    np.testing.assert_array_equal(out["slot"], [0, 0, 1, 0, 0, 40_000, 0, 1])
    assert out["slot"].dtype == np.int32  # widened from int16 for 40,000
    np.testing.assert_array_equal(out["source_code"], [-1, -1, -1, 1, 0, 0, -1, -1])


def test_buffer_without_sources_reads_minus_one() -> None:
    buf = ImpressionBuffer(capacity=4)
    buf.append(np.ones((2, 2), bool), {"title": np.arange(4).reshape(2, 2), "source_code": None})
    out = buf.finish()
    np.testing.assert_array_equal(out["source_code"], [-1, -1, -1, -1])


@pytest.mark.parametrize("chunk_rows", [7, 1000, 1 << 20])
def test_written_files_equal_the_tables(world: World, tmp_path, chunk_rows: int) -> None:
    log = world.simulate(HoleyUniform(), 400, seed=5)
    paths = log.write(tmp_path, truth=True, chunk_rows=chunk_rows)
    assert list(paths) == ["impressions", "outcomes", "interactions", "truth"]
    n_groups = pq.ParquetFile(paths["impressions"]).metadata.num_row_groups
    assert n_groups == -(-log.n_impressions // chunk_rows)
    for name, schema in (("impressions", IMPRESSIONS), ("outcomes", OUTCOMES),
                         ("interactions", INTERACTIONS), ("truth", None)):
        table = pq.read_table(paths[name])
        # plain columns on disk (no dictionary types leak out), equal to the in-memory tables
        assert not any(pa.types.is_dictionary(f.type) for f in table.schema)
        assert table.equals(getattr(log, f"{name}_arrow")())
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), getattr(log, name)())
        if schema is not None:
            load_table(paths[name], schema)
    imp = pd.read_parquet(paths["impressions"])
    assert imp["page_source"].isna().any() and imp["page_source"].notna().any()


def test_write_rejects_bad_chunk_rows(world: World, tmp_path) -> None:
    log = world.simulate(UniformPolicy(), 20, seed=1)
    with pytest.raises(ValueError, match="chunk_rows"):
        log.write(tmp_path, chunk_rows=0)
