"""Export the event log to Parquet for training and off-policy evaluation.

``impressions.parquet`` (schema ``IMPRESSIONS``): one row per served slot, with ``decision_id``
``f"{page_id}-{slot}"``, the exact ``propensity``, ``policy``, ``model_version``, ``page_id``,
``artwork_id`` and the context; extra columns ``artwork_propensity``, ``explored`` and ``viewed``
(1 when the client sent an ``impression`` event for the slot).

``outcomes.parquet`` (schema ``OUTCOMES``): one row per decision with a ``play`` or ``watch``
event: ``play = 1``, ``timestamp`` of the first such event, ``watch_seconds`` summed over them.

The whole export reads one snapshot of the log (one read transaction), so it may run while the
server writes. Pages are read in chunks and validated chunk by chunk.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reelpick.data.schema import IMPRESSIONS, OUTCOMES

CHUNK_PAGES = 5_000


@dataclass(frozen=True)
class ExportResult:
    pages: int
    impressions: int
    outcomes: int
    impressions_path: Path
    outcomes_path: Path


_EMPTY = {"decision_id": object, "timestamp": np.int64, "member_id": object, "row": object,
          "row_index": np.int64, "position": np.int64, "title_id": object, "policy": object,
          "propensity": np.float64, "page_id": object, "artwork_id": object,
          "model_version": object, "device": object, "country": object, "hour": np.int64,
          "day_of_week": np.int64, "artwork_propensity": np.float64, "explored": bool,
          "viewed": np.int64}


def _pages_frame(rows: list[tuple], viewed: set[str]) -> pd.DataFrame:
    """One row per slot of the given ``pages`` rows (columns in table order)."""
    if not rows:
        return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in _EMPTY.items()})
    n = np.array([r[9] for r in rows], dtype=np.int64)
    page_ids = np.repeat(np.array([r[0] for r in rows], dtype=object), n)
    slot = np.concatenate([np.arange(k) for k in n]) if len(n) else np.zeros(0, np.int64)
    decision = [f"{p}-{s}" for p, s in zip(page_ids, slot)]
    per_page_rows = [np.frombuffer(r[13], dtype="<i4") for r in rows]
    row_index = np.concatenate(per_page_rows)
    row_label = [lab for r, ri in zip(rows, per_page_rows)
                 for lab in np.asarray(json.loads(r[10]), dtype=object)[ri]]
    frame = pd.DataFrame({
        "decision_id": decision,
        "timestamp": np.repeat([r[1] for r in rows], n).astype(np.int64),
        "member_id": np.repeat(np.array([r[2] for r in rows], dtype=object), n),
        "row": row_label,
        "row_index": row_index.astype(np.int64),
        "position": np.concatenate([np.frombuffer(r[14], dtype="<i4") for r in rows]
                                   ).astype(np.int64),
        "title_id": [t for r in rows for t in r[11].split("|")],
        "policy": np.repeat(np.array([r[7] for r in rows], dtype=object), n),
        "propensity": np.concatenate([np.frombuffer(r[15], dtype="<f8") for r in rows]),
        "page_id": page_ids,
        "artwork_id": [a for r in rows for a in r[12].split("|")],
        "model_version": np.repeat(np.array([r[8] for r in rows], dtype=object), n),
        "device": np.repeat(np.array([r[3] for r in rows], dtype=object), n),
        "country": np.repeat(np.array([r[4] for r in rows], dtype=object), n),
        "hour": np.repeat([r[5] for r in rows], n).astype(np.int64),
        "day_of_week": np.repeat([r[6] for r in rows], n).astype(np.int64),
        "artwork_propensity": np.concatenate([np.frombuffer(r[16], dtype="<f8") for r in rows]),
        "explored": np.concatenate([np.frombuffer(r[17], dtype="u1") for r in rows]
                                   ).astype(bool),
    })
    frame["viewed"] = frame["decision_id"].isin(viewed).astype(np.int64)
    return frame


def write_impressions(path: Path, chunks: Iterable[tuple[list[tuple], set[str]]],
                      source: str) -> tuple[int, int]:
    """Write ``impressions.parquet`` at ``path`` from ``(pages rows, viewed decision ids)``
    chunks (rows in table column order), validating chunk by chunk; an empty log gives an
    empty file with the schema. Returns ``(pages, impressions)``. Shared by the SQLite and
    PostgreSQL exports."""
    n_pages = n_imp = 0
    writer: pq.ParquetWriter | None = None
    try:
        for rows, viewed in chunks:
            frame = IMPRESSIONS.validate(_pages_frame(rows, viewed),
                                         source=f"{source} (pages {n_pages + 1}..)")
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
            n_pages += len(rows)
            n_imp += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        empty = IMPRESSIONS.validate(_pages_frame([], set()), source=source)
        pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), path)
    return n_pages, n_imp


#: The outcomes query of both exports (one row per decision with a play or watch event).
OUTCOMES_SQL = ("SELECT decision_id, 1 AS play, MIN(ts) AS timestamp, "
                "SUM(watch_seconds) AS watch_seconds FROM events "
                "WHERE kind IN ('play', 'watch') GROUP BY decision_id "
                "ORDER BY MIN(ts), decision_id")


def write_outcomes(path: Path, rows: Iterable[tuple], source: str) -> int:
    """Validate the rows of :data:`OUTCOMES_SQL` and write ``outcomes.parquet``; returns
    their number."""
    outcomes = pd.DataFrame(list(rows),
                            columns=["decision_id", "play", "timestamp", "watch_seconds"])
    outcomes = outcomes.astype({"decision_id": object, "play": np.int64,
                                "timestamp": np.int64, "watch_seconds": np.float64})
    outcomes = OUTCOMES.validate(outcomes, source=source)
    pq.write_table(pa.Table.from_pandas(outcomes, preserve_index=False), path)
    return len(outcomes)


def export_logs(db: str | Path, out: str | Path, *, chunk_pages: int = CHUNK_PAGES
                ) -> ExportResult:
    """Write ``impressions.parquet`` and ``outcomes.parquet`` into ``out`` (see the module
    docstring); both validate against :data:`IMPRESSIONS` / :data:`OUTCOMES`."""
    db, out = Path(db), Path(out)
    if not db.is_file():
        raise ValueError(f"{db}: no such event log")
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    imp_path, out_path = out / "impressions.parquet", out / "outcomes.parquet"
    try:
        conn.execute("BEGIN")  # one snapshot for the whole export
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not {"pages", "events"} <= tables:
            raise ValueError(f"{db}: not a reelpick event log (tables {sorted(tables)})")

        def chunks() -> Iterable[tuple[list[tuple], set[str]]]:
            cur = conn.execute("SELECT * FROM pages ORDER BY ts, page_id")
            while True:
                rows = cur.fetchmany(chunk_pages)
                if not rows:
                    return
                ids = [r[0] for r in rows]
                viewed: set[str] = set()
                for k in range(0, len(ids), 500):
                    part = ids[k:k + 500]
                    viewed.update(v for (v,) in conn.execute(
                        "SELECT decision_id FROM events WHERE kind = 'impression' AND page_id "
                        f"IN ({','.join('?' * len(part))})", part))
                yield rows, viewed

        n_pages, n_imp = write_impressions(imp_path, chunks(), str(db))
        outcome_rows = conn.execute(OUTCOMES_SQL).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    n_out = write_outcomes(out_path, outcome_rows, f"{db} (events)")
    return ExportResult(n_pages, n_imp, n_out, imp_path, out_path)
