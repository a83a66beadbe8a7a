"""Composed pages shared between processes: the nearline job writes them, every worker reads.

A :class:`PageStore` is one SQLite file (WAL, so readers never wait for the writer) of pages a
:class:`~reelpick.page.PagePolicy` composed ahead (:meth:`PagePolicy.precompute
<reelpick.page.PagePolicy.precompute>` with ``store=``): per policy version and visit key
(member, device, country, hour, weekday, hour bucket, layout), the page's titles, slot labels
and ranker scores and its titles' image distributions. A policy that :meth:`uses the store
<reelpick.page.PagePolicy.use_store>` looks up the visits it does not remember before it
composes, so a page composed by ``reelpick precompute --store`` in another process (or by
another worker) is served at a lookup's cost, with the titles and propensities the serving
process would have composed itself. The store holds no code and nothing that is executed:
integer and float arrays as raw little-endian bytes, labels as JSON.

Example
-------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> store = PageStore(Path(tempfile.mkdtemp()) / "pages.sqlite3")
>>> page = StoredPage(key=b"k1", bucket=10, titles=np.array([3, 1, -1]),
...                   labels=["Top picks", "Top picks", ""], score=np.array([.2, .1, np.nan]),
...                   probs=np.array([.25, .75, 1.0]))
>>> store.put("v1", [page]), len(store)
(1, 1)
>>> got = store.get("v1", [b"k1", b"k2"])
>>> list(got), got[b"k1"].titles.tolist(), got[b"k1"].labels[0]
([b'k1'], [3, 1, -1], 'Top picks')
>>> store.get("v2", [b"k1"])          # another version: nothing
{}
>>> store.prune(keep_version="v1", from_bucket=11)   # pages of past hours go
1
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PageStore", "StoredPage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    version TEXT NOT NULL,
    key BLOB NOT NULL,
    bucket INTEGER NOT NULL,
    titles BLOB NOT NULL,
    labels TEXT,
    score BLOB,
    probs BLOB,
    PRIMARY KEY (version, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_bucket ON pages (bucket);
"""
#: keys per ``SELECT ... IN (...)`` (SQLite's default limit of bound parameters is 32,766)
_CHUNK = 500


@dataclass(frozen=True)
class StoredPage:
    """One composed page: ``key`` the visit key's bytes, ``bucket`` its hour (``timestamp //
    3600``; what :meth:`PageStore.prune` drops), ``titles (S,)`` (-1 empty), ``labels`` the
    slots' row labels (or ``None``), ``score (S,)`` the ranker's p(play) (or ``None``),
    ``probs`` the image probabilities of the page's (slot, image) pairs in slot order (or
    ``None`` when images are not drawn from a remembered distribution)."""

    key: bytes
    bucket: int
    titles: np.ndarray
    labels: list[str] | None = None
    score: np.ndarray | None = None
    probs: np.ndarray | None = None


class PageStore:
    """Composed pages in the SQLite file ``path`` (module docstring), created with its folder
    when missing. Thread-safe (one connection under a lock); every process opens its own."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost hour is recomposed
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"{self.path}: cannot open the page store ({exc})") from None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Pages stored (all versions)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM pages").fetchone()[0])

    def versions(self) -> dict[str, int]:
        """``{version: pages}`` of the stored pages."""
        with self._lock:
            rows = self._db.execute("SELECT version, count(*) FROM pages GROUP BY version")
            return {str(v): int(n) for v, n in rows}

    def put(self, version: str, pages: Sequence[StoredPage]) -> int:
        """Store ``pages`` of policy ``version`` in one transaction (a page already stored
        under the same key is replaced); returns how many."""
        rows = [(version, p.key, int(p.bucket),
                 np.ascontiguousarray(p.titles, dtype="<i4").tobytes(),
                 None if p.labels is None else json.dumps(list(p.labels)),
                 None if p.score is None else np.ascontiguousarray(p.score, "<f8").tobytes(),
                 None if p.probs is None else np.ascontiguousarray(p.probs, "<f8").tobytes())
                for p in pages]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def get(self, version: str, keys: Sequence[bytes]) -> dict[bytes, StoredPage]:
        """The stored pages of ``version`` among ``keys`` (``{key: page}``; absent keys are
        not in it)."""
        out: dict[bytes, StoredPage] = {}
        with self._lock:
            for lo in range(0, len(keys), _CHUNK):
                part = list(keys[lo:lo + _CHUNK])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    "SELECT key, bucket, titles, labels, score, probs FROM pages "
                    f"WHERE version = ? AND key IN ({marks})", [version, *part]).fetchall()
                for key, bucket, titles, labels, score, probs in rows:
                    out[bytes(key)] = StoredPage(
                        bytes(key), int(bucket), np.frombuffer(titles, "<i4").astype(np.int64),
                        None if labels is None else json.loads(labels),
                        None if score is None else np.frombuffer(score, "<f8").copy(),
                        None if probs is None else np.frombuffer(probs, "<f8").copy())
        return out

    def prune(self, *, keep_version: str | None = None, from_bucket: int | None = None) -> int:
        """Delete the pages of other versions than ``keep_version`` and of hours before
        ``from_bucket``; returns how many were deleted."""
        where: list[str] = []
        args: list[object] = []
        if keep_version is not None:
            where.append("version != ?")
            args.append(keep_version)
        if from_bucket is not None:
            where.append("bucket < ?")
            args.append(int(from_bucket))
        if not where:
            return 0
        with self._lock:
            cur = self._db.execute(f"DELETE FROM pages WHERE {' OR '.join(where)}", args)
            return int(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()
