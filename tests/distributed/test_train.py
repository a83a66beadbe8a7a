"""The sequence model trained by Ray Train: one worker reproduces local training exactly; two
workers train a model that loads and recommends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reelpick.distributed.train import fit_sequence
from reelpick.models import load_model
from tests.models.test_sequence import TINY, device_world

PARAMS = {**TINY, "max_epochs": 2, "eval_every": 1}


@pytest.fixture(scope="module")
def df():
    return device_world(n_members=24, per_member=16)


def _same_weights(a, b) -> None:
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_one_ray_train_worker_is_local_training(df, ray_cluster, tmp_path):
    local = fit_sequence(df, **PARAMS)
    ray_ = fit_sequence(df, backend="ray", num_workers=1, **PARAMS)
    _same_weights(ray_, local)
    np.testing.assert_array_equal(ray_.history_, local.history_)
    assert ray_.best_epoch_ == local.best_epoch_
    path = ray_.save(tmp_path / "seq.npz")
    back = load_model(path)
    recs = back.recommend(["m0", "m1"], k=3)
    assert recs.title_ids.shape == (2, 3)
    np.testing.assert_array_equal(back.score(["m0"]), local.score(["m0"]))


@pytest.mark.slow
def test_two_ray_train_workers_train_a_usable_model(df, ray_cluster, tmp_path):
    # batches of 8 windows: the small log gives each of the two replicas several batches
    model = fit_sequence(df, backend="ray", num_workers=2, **{**PARAMS, "batch_size": 8})
    assert model.history_.shape[0] >= 1 and np.isfinite(model.history_[:, 1]).all()
    back = load_model(model.save(tmp_path / "seq2.npz"))
    assert back.recommend(["m3"], k=5).title_ids.shape == (1, 5)
    assert np.isfinite(back.score(["m3"])).all()


def test_replicas_average_gradients_and_split_batches(df):
    """train_replica over an in-process 'process group' of two identical replicas that see
    the same batches keeps their weights equal (the all-reduce averages equal gradients)."""
    from reelpick.models import SequenceRecommender

    class Mirror:  # every replica reports the same tensor: the sum is world_size x it
        rank, world_size = 0, 2

        def all_reduce(self, tensor):
            tensor.mul_(2)

    prepared = SequenceRecommender(**{**PARAMS, "batch_size": 8})
    captured = {}
    prepared.fit(df, train_fn=lambda m: captured.setdefault("m", m))
    model = captured["m"]
    model.train_replica(Mirror())
    assert model.history_.shape[0] >= 1 and np.isfinite(model.history_[:, 1]).all()
    with pytest.raises(ValueError, match="training batch"):
        SequenceRecommender(**{**PARAMS, "batch_size": 1000}).fit(
            df, train_fn=lambda m: m.train_replica(Mirror()))


def test_errors(df):
    with pytest.raises(ValueError, match="backend"):
        fit_sequence(df, backend="horovod", **PARAMS)
    with pytest.raises(ValueError, match="num_workers"):
        fit_sequence(df, backend="ray", num_workers=0, **PARAMS)
