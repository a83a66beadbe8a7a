"""One local Ray for the whole package (2 CPUs, no dashboard, session files in a temporary
folder that is removed afterwards), started only by the tests that ask for ``ray_cluster``.

Ray Data's blocks are made small (64 KiB), so even these small logs are read as many blocks
whose boundaries fall anywhere: the merges and global offsets are exercised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[Any]:
    pytest.importorskip("ray", reason="the Ray backend needs reelpick[ray]")
    import ray

    from reelpick.distributed import ray_session

    if ray.is_initialized():  # pragma: no cover - another package left Ray running
        ray.shutdown()
    with ray_session(num_cpus=2) as r:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        saved, ctx.target_max_block_size = ctx.target_max_block_size, 64 * 1024
        try:
            yield r
        finally:
            ctx.target_max_block_size = saved
