"""Data-parallel training of the sequence model with Ray Train (``TorchTrainer``, CPU workers).

:func:`fit_sequence` prepares the data on the driver exactly as
:meth:`reelpick.models.SequenceRecommender.fit` does (vocabularies, ordered sequences, feature
codes, drift table), then hands the prepared model to a ``TorchTrainer`` with
``ScalingConfig(num_workers=N, use_gpu=False)``. Every worker runs the model's own training
loop, :meth:`~reelpick.models.SequenceRecommender.train_replica`, over the ``gloo`` process
group Ray Train sets up: same seed and initial weights on every replica, each epoch's batches
dealt round-robin, gradients averaged by one flat ``all_reduce`` after every backward pass (so
the replicas stay identical), validation NDCG@10 summed over the replicas' shares of the
members, early stopping decided from those sums. Rank 0 reports the weights as a Ray Train
checkpoint (an ``.npz``, no pickle); the driver loads them, and the model saves in the usual
``.npz`` format. With one worker the result is the local model, weight for weight.

>>> import pandas as pd
>>> df = pd.DataFrame({"member_id": list("aaabbb"), "title_id": list("xyzxyw"),
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> model = fit_sequence(df, hidden=8, n_blocks=1, max_len=4, max_epochs=2)
>>> model.recommend(["a"], k=1).title_ids.shape
(1, 1)
>>> same = fit_sequence(df, hidden=8, n_blocks=1, max_len=4, max_epochs=2,
...                     backend="ray", num_workers=1)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reelpick.distributed._ray import check_backend, ray_session

__all__ = ["TorchComm", "fit_sequence"]


class TorchComm:
    """:class:`reelpick.models.sequence.Communicator` over ``torch.distributed``'s default
    process group (set up by Ray Train's ``TorchTrainer``)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = int(rank), int(world_size)

    def all_reduce(self, tensor: Any) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)


_WEIGHTS = "weights.npz"


def _train_loop(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: one replica of the prepared model."""
    import ray
    import ray.train

    model = ray.get(config["model"])
    for k, v in list(vars(model).items()):  # arrays from the object store are read-only
        if isinstance(v, np.ndarray) and not v.flags.writeable:
            setattr(model, k, v.copy())
    ctx = ray.train.get_context()
    comm = TorchComm(ctx.get_world_rank(), ctx.get_world_size())
    model.train_replica(comm)
    metrics = {"best_epoch": int(model.best_epoch_), "epochs": int(model.history_.shape[0])}
    if comm.rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="rp-seq-") as tmp:
        arrays = {f"net.{k}": v.detach().cpu().numpy()
                  for k, v in model.net_.state_dict().items()}
        np.savez(Path(tmp) / _WEIGHTS, history=model.history_,
                 best_epoch=np.array(model.best_epoch_), **arrays)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _load_weights(model: Any, folder: Path) -> None:
    import torch

    with np.load(folder / _WEIGHTS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    model.net_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in arrays.items()
                                if k.startswith("net.")})
    model.history_ = arrays["history"]
    model.best_epoch_ = int(arrays["best_epoch"])


def _ray_train_fn(num_workers: int, address: str | None,
                  storage_path: str | os.PathLike[str] | None) -> Any:
    def train(model: Any) -> None:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        light = copy.copy(model)  # what the workers need: no side tables, no hook
        for k in ("_title_features", "_member_features", "user_items_"):
            light.__dict__.pop(k, None)
        own = storage_path is None
        store = Path(tempfile.mkdtemp(prefix="rp-train-") if storage_path is None
                     else storage_path)
        try:
            with ray_session(address) as ray:
                cpus = ray.cluster_resources().get("CPU", 0)
                if cpus < num_workers:
                    warnings.warn(f"Ray Train waits for {num_workers} CPUs (one per worker); "
                                  f"the cluster has {cpus:g} now", RuntimeWarning, stacklevel=4)
                trainer = TorchTrainer(
                    _train_loop, train_loop_config={"model": ray.put(light)},
                    scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=False),
                    run_config=RunConfig(name="reelpick-seq", storage_path=str(store.resolve())))
                result = trainer.fit()
                if result.error is not None:  # pragma: no cover - fit() raises first
                    raise RuntimeError(f"Ray Train failed: {result.error}")
                if result.checkpoint is None:
                    raise RuntimeError("Ray Train finished without a checkpoint from rank 0")
                with result.checkpoint.as_directory() as folder:
                    _load_weights(model, Path(folder))
        finally:
            if own:
                shutil.rmtree(store, ignore_errors=True)

    return train


def fit_sequence(interactions: Any, *, titles: Sequence[str] | None = None,
                 title_features: Any = None, member_features: Any = None,
                 backend: str = "local", num_workers: int = 2, address: str | None = None,
                 storage_path: str | os.PathLike[str] | None = None, **params: Any) -> Any:
    """Fit a :class:`~reelpick.models.SequenceRecommender` (hyperparameters ``params``) in this
    process (``backend="local"``) or with Ray Train on ``num_workers`` CPU workers.

    ``storage_path``: where Ray Train keeps its checkpoint (default: a temporary folder,
    removed afterwards; on a multi-node cluster give a path every node can write, e.g. NFS or
    ``s3://bucket/prefix``). ``address``: see :func:`~reelpick.distributed.ray_session`.
    Returns the fitted model (``save()`` writes the usual ``.npz``).
    """
    from reelpick.models.sequence import SequenceRecommender

    check_backend(backend)
    model = SequenceRecommender(**params)
    kw = dict(titles=titles, title_features=title_features, member_features=member_features)
    if backend == "local":
        return model.fit(interactions, **kw)
    if num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    return model.fit(interactions, **kw, train_fn=_ray_train_fn(num_workers, address,
                                                                  storage_path))
