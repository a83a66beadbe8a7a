"""SGD-IV over Parquet: data-parallel SGD on Ray equals the local streamed fit (1e-9)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelpick.causal import ParquetBatches
from reelpick.distributed._ray import plan_parquet
from reelpick.distributed.iv import (
    IVColumns,
    ParquetLogBatches,
    _share_sizes,
    fit_sgdiv,
    owner_of_rows,
)

COLUMNS = dict(y="y", endog=["d"], instruments=["z", "z2"], dense=["x0", "x1"],
               categorical=["member", "title"], clusters="member", hash_buckets=1 << 12,
               cluster_buckets=1 << 16)


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """Member and title effects confound d and y; z, z2 are randomised. One file and the same
    rows as three part files of unequal sizes."""
    rng = np.random.default_rng(0)
    n, members = 9_000, 400
    m = rng.integers(0, members, n)
    fe = rng.normal(size=members)[m]
    t = rng.integers(0, 60, n)
    u, x = rng.normal(size=n), rng.normal(size=(n, 2))
    z, z2 = rng.binomial(1, 0.5, n), rng.binomial(1, 0.3, n)
    d = z + 0.5 * z2 + u + fe + x[:, 0] + rng.normal(size=n)
    y = 0.5 * d + u + 2 * fe + 0.1 * t + x[:, 1] + rng.normal(size=n)
    table = pa.table({"y": y, "d": d, "z": z, "z2": z2, "x0": x[:, 0], "x1": x[:, 1],
                      "member": np.array([f"m{i}" for i in m]), "title": t})
    root = tmp_path_factory.mktemp("iv")
    pq.write_table(table, root / "design.parquet", row_group_size=2_000)
    (root / "parts").mkdir()
    for i, (lo, hi) in enumerate([(0, 2_500), (2_500, 3_100), (3_100, n)]):
        pq.write_table(table.slice(lo, hi - lo), root / "parts" / f"part-{i}.parquet",
                       row_group_size=700)
    return root


def _close(a, b, tol=1e-9):
    ra, rb = a.result_, b.result_
    np.testing.assert_allclose(ra.params, rb.params, rtol=0, atol=tol)
    np.testing.assert_allclose(ra.std_errors, rb.std_errors, rtol=0, atol=tol)
    np.testing.assert_allclose(ra.first_stage.f_stat, rb.first_stage.f_stat, rtol=tol)
    np.testing.assert_allclose(a.nuisance_r2_, b.nuisance_r2_, rtol=0, atol=tol)
    assert ra.nobs == rb.nobs and ra.n_clusters == rb.n_clusters


def test_rows_are_dealt_as_contiguous_shares_of_every_minibatch():
    n, b = 1_003, 64
    for w in (1, 2, 3, 5):
        owner = owner_of_rows(np.arange(n), n, b, w)
        for k in range(w):
            sizes = _share_sizes(n, b, w, k)
            counts = np.bincount(np.arange(n)[owner == k] // b, minlength=len(sizes))
            np.testing.assert_array_equal(sizes, counts)
        # each minibatch is cut into contiguous runs, in worker order
        for t in range(0, n, b):
            assert np.all(np.diff(owner[t:t + b]) >= 0)


def test_log_batches_cross_files_and_match_parquet_batches(design):
    one = ParquetBatches(design / "design.parquet", batch_size=1_000, **COLUMNS)
    cols = IVColumns("y", ("d",), ("z", "z2"), ("x0", "x1"), ("member", "title"), "member",
                     1 << 12, 1 << 16)
    many = ParquetLogBatches(plan_parquet(design / "parts"), cols, 1_000)
    pairs = list(zip(one, many, strict=True))
    assert len(pairs) == 9
    for a, b in pairs:
        for f in ("y", "endog", "instruments", "dense", "categorical", "clusters"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_local_backend_is_sgdiv_on_parquet_batches(design):
    from reelpick.causal import SGDIV

    ref = SGDIV(epochs=2, cov_type="CR1").fit(
        ParquetBatches(design / "design.parquet", batch_size=500, **COLUMNS))
    got = fit_sgdiv(design / "design.parquet", batch_size=500, epochs=2, cov_type="CR1",
                    **COLUMNS)
    _close(got, ref, tol=0)
    _close(fit_sgdiv(design / "parts", batch_size=500, epochs=2, cov_type="CR1", **COLUMNS),
           ref, tol=1e-12)
    assert abs(float(ref.result_.params["d"]) - 0.5) < 0.1


@pytest.mark.parametrize(("workers", "cov_type", "epochs"), [(2, "CR1", 3), (1, "HC1", 1)])
def test_ray_equals_local(design, ray_cluster, workers, cov_type, epochs, monkeypatch):
    """Minibatches of 700 rows cut across files and Ray Data blocks, 3 epochs with averaging
    in the last: coefficients, standard errors, first stage and R² to 1e-9."""
    import reelpick.distributed.iv as div

    monkeypatch.setattr(div, "_MIN_SHARD_ROWS", 1_000)   # several shards per file
    kw = dict(batch_size=700, epochs=epochs, cov_type=cov_type, **COLUMNS)
    local = fit_sgdiv(design / "design.parquet", **kw)
    got = fit_sgdiv(design / "parts", backend="ray", num_workers=workers, **kw)
    _close(got, local)
    assert got.n_passes_ == local.n_passes_ == epochs + 2


def test_errors(design, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        fit_sgdiv(design / "design.parquet", backend="dask", **COLUMNS)
    with pytest.raises(ValueError, match="missing column"):
        fit_sgdiv(design / "design.parquet", **{**COLUMNS, "y": "nope"})
    with pytest.raises(ValueError, match="num_workers"):
        fit_sgdiv(design / "design.parquet", backend="ray", num_workers=0, **COLUMNS)


def test_pass_sums_merge_as_one_stream(design, monkeypatch):
    """The public sufficient statistics both backends use: ScaleSums of shares of the same
    minibatches and ResidualSums of parts of the log (clusters cut between parts, folded in
    small steps) merge into the one-stream sums; a fit solved from them is the local fit."""
    from reelpick.causal.sgd import SGDIV, ResidualSums, ScaleSums

    monkeypatch.setattr(ResidualSums, "_CONSOLIDATE", 64)   # fold often
    src = ParquetBatches(design / "design.parquet", batch_size=1_000, **COLUMNS)
    batches = list(src)
    whole, left, right = ScaleSums(), ScaleSums(), ScaleSums()
    for b in batches:
        whole.add(b)
        half = len(b) // 2
        left.add(type(b)(*(None if v is None else v[:half] for v in _parts_of(b))))
        right.add(type(b)(*(None if v is None else v[half:] for v in _parts_of(b))))
    merged = left.merge(right)
    assert (merged.n, merged.batches, merged.widths) == (whole.n, whole.batches, whole.widths)
    for k in ("t1", "t2", "d1", "d2"):
        np.testing.assert_allclose(getattr(merged, k), getattr(whole, k), rtol=1e-12)
    with pytest.raises(ValueError, match="no rows"):
        ScaleSums().scales(3)

    est = SGDIV(epochs=2, cov_type="CR1").fit(src)
    one = est.residual_sums(batches, 1, 2)
    parts = [est.residual_sums(batches[lo:hi], 1, 2) for lo, hi in [(0, 4), (4, 5), (5, 9)]]
    total = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_array_equal(total.labels, one.labels)
    assert np.unique(_clusters_of(batches)).size == total.labels.size
    for k in ("srr", "m4", "sst"):
        np.testing.assert_allclose(getattr(total, k), getattr(one, k), rtol=1e-12)
    np.testing.assert_allclose(total.cluster_sums(), one.cluster_sums(), rtol=1e-9,
                               atol=1e-12)
    again = SGDIV(epochs=2, cov_type="CR1")
    again.solve(total, whole.n, 2, ["d"], ["z", "z2"])
    _close(again, est)


def _parts_of(b):
    return (b.y, b.endog, b.instruments, b.dense, b.categorical, b.clusters)


def _clusters_of(batches):
    return np.concatenate([b.clusters for b in batches])
