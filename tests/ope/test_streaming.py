"""Streaming over Parquet equals the in-memory result."""

from __future__ import annotations

import numpy as np
import pytest

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
    NpyTarget,
    PseudoInverse,
    SwitchDR,
    estimate_parquet,
    evaluate_policy,
    write_feedback_parquet,
)
from tests.ope._synthetic import Bandit, target_policy

ESTS = [IPS(), ClippedIPS(max_weight=3.0), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=2.0)]


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    bandit = Bandit.make(seed=5)
    fb, x = bandit.log(20_000, seed=11)
    path = write_feedback_parquet(fb, tmp_path_factory.mktemp("ope") / "log.parquet",
                                  row_group_size=3000)
    pi = target_policy(bandit, "greedy")[x]
    q = np.clip(bandit.mu + 0.05, 0, 1)[x]
    return path, fb, pi, q


@pytest.mark.parametrize("ci", ["analytic", "bootstrap"])
@pytest.mark.parametrize("batch_size", [997, 5000])
def test_stream_equals_in_memory(log_file, ci, batch_size, tmp_path):
    path, fb, pi, q = log_file
    kw = dict(ci=ci, n_bootstrap=200, random_state=3)
    memory = evaluate_policy(fb, pi, ESTS, q, **kw)
    np.save(tmp_path / "pi.npy", pi)
    target = ArrayTarget(np.load(tmp_path / "pi.npy", mmap_mode="r"))
    stream = estimate_parquet(path, ESTS, target, reward_model=ArrayTarget(q),
                              batch_size=batch_size, **kw)
    for name, est in memory.items():
        s = stream[name]
        for field in ("value", "ci_low", "ci_high", "se", "ess"):
            assert getattr(s, field) == pytest.approx(getattr(est, field), rel=1e-10,
                                                      abs=1e-13), (name, field)
        assert s.n_rounds == est.n_rounds == fb.n_rounds
    assert stream["ips"].diagnostics.weight_max == memory["ips"].diagnostics.weight_max


def test_stream_npy_target_reads_batches(log_file, tmp_path):
    """NpyTarget reads rows from the file (no memory map) and gives the in-memory result."""
    path, fb, pi, q = log_file
    np.save(tmp_path / "pi.npy", pi.astype(np.float32))
    np.save(tmp_path / "q.npy", q)
    memory = evaluate_policy(fb, pi.astype(np.float32), ESTS, q)
    target = NpyTarget(tmp_path / "pi.npy")
    assert len(target) == fb.n_rounds
    stream = estimate_parquet(path, ESTS, target, reward_model=NpyTarget(tmp_path / "q.npy"),
                              batch_size=1234)
    for name, est in memory.items():
        assert stream[name].value == pytest.approx(est.value, rel=1e-10, abs=1e-13), name
    np.save(tmp_path / "short.npy", pi[:10])
    with pytest.raises(ValueError, match="fewer than the log"):
        estimate_parquet(path, [IPS()], NpyTarget(tmp_path / "short.npy"))


def test_stream_constant_target_and_column_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    n = 5000
    a = rng.integers(0, 3, n)
    r = (rng.random(n) < 0.3).astype(float)
    pq.write_table(pa.table({"item_id": a, "click": r, "propensity_score": np.full(n, 1 / 3)}),
                   tmp_path / "obd.parquet", row_group_size=1000)
    cols = FeedbackColumns(action="item_id", reward="click", pscore="propensity_score",
                           position=None)
    res = estimate_parquet(tmp_path / "obd.parquet", [IPS()], ConstantTarget([0.2, 0.3, 0.5]),
                           columns=cols, batch_size=700)
    w = np.array([0.2, 0.3, 0.5])[a] * 3
    assert res["ips"].value == pytest.approx(np.mean(w * r), rel=1e-12)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"estimators": [PseudoInverse()]}, ValueError, "cannot stream"),
    ({"path": "missing.parquet"}, FileNotFoundError, "no such file"),
    ({"columns": FeedbackColumns(action="item")}, ValueError, r"missing column\(s\) \['item'\]"),
])
def test_stream_invalid(log_file, kwargs, error, message):
    path, *_ = log_file
    args = {"path": path, "estimators": [IPS()], "target": ConstantTarget([0.25] * 4), **kwargs}
    with pytest.raises(error, match=message):
        estimate_parquet(**args)


def test_layout_of_a_log_in_several_files(tmp_path):
    """FeedbackLayout: the optional columns every file has, n_actions/n_positions the largest
    over the files, and the same batches from a file as iter_feedback_batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reelpick.ope.streaming import FeedbackLayout, iter_feedback_batches

    pq.write_table(pa.table({"action": [0, 4, 1], "reward": [1.0, 0.0, 1.0],
                             "pscore": [0.5] * 3, "position": [0, 1, 0],
                             "slate_id": [7, 7, 8]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"action": [2, 6], "reward": [0.0, 1.0], "position": [3, 0],
                             "slate_id": [9, 9]}), tmp_path / "b.parquet")
    files = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    lay = FeedbackLayout.of(files)
    assert (lay.n_actions, lay.n_positions, lay.has_pscore, lay.has_slates) == (7, 4, False,
                                                                               True)
    assert lay.read_columns == ["action", "reward", "position", "slate_id"]
    assert not FeedbackLayout.of(files, slates=False).has_slates
    one = FeedbackLayout.of(files[:1])
    got = list(one.read(files[0], 2))
    ref = list(iter_feedback_batches(files[0], batch_size=2))
    assert [b.n_rounds for b in got] == [b.n_rounds for b in ref] == [2, 1]
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.action, r.action)
        np.testing.assert_array_equal(g.slate_id, r.slate_id)
        np.testing.assert_array_equal(g.pscore, r.pscore)
    with pytest.raises(ValueError, match=r"b.parquet: missing column\(s\) \['pscore'\]"):
        FeedbackLayout.of(files, FeedbackColumns(context=("pscore",)))


def test_statistics_of_parts_merge_into_the_whole_run(log_file):
    """OPEStatistics: parts of a log reduced separately (same shifts, global offsets) and
    merged give the whole run's estimates, bootstrap replicates included."""
    from reelpick.ope.base import OffPolicyEvaluation
    from reelpick.ope.streaming import OPEStatistics, feed, start_evaluation

    path, fb, pi, q = log_file
    ests = [IPS(), SNIPS(), DR()]
    target, model = ArrayTarget(pi), ArrayTarget(q)

    def fresh():
        return OffPolicyEvaluation(ests, n_actions=fb.n_actions, ci="bootstrap",
                                   n_bootstrap=50, random_state=4)

    whole = fresh()
    feed(whole, [fb.take(slice(0, 9_000)), fb.take(slice(9_000, fb.n_rounds))], target, model)
    shifts = {k: acc.shift for k, acc in whole.accs.items()}
    parts = []
    for lo, hi in [(0, 3_001), (3_001, 3_002), (3_002, fb.n_rounds)]:
        run = start_evaluation(fresh(), shifts, lo)
        assert feed(run, [fb.take(slice(lo, hi))], target, model, lo) == hi
        parts.append(OPEStatistics.of(run, lo))
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.diag["n"] == fb.n_rounds
    run = fresh()
    merged.into(run, shifts)
    got, ref = run.results(warn=False), whole.results(warn=False)
    for name in ref:
        for f in ("value", "ci_low", "ci_high", "se", "ess"):
            assert getattr(got[name], f) == pytest.approx(getattr(ref[name], f), rel=1e-12,
                                                          abs=1e-15), (name, f)
