"""External IDs apart from dense internal indices.

Models work on ``0..n-1`` indices; the API edge speaks member and title IDs (strings). A
:class:`Vocabulary` is immutable, keeps first-seen order, and round-trips through JSON.

>>> v = Vocabulary(["b", "a", "b", "c"])
>>> v.index(["c", "b"]).tolist()
[2, 0]
>>> v.ids([1]).tolist()
['a']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: Lookups of at most this many ids go through a dict (:meth:`Vocabulary.index`).
_SMALL = 32


class Vocabulary:
    """An immutable, ordered set of string IDs mapped to indices ``0..len-1``."""

    __slots__ = ("_ids", "_index", "_pos")

    def __init__(self, ids: Iterable[object]) -> None:
        uniq = pd.unique(pd.Series(list(ids), dtype=object).astype(str))
        self._ids = np.asarray(uniq, dtype=object)
        self._ids.setflags(write=False)
        self._index = pd.Index(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return str(item) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash(tuple(self._ids))

    def __repr__(self) -> str:
        return f"Vocabulary(n={len(self)})"

    @property
    def id_array(self) -> np.ndarray:
        """All IDs in index order (read-only object array)."""
        return self._ids

    def index(self, ids: Sequence[object] | np.ndarray | pd.Series, *, missing: str = "error"
              ) -> np.ndarray:
        """Indices of ``ids`` (int64). ``missing="error"`` raises :class:`KeyError` naming the
        first unknown ID; ``missing="negative"`` maps unknown IDs to -1."""
        if missing not in ("error", "negative"):
            raise ValueError(f"missing must be 'error' or 'negative', got {missing!r}")
        if len(ids) <= _SMALL:  # a request's few ids: a dict, not a pandas round trip
            keys = np.array([str(x) for x in ids], dtype=object)
            pos = self._positions()
            idx = np.fromiter((pos.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        else:
            keys = pd.Series(np.asarray(ids, dtype=object)).astype(str).to_numpy(dtype=object)
            idx = self._index.get_indexer(keys).astype(np.int64)
        if missing == "error" and (idx < 0).any():
            bad = keys[idx < 0]
            raise KeyError(f"unknown id {bad[0]!r} ({len(bad)} unknown in all)")
        return idx

    def _positions(self) -> dict[str, int]:
        """``{id: index}``, built on first use (small lookups, e.g. a service's requests)."""
        try:
            return self._pos
        except AttributeError:
            self._pos: dict[str, int] = {str(x): i for i, x in enumerate(self._ids.tolist())}
            return self._pos

    def ids(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """IDs at ``indices`` (object array of str, same shape)."""
        return self._ids[np.asarray(indices, dtype=np.int64)]

    def to_list(self) -> list[str]:
        return [str(x) for x in self._ids]

    @classmethod
    def from_list(cls, ids: list[str]) -> Vocabulary:
        vocab = cls(ids)
        if len(vocab) != len(ids):
            raise ValueError("vocabulary list has duplicate ids")
        return vocab
