"""Time-respecting train/test splits: pure functions returning a typed :class:`TTSplit`.

Never evaluate on the past: every split here puts the test rows after (or, for ties, at) the
training rows of the same member (leave-last-out) or of everyone (time cut-off).

Ties. Many logs have coarse timestamps (in ml-100k 76% of rows share a timestamp with another row
of the same member). Ties are broken by the row order of the source table, which the loaders keep.

>>> import pandas as pd
>>> df = pd.DataFrame({"member_id": list("aaab"), "title_id": list("xyzx"),
...                    "timestamp": [1, 2, 2, 5]})
>>> s = leave_last_out(df)
>>> s.test[["member_id", "title_id"]].values.tolist()
[['a', 'z']]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TTSplit:
    """A train/test split. ``cutoff`` is the time boundary of a global split (else ``None``)."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: int | None = None

    def __repr__(self) -> str:
        return f"TTSplit(train={len(self.train)}, test={len(self.test)}, cutoff={self.cutoff})"


def _time_order(interactions: pd.DataFrame) -> np.ndarray:
    pos = np.arange(len(interactions))
    return np.lexsort((pos, interactions["timestamp"].to_numpy(),
                       interactions["member_id"].to_numpy().astype(str)))


def order_by_time(interactions: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (member, timestamp) with ties in source order (a stable sort)."""
    return interactions.iloc[_time_order(interactions)]


def leave_last_out(interactions: pd.DataFrame, *, n: int = 1, min_train: int = 1) -> TTSplit:
    """Hold out each member's last ``n`` interactions (by time, ties by row order) as test.

    Members with fewer than ``n + min_train`` interactions stay entirely in train. Apply twice to
    get a validation split: ``outer = leave_last_out(df); inner = leave_last_out(outer.train)``
    gives train = ``inner.train``, validation = ``inner.test``, test = ``outer.test``.

    Both outputs keep the source row order of ``interactions``.
    """
    if n < 1 or min_train < 0:
        raise ValueError(f"need n >= 1 and min_train >= 0, got n={n}, min_train={min_train}")
    order = _time_order(interactions)
    members = pd.Series(interactions["member_id"].to_numpy()[order])
    counts = members.groupby(members, sort=False).transform("size").to_numpy()
    rank_back = counts - 1 - members.groupby(members, sort=False).cumcount().to_numpy()
    is_test = (rank_back < n) & (counts >= n + min_train)
    mask = np.zeros(len(interactions), dtype=bool)
    mask[order[is_test]] = True
    return TTSplit(train=interactions[~mask], test=interactions[mask])


def resolve_cutoff(interactions: pd.DataFrame, cutoff: float | int | None = None,
                   *, quantile: float | None = None) -> int:
    """A cut-off timestamp, given directly or as a quantile (0 < q < 1) of interaction times."""
    if (cutoff is None) == (quantile is None):
        raise ValueError("give exactly one of cutoff (a timestamp) or quantile")
    if quantile is not None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        return int(np.quantile(interactions["timestamp"].to_numpy(), quantile,
                               method="higher"))
    return int(cutoff)  # type: ignore[arg-type]


def time_cutoff(
    interactions: pd.DataFrame,
    cutoff: int | None = None,
    *,
    quantile: float | None = None,
    test_members: str = "seen",
) -> TTSplit:
    """Global temporal split: train is ``timestamp < t``, test is ``timestamp >= t``.

    ``t`` is the ``cutoff`` timestamp or the ``quantile`` of interaction times (``0.8`` puts 80% of
    rows in train). With ``test_members="seen"`` (default) test keeps only members who appear in
    train, since a history-based recommender has nothing to say about the others; ``"all"`` keeps
    every test row.
    """
    t = resolve_cutoff(interactions, cutoff, quantile=quantile)
    ts = interactions["timestamp"].to_numpy()
    train = interactions[ts < t]
    test = interactions[ts >= t]
    if test_members == "seen":
        test = test[test["member_id"].isin(pd.Index(train["member_id"].unique()))]
    elif test_members != "all":
        raise ValueError(f"test_members must be 'seen' or 'all', got {test_members!r}")
    return TTSplit(train=train, test=test, cutoff=t)


def rolling_cutoffs(
    interactions: pd.DataFrame,
    quantiles: Sequence[float] = (0.6, 0.7, 0.8, 0.9),
    *,
    horizon: float | None = None,
    test_members: str = "seen",
) -> Iterator[TTSplit]:
    """Rolling-origin backtest: one :func:`time_cutoff` split per quantile, in time order.

    Train is everything before each cut-off. With ``horizon`` (a quantile width, e.g. ``0.1``)
    test is limited to the window ``[t_q, t_{q + horizon})``; otherwise it runs to the end.
    """
    for q in sorted(quantiles):
        split = time_cutoff(interactions, quantile=q, test_members=test_members)
        if horizon is not None:
            q_end = q + horizon
            if q_end < 1.0:
                t_end = resolve_cutoff(interactions, quantile=q_end)
                split = TTSplit(split.train, split.test[split.test["timestamp"] < t_end],
                                split.cutoff)
        yield split


def publishing_delay(
    interactions: pd.DataFrame,
    cutoff: int,
    *,
    delay_days: float = 0.0,
    window_days: float | None = None,
    test_members: str = "seen",
) -> TTSplit:
    """Train at ``t``, serve from ``t + d``: train is ``timestamp < t`` (``t = cutoff``), test is
    ``t + d <= timestamp < t + d + window`` (to the end without ``window_days``).

    The plays in the gap ``[t, t + d)`` are in neither part: the model was trained and
    published before them; a server still knows them (select them with
    ``(ts >= t) & (ts < t + d)`` to exclude them from the ranking). ``test_members="seen"``
    keeps members who appear in train.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aaaa"), "title_id": list("wxyz"),
    ...                    "timestamp": [0, 86400, 2 * 86400, 9 * 86400]})
    >>> publishing_delay(df, 86400, delay_days=7).test["title_id"].tolist()
    ['z']
    """
    if delay_days < 0:
        raise ValueError(f"delay_days must be >= 0, got {delay_days}")
    if window_days is not None and window_days <= 0:
        raise ValueError(f"window_days must be positive or None, got {window_days}")
    start = int(cutoff) + delay_days * 86400.0
    split = time_cutoff(interactions, int(cutoff), test_members=test_members)
    ts = split.test["timestamp"].to_numpy()
    keep = ts >= start
    if window_days is not None:
        keep &= ts < start + window_days * 86400.0
    return TTSplit(split.train, split.test[keep], split.cutoff)
