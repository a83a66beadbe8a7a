"""Many policies in the simulated world at once: one Ray task per policy.

A :class:`~reelpick.world.World` is deterministic given its config and seed, and
:meth:`~reelpick.world.World.simulate` / :meth:`~reelpick.world.World.policy_value` draw
everything from generators seeded by ``seed`` (visits ``[seed, 1]``, pages ``[seed, 2]``,
outcomes ``[seed, 3]``) and never change the world. So the policies are independent jobs:
the world is put in the object store once, each task runs one policy with the same seed, and
the results equal running the policies one after the other in this process (tested to the
last bit). With the same seed every policy sees the same visits (common random numbers), which
is what makes their differences precise.

>>> from reelpick.policies import PopularPolicy, UniformPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> runs = simulate_many(world, [UniformPolicy(), PopularPolicy()], value_visits=100)
>>> [r.name for r in runs], runs[1].value.plays > runs[0].value.plays
(['uniform', 'popular'], True)
>>> same = simulate_many(world, [UniformPolicy(), PopularPolicy()], value_visits=100,
...                      backend="ray")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelpick.decision import Policy
from reelpick.distributed._ray import check_backend, ray_session
from reelpick.world import World
from reelpick.world.log import SimulationLog
from reelpick.world.world import PolicyValue

__all__ = ["PolicyRun", "run_policy", "simulate_many"]


@dataclass(frozen=True)
class PolicyRun:
    """One policy's results: ``value`` (true value per visit, ``None`` if not asked), ``log``
    (the simulated logs, when simulated and not written out) and ``log_dir`` (where they were
    written, when ``out`` was given)."""

    name: str
    value: PolicyValue | None
    log: SimulationLog | None = None
    log_dir: str | None = None
    n_impressions: int | None = None

    def summary(self) -> dict[str, Any]:
        """Plain numbers (JSON-ready)."""
        out: dict[str, Any] = {"policy": self.name, "log_dir": self.log_dir,
                               "n_impressions": self.n_impressions}
        if self.value is not None:
            out["true_value"] = self.value.to_dict()
        return out


def run_policy(world: World, name: str, policy: Policy, *, value_visits: int | None,
               simulate_visits: int | None, seed: int | None,
               out: str | os.PathLike[str] | None) -> PolicyRun:
    """One policy: its true value over ``value_visits`` visits and/or ``simulate_visits``
    simulated visits (logs written to ``out / name`` when ``out`` is given)."""
    value = (None if value_visits is None
             else world.policy_value(policy, value_visits, seed=seed))
    log, log_dir, n_imp = None, None, None
    if simulate_visits is not None:
        log = world.simulate(policy, simulate_visits, seed=seed)
        n_imp = log.n_impressions
        if out is not None:
            folder = Path(out) / name
            log.write(folder)
            log, log_dir = None, str(folder)
    return PolicyRun(name, value, log, log_dir, n_imp)


def _named(policies: Mapping[str, Policy] | Sequence[Policy]) -> list[tuple[str, Policy]]:
    items = (list(policies.items()) if isinstance(policies, Mapping)
             else [(str(p.name), p) for p in policies])
    if not items:
        raise ValueError("policies: give at least one policy")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"policies: names must be unique, got {names}; pass a dict "
                         f"{{name: policy}} to name two policies of one kind")
    for n, p in items:
        if not isinstance(p, Policy):
            raise TypeError(f"policies[{n!r}]: {type(p).__name__} lacks name/choose of the "
                            f"Policy protocol")
    return items


def simulate_many(world: World, policies: Mapping[str, Policy] | Sequence[Policy], *,
                  value_visits: int | None = 2000, simulate_visits: int | None = None,
                  seed: int | None = None, out: str | os.PathLike[str] | None = None,
                  backend: str = "local", num_workers: int | None = None,
                  address: str | None = None) -> list[PolicyRun]:
    """Every policy's true value (``value_visits`` visits; ``None`` to skip) and, with
    ``simulate_visits``, its simulated logs, with the same ``seed`` for all (``None``: the
    world's seed), in this process or one Ray task per policy (at most ``num_workers`` at a
    time; default: as many as the cluster's CPUs allow). Returns one :class:`PolicyRun` per
    policy, in the order given; ``policies`` is a list (named by ``policy.name``) or a dict.

    On Ray, ``out`` must be a folder every worker can write (a shared file system on a
    multi-node cluster); logs without ``out`` travel back through the object store.
    """
    check_backend(backend)
    items = _named(policies)
    if value_visits is None and simulate_visits is None:
        raise ValueError("give value_visits and/or simulate_visits")
    kw = dict(value_visits=value_visits, simulate_visits=simulate_visits, seed=seed,
              out=None if out is None else str(Path(out).resolve()))
    if backend == "local":
        return [run_policy(world, n, p, **kw) for n, p in items]  # type: ignore[arg-type]
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1)(run_policy)
        world_ref = ray.put(world)
        limit = num_workers or len(items)
        refs: list[Any] = []
        for n, p in items:
            if len(refs) - len(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) >= limit:
                ray.wait(refs, num_returns=len(refs) - limit + 1)
            refs.append(task.remote(world_ref, n, p, **kw))
        return list(ray.get(refs))
