"""Root fixtures: a pinned seed, the shared data folder, small synthetic interactions."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

SEED = 20261127
PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REELPICK_SHARED_DATA", PROJECT.parent / "shared" / "data"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    path = SHARED_DATA / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100K not found at {path} (set REELPICK_SHARED_DATA to its parent)")
    return path


@pytest.fixture(scope="session")
def obd_dir() -> Path:
    path = SHARED_DATA / "obd"
    if not path.is_dir():
        pytest.skip(f"Open Bandit Dataset sample not found at {path}")
    return path


def make_interactions(n_members: int = 60, n_titles: int = 40, per_member: int = 15,
                      seed: int = SEED) -> pd.DataFrame:
    """Two taste clusters: members in cluster c mostly watch titles of cluster c."""
    rng = np.random.default_rng(seed)
    rows = []
    half = n_titles // 2
    for m in range(n_members):
        cluster = m % 2
        pool = np.arange(half) + cluster * half
        titles = rng.choice(pool, size=min(per_member, half), replace=False)
        for j, t in enumerate(titles):
            rows.append((f"m{m}", f"t{t}", 1_600_000_000 + j * 1000 + m))
    return pd.DataFrame(rows, columns=["member_id", "title_id", "timestamp"])


@pytest.fixture
def toy_interactions() -> pd.DataFrame:
    return make_interactions()
