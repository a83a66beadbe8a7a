"""Off-policy evaluation over Parquet: the Ray backend equals the local one (1e-12)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelpick.distributed.ope import OPEStatistics, estimate_parquet, plan_ope, reduce_table
from reelpick.ope import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    ArrayTarget,
    ClippedIPS,
    ConstantTarget,
    FeedbackColumns,
    LoggedFeedback,
    NpyTarget,
    PseudoInverse,
    SwitchDR,
    write_feedback_parquet,
)
from reelpick.ope import estimate_parquet as ope_estimate_parquet

N, A, K = 12_000, 7, 3
FIELDS = ("value", "ci_low", "ci_high", "se", "ess", "n_rounds")


def _feedback(seed: int = 0) -> LoggedFeedback:
    rng = np.random.default_rng(seed)
    action = rng.integers(0, A, N)
    position = rng.integers(0, K, N)
    pscore = rng.uniform(0.05, 0.5, N)
    reward = (rng.random(N) < 0.05 + 0.03 * action + 0.02 * position).astype(float)
    return LoggedFeedback(action=action, reward=reward, pscore=pscore, n_actions=A,
                          position=position, n_positions=K)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """The same rounds as one file and as a folder of 4 unequal part files."""
    fb = _feedback()
    root = tmp_path_factory.mktemp("ope")
    single = write_feedback_parquet(fb, root / "single.parquet", row_group_size=2_500)
    cuts = [0, 1_000, 5_500, 9_000, N]
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
        write_feedback_parquet(fb.take(slice(lo, hi)), root / "parts" / f"part-{i}.parquet",
                               row_group_size=1_700)
    rng = np.random.default_rng(1)
    pi = rng.dirichlet(np.ones(A), size=(N, K)).transpose(0, 2, 1)  # (N, A, K) per round
    np.save(root / "pi.npy", pi)
    q = rng.random((N, A, K))
    return {"fb": fb, "single": single, "parts": root / "parts", "pi": root / "pi.npy",
            "q": q}


def _estimators():
    return [IPS(), SNIPS(), DR(), SNDR(), DM(), ClippedIPS(max_weight=3.0), SwitchDR(tau=4.0)]


def _assert_same(a, b, tol=1e-12):
    assert a.keys() == b.keys()
    for name in a:
        for f in FIELDS:
            x, y = getattr(a[name], f), getattr(b[name], f)
            assert math.isclose(x, y, rel_tol=0, abs_tol=tol * max(1.0, abs(x))), (name, f, x, y)
        da, db = dataclasses.asdict(a[name].diagnostics), dataclasses.asdict(b[name].diagnostics)
        for k, v in da.items():
            if isinstance(v, float):
                assert math.isclose(v, db[k], rel_tol=1e-12, abs_tol=1e-12), (name, k)
            else:
                assert v == db[k], (name, k)


@pytest.mark.parametrize("ci", ["analytic", "bootstrap"])
def test_local_backend_is_the_streaming_estimate(log, ci):
    kw = dict(reward_model=ArrayTarget(log["q"]), batch_size=3_000, ci=ci, n_bootstrap=40)
    ref = ope_estimate_parquet(log["single"], _estimators(), NpyTarget(log["pi"]), **kw)
    _assert_same(estimate_parquet(log["single"], _estimators(), NpyTarget(log["pi"]), **kw), ref)
    # a folder of part files is one log: the same rounds, the same estimates
    _assert_same(estimate_parquet(log["parts"], _estimators(), NpyTarget(log["pi"]), **kw), ref)


def test_block_statistics_merge_exactly_in_any_grouping(log):
    plan, spec = plan_ope(log["single"], _estimators(), NpyTarget(log["pi"]),
                          reward_model=ArrayTarget(log["q"]), ci="bootstrap", n_bootstrap=20)
    table = pq.read_table(log["single"])
    cuts = [0, 777, 4_321, 4_322, 10_000, N]
    parts = [reduce_table(table.slice(lo, hi - lo), lo, spec)
             for lo, hi in zip(cuts[:-1], cuts[1:])]
    left = parts[0]
    for p in parts[1:]:
        left = left.merge(p)
    right = parts[-1]
    for p in reversed(parts[:-1]):
        right = p.merge(right)
    whole = reduce_table(table, 0, spec)
    for name in whole.stats:
        for k, v in whole.stats[name].items():
            np.testing.assert_allclose(left.stats[name][k], v, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(right.stats[name][k], v, rtol=1e-12, atol=1e-9)
    # only the pairs never shown (and the target mass on them) reach the diagnostics
    for part in (left, right):
        np.testing.assert_array_equal(part.diag["unseen"], whole.diag["unseen"])
        np.testing.assert_allclose(part.diag["unseen_mass"], whole.diag["unseen_mass"])
        for k in ("n", "p_min", "p_max", "w_max"):
            assert part.diag[k] == whole.diag[k]
    assert isinstance(left, OPEStatistics) and left.diag["n"] == N


def test_unseen_pairs_and_their_mass_survive_the_merge(tmp_path):
    """Actions 5 and 6 are never logged: the support warning's share must come out of the
    merged blocks exactly as out of the local run."""
    rng = np.random.default_rng(3)
    n = 6_000
    fb = LoggedFeedback(action=rng.integers(0, 5, n), reward=rng.random(n),
                        pscore=np.full(n, 0.2), n_actions=A)
    path = write_feedback_parquet(fb, tmp_path / "log.parquet")
    target = ConstantTarget(np.full(A, 1 / A))
    plan, spec = plan_ope(path, [IPS()], target, n_actions=A)
    table = pq.read_table(path)
    parts = [reduce_table(table.slice(lo, 1_500), lo, spec) for lo in range(0, n, 1_500)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.diag["unseen"].tolist() == [5, 6]
    run = spec.evaluation()
    merged.into(run, spec.shifts)
    with pytest.warns(UserWarning, match="outside the logging policy"):
        got = run.results()
    with pytest.warns(UserWarning, match="outside the logging policy"):
        ref = ope_estimate_parquet(path, [IPS()], target, n_actions=A)
    assert got["ips"].diagnostics.unsupported_mass == pytest.approx(2 / 7, rel=1e-12)
    _assert_same(got, ref)


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of ~1,000 rows: the row-group reader cuts files too, not only between them."""
    import reelpick.distributed.ope as dope

    monkeypatch.setattr(dope, "_MIN_SHARD_ROWS", 1_000)


