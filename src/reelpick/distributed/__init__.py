"""Distributed backends: the same jobs on one process (``backend="local"``) or on Ray.

Every entry point takes ``backend="local" | "ray"`` (the CLI: ``--backend``) and gives the same
answer on both, checked by ``tests/distributed``:

* :func:`reelpick.distributed.ope.estimate_parquet` -- off-policy estimates over Parquet logs,
  each block (row-group shard, or ``ray.data.read_parquet`` block) reduced to sufficient
  statistics, merged exactly (1e-12);
* :func:`reelpick.distributed.iv.fit_sgdiv` -- SGD-IV over Parquet, synchronous data-parallel
  SGD with an exact gradient all-reduce (coefficients to 1e-9);
* :func:`reelpick.distributed.train.fit_sequence` -- the sequence model trained by Ray Train
  (``TorchTrainer``, CPU workers; one worker reproduces local training exactly);
* :func:`reelpick.distributed.simulate.simulate_many` -- many policies' true values (and logs)
  as Ray tasks, identical to running them one by one.

Ray is imported lazily, inside these functions: ``import reelpick.distributed`` does not import
it. See ``docs/distributed.md`` for clusters (``ray.init(address=...)``, ``RAY_ADDRESS``) and the
scaling plan.
"""

from __future__ import annotations

from reelpick.distributed._ray import BACKENDS, check_backend, plan_parquet, ray_session

__all__ = ["BACKENDS", "check_backend", "plan_parquet", "ray_session"]