@pytest.mark.parametrize(("ci", "workers", "reader"),
                         [("analytic", 1, "ray-data"), ("bootstrap", 2, "tasks")])
def test_ray_equals_local(log, ray_cluster, small_shards, ci, workers, reader):
    """Per-round target and reward model (global offsets), positions, bootstrap replicates
    (drawn by global round index), both readers: every number to 1e-12."""
    kw = dict(reward_model=ArrayTarget(log["q"]), batch_size=2_000, ci=ci, n_bootstrap=40)
    local = estimate_parquet(log["parts"], _estimators(), NpyTarget(log["pi"]), **kw)
    ray_ = estimate_parquet(log["parts"], _estimators(), NpyTarget(log["pi"]), backend="ray",
                            num_workers=workers, reader=reader, **kw)
    _assert_same(ray_, local)


def test_ray_context_free_target_without_positions(tmp_path, ray_cluster):
    rng = np.random.default_rng(5)
    n = 5_000
    fb = LoggedFeedback(action=rng.integers(0, 4, n), reward=rng.random(n),
                        pscore=np.full(n, 0.25), n_actions=4)
    for i in range(3):
        write_feedback_parquet(fb.take(slice(i * n // 3, (i + 1) * n // 3)),
                               tmp_path / f"p{i}.parquet")
    target = ConstantTarget([0.1, 0.2, 0.3, 0.4])
    ref = ope_estimate_parquet(write_feedback_parquet(fb, tmp_path / "all" / "a.parquet"),
                               [IPS(), SNIPS()], target)
    got = estimate_parquet(sorted(tmp_path.glob("p*.parquet")), [IPS(), SNIPS()], target,
                           backend="ray")
    _assert_same(got, ref)


def test_errors(log, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        estimate_parquet(log["single"], [IPS()], NpyTarget(log["pi"]), backend="spark")
    with pytest.raises(ValueError, match="whole slates"):
        estimate_parquet(log["single"], [PseudoInverse()], NpyTarget(log["pi"]))
    with pytest.raises(FileNotFoundError, match="no such file"):
        estimate_parquet(tmp_path / "nope", [IPS()], NpyTarget(log["pi"]))
    pq.write_table(pa.table({"action": [0, 1]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing column"):
        estimate_parquet(tmp_path / "bad.parquet", [IPS()], ConstantTarget([0.5, 0.5]))
    with pytest.raises(ValueError, match="num_workers"):
        estimate_parquet(log["single"], [IPS()], NpyTarget(log["pi"]), backend="ray",
                         num_workers=0)
    with pytest.raises(ValueError, match="reader"):
        estimate_parquet(log["single"], [IPS()], NpyTarget(log["pi"]), reader="spark")


@pytest.fixture(scope="module")
def slate_log(tmp_path_factory):
    """Slates of 1-6 adjacent rows; the part files (and Ray's blocks) cut through slates."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 7, 2_500)
    slate = np.repeat(np.arange(sizes.size), sizes)
    n = slate.size
    fb = LoggedFeedback(action=rng.integers(0, A, n), reward=rng.random(n),
                        pscore=rng.uniform(0.1, 0.4, n), n_actions=A, slate_id=slate)
    root = tmp_path_factory.mktemp("slates")
    single = write_feedback_parquet(fb, root / "single.parquet", row_group_size=1_000)
    cuts = [0, 1_001, 4_003, n]
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
        write_feedback_parquet(fb.take(slice(lo, hi)), root / "parts" / f"p{i}.parquet")
    return single, root / "parts"


@pytest.mark.parametrize("ci", ["analytic", "bootstrap"])
def test_slate_clustered_intervals_merge_across_files_and_blocks(slate_log, ray_cluster,
                                                                 small_shards, ci):
    single, parts = slate_log
    target = ConstantTarget(np.full(A, 1 / A))
    kw = dict(ci=ci, n_bootstrap=30, batch_size=1_500)
    ref = ope_estimate_parquet(single, [IPS(), SNIPS()], target, **kw)
    unclustered = ope_estimate_parquet(single, [IPS(), SNIPS()], target,
                                       columns=FeedbackColumns(slate_id=None), **kw)
    assert ref["ips"].se != unclustered["ips"].se   # the slates change the interval
    _assert_same(estimate_parquet(parts, [IPS(), SNIPS()], target, **kw), ref)
    _assert_same(estimate_parquet(parts, [IPS(), SNIPS()], target, backend="ray",
                                  num_workers=2, **kw), ref)


@pytest.mark.parametrize("reader", ["tasks", "ray-data"])
def test_cluster_argument_on_both_backends(slate_log, ray_cluster, small_shards, reader):
    """cluster="round" (rounds independent) and "slate" on Ray give the local backend's
    numbers exactly as ``reelpick.ope.estimate_parquet(cluster=...)`` does; the two differ."""
    single, parts = slate_log
    target = ConstantTarget(np.full(A, 1 / A))
    out = {}
    for cluster in ("slate", "round"):
        kw = dict(ci="bootstrap", n_bootstrap=25, batch_size=1_100, cluster=cluster)
        ref = ope_estimate_parquet(single, [IPS(), SNIPS()], target, **kw)
        local = estimate_parquet(parts, [IPS(), SNIPS()], target, **kw)
        ray_ = estimate_parquet(parts, [IPS(), SNIPS()], target, backend="ray",
                                num_workers=2, reader=reader, **kw)
        _assert_same(local, ref)
        _assert_same(ray_, ref)
        out[cluster] = ray_
    assert out["slate"]["ips"].value == pytest.approx(out["round"]["ips"].value, rel=1e-12)
    # independent draws within slates: the clustered SE differs, it need not be larger
    assert out["slate"]["ips"].se != out["round"]["ips"].se
    assert out["slate"]["ips"].ci_low != out["round"]["ips"].ci_low
    with pytest.raises(ValueError, match="cluster"):
        estimate_parquet(parts, [IPS()], target, cluster="page")


def test_work_units_span_files_and_cover_the_log(log, small_shards):
    """The Ray tasks' units: consecutive row-group shards, crossing file boundaries, every row
    once, a few per worker; a unit of non-consecutive shards is refused."""
    from reelpick.distributed.ope import reduce_shards, work_units

    plan, spec = plan_ope(log["parts"], [IPS()], NpyTarget(log["pi"]))
    for workers in (1, 2, 3):
        units = work_units(plan, workers)
        flat = [sh for u in units for sh in u]
        assert [sh.offset for sh in flat] == list(np.cumsum([0] + [s.n_rows for s in flat])[:-1])
        assert sum(s.n_rows for s in flat) == N
        assert any(len({sh.path for sh in u}) > 1 for u in units)
        assert len(units) <= 4 * workers
        assert all(sum(s.n_rows for s in u) >= 1_000 for u in units[:-1])
    units = work_units(plan, 2)
    with pytest.raises(ValueError, match="not consecutive"):
        reduce_shards([units[0][0], units[-1][-1]], spec)


@pytest.mark.parametrize("source", ["single", "parts"])
def test_plan_takes_the_shifts_of_the_local_run(log, source):
    """Every block is reduced with the shifts the local run takes from its first block (what
    keeps the merged sums as exact as the local ones): the same arrays, bit for bit."""
    from reelpick.ope.streaming import feed

    plan, spec = plan_ope(log[source], _estimators(), NpyTarget(log["pi"]),
                          reward_model=ArrayTarget(log["q"]), batch_size=2_000)
    run = spec.evaluation()
    offset = 0
    for f in plan.files:
        offset = feed(run, spec.layout.read(f, spec.batch_size), NpyTarget(log["pi"]),
                      ArrayTarget(log["q"]), offset)
    assert offset == N
    for name, acc in run.accs.items():
        np.testing.assert_array_equal(acc.shift, spec.shifts[name])
