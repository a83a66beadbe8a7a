"""Typed, validated event tables shared by every part of reelpick.

Every table is a :class:`pandas.DataFrame` with canonical column names and dtypes. A
:class:`TableSchema` validates a frame once, at the edge (a loader, the service, the simulator),
and returns it with canonical dtypes; nothing is silently coerced. A value that does not fit raises
:class:`SchemaError` naming the source file, the 1-based line of the file and the column.

Tables (column, dtype, required?):

``interactions``
    ``member_id`` str, ``title_id`` str, ``timestamp`` int64 Unix seconds (required);
    ``rating`` float, ``watch_seconds`` float >= 0, and context ``device`` str, ``country`` str,
    ``hour`` int 0..23 (member-local), ``day_of_week`` int 0..6 (Monday = 0) (optional).
``titles``
    ``title_id`` str (required); ``name`` str, ``genres`` str (``|``-separated), ``year`` int,
    ``duration_seconds`` float > 0, ``kind`` str, ``release_ts`` int64 (optional); other columns
    kept.
``members``
    ``member_id`` str (required); other attribute columns kept as they are.
``impressions``
    one row per title shown: ``decision_id`` str (unique), ``timestamp``, ``member_id``,
    ``row`` str, ``row_index`` int >= 0, ``position`` int >= 0, ``title_id``, ``policy`` str,
    ``propensity`` float in (0, 1] (the probability that the policy showed this title in this slot)
    (required); ``page_id`` str, ``artwork_id`` str, ``model_version`` str and the context columns
    (optional).
``outcomes``
    ``decision_id`` str, ``play`` int 0/1 (required); ``timestamp``, ``watch_seconds`` >= 0
    (optional). Joined to impressions by ``decision_id`` with :func:`join_outcomes`.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"member_id": ["m1"], "title_id": ["t9"], "timestamp": [1700000000]})
>>> INTERACTIONS.validate(df, source="example").dtypes["timestamp"]
dtype('int64')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["id", "str", "int", "float", "timestamp"]

#: Devices the simulator and the service know; other strings are accepted in loaded data.
DEVICES: tuple[str, ...] = ("tv", "mobile", "tablet", "web")
#: Artwork themes (the ``theme`` column of an artworks table).
THEMES: tuple[str, ...] = (
    "lead_actor", "action_scene", "romance", "comedy", "dark_mystery", "family",
)
CONTEXT_COLUMNS: tuple[str, ...] = ("device", "country", "hour", "day_of_week")


class SchemaError(ValueError):
    """A table does not fit its schema. The message names source, line and column."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<frame>",
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source, self.line, self.column = source, line, column
        where = source
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Column:
    """One column: its name, kind, whether it is required and the allowed range."""

    name: str
    kind: Kind
    required: bool = True
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A table's columns; :meth:`validate` checks a frame and returns it with canonical dtypes.

    ``line_offset`` maps a frame's 0-based row position to the file's 1-based line number (2 for a
    file with one header line). ``unique`` names a column whose values must not repeat.
    """

    name: str
    columns: tuple[Column, ...]
    unique: str | None = None
    extra_ok: bool = True
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def validate(
        self, df: pd.DataFrame, *, source: str = "<frame>", line_offset: int = 2
    ) -> pd.DataFrame:
        """Check ``df`` against the schema and return a copy with canonical dtypes.

        Raises :class:`SchemaError` naming ``source``, the line (row position + ``line_offset``)
        and the column of the first bad value.
        """
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}",
                              source=source)
        missing = [c for c in self.required if c not in df.columns]
        if missing:
            raise SchemaError(
                f"missing required column(s) {missing} for table '{self.name}'; "
                f"found {list(df.columns)}",
                source=source,
            )
        out = df.reset_index(drop=True).copy()
        for col in self.columns:
            if col.name in out.columns:
                out[col.name] = _coerce(out[col.name], col, source, line_offset)
        if self.unique is not None:
            dup = out[self.unique].duplicated()
            if dup.any():
                i = int(np.flatnonzero(dup.to_numpy())[0])
                raise SchemaError(
                    f"duplicate value {out[self.unique].iloc[i]!r}; it must be unique",
                    source=source,
                    line=i + line_offset,
                    column=self.unique,
                )
        return out


def _bad(
    series: pd.Series, mask: np.ndarray, col: Column, source: str, offset: int, why: str
) -> SchemaError:
    i = int(np.flatnonzero(mask)[0])
    return SchemaError(
        f"{why} (got {series.iloc[i]!r}); {int(mask.sum())} bad value(s) in all",
        source=source,
        line=i + offset,
        column=col.name,
    )


def _coerce(s: pd.Series, col: Column, source: str, offset: int) -> pd.Series:
    isna = s.isna().to_numpy()
    if isna.any() and not col.nullable:
        raise _bad(s, isna, col, source, offset, "missing value")
    if col.kind in ("id", "str"):
        if pd.api.types.is_float_dtype(s.dtype):
            # floats as ids would print as "12.0": refuse rather than guess.
            nonint = ~isna & (s.fillna(0) != np.round(s.fillna(0)))
            if nonint.any():
                raise _bad(s, nonint, col, source, offset, "expected an id, found a fraction")
            vals = s.map(lambda v: None if pd.isna(v) else str(int(v)))
        else:
            # vectorised str(v); missing values stay missing
            vals = s.astype("string") if isna.any() else s.astype(str)
        out = vals.astype("string" if col.nullable else object)
        if col.kind == "id":
            empty = (out.fillna("x").str.len() == 0).to_numpy()
            if empty.any():
                raise _bad(s, empty, col, source, offset, "empty id")
        return out
    if col.kind == "timestamp":
        num = _to_timestamp(s, col, source, offset)
        return num
    # numeric kinds
    if pd.api.types.is_bool_dtype(s.dtype):
        num = s.astype("int64")
    elif pd.api.types.is_numeric_dtype(s.dtype):
        num = s
    else:
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy() & ~isna
        if bad.any():
            raise _bad(s, bad, col, source, offset, f"expected a number for a {col.kind} column")
    arr = num.to_numpy(dtype="float64", na_value=np.nan)
    ok = ~np.isnan(arr)
    if np.isinf(arr[ok]).any():
        raise _bad(s, ok & np.isinf(arr), col, source, offset, "infinite value")
    if col.min is not None:
        low = ok & ((arr <= col.min) if col.min_exclusive else (arr < col.min))
        if low.any():
            op = ">" if col.min_exclusive else ">="
            raise _bad(s, low, col, source, offset, f"value must be {op} {col.min}")
    if col.max is not None:
        high = ok & (arr > col.max)
        if high.any():
            raise _bad(s, high, col, source, offset, f"value must be <= {col.max}")
    if col.kind == "int":
        frac = ok & (arr != np.round(arr))
        if frac.any():
            raise _bad(s, frac, col, source, offset, "expected an integer")
        if not ok.all():
            return pd.Series(pd.array(np.where(ok, arr, 0).astype("int64"), dtype="Int64"),
                             index=s.index).where(ok, pd.NA)
        return pd.Series(arr.astype("int64"), index=s.index)
    return pd.Series(arr, index=s.index, dtype="float64")


def _to_timestamp(s: pd.Series, col: Column, source: str, offset: int) -> pd.Series:
    """Unix seconds (int64). Accepts integral numbers and ISO-8601 strings, nothing else."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ts = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        return pd.Series(seconds.to_numpy(dtype="int64"), index=s.index)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        arr = s.to_numpy(dtype="float64")
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0)
        if bad.any():
            raise _bad(s, bad, col, source, offset, "bad timestamp: expected whole Unix seconds")
        return pd.Series(arr.astype("int64"), index=s.index)
    text = s.astype(str)
    numeric = pd.to_numeric(text, errors="coerce")
    out = np.empty(len(s), dtype="int64")
    is_num = numeric.notna().to_numpy()
    if is_num.any():
        arr = numeric.to_numpy(dtype="float64")
        bad = is_num & ((arr != np.round(arr)) | (arr < 0))
        if bad.any():
            raise _bad(s, bad, col, source, offset, "bad timestamp: expected whole Unix seconds")
        out[is_num] = arr[is_num].astype("int64")
    if (~is_num).any():
        parsed = pd.to_datetime(text[~is_num], errors="coerce", utc=True, format="ISO8601")
        bad_iso = np.zeros(len(s), dtype=bool)
        bad_iso[~is_num] = parsed.isna().to_numpy()
        if bad_iso.any():
            raise _bad(
                s, bad_iso, col, source, offset,
                "bad timestamp: expected Unix seconds or an ISO-8601 date-time",
            )
        out[~is_num] = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return pd.Series(out, index=s.index)


_CONTEXT = (
    Column("device", "str", required=False),
    Column("country", "str", required=False),
    Column("hour", "int", required=False, min=0, max=23),
    Column("day_of_week", "int", required=False, min=0, max=6),
)

INTERACTIONS = TableSchema(
    "interactions",
    (
        Column("member_id", "id"),
        Column("title_id", "id"),
        Column("timestamp", "timestamp"),
        Column("rating", "float", required=False, nullable=True),
        Column("watch_seconds", "float", required=False, min=0, nullable=True),
        *_CONTEXT,
    ),
)

TITLES = TableSchema(
    "titles",
    (
        Column("title_id", "id"),
        Column("name", "str", required=False, nullable=True),
        Column("genres", "str", required=False, nullable=True),
        Column("year", "int", required=False, nullable=True),
        Column("duration_seconds", "float", required=False, min=0, min_exclusive=True,
               nullable=True),
        Column("kind", "str", required=False, nullable=True),
        Column("release_ts", "timestamp", required=False),
    ),
    unique="title_id",
)

MEMBERS = TableSchema("members", (Column("member_id", "id"),), unique="member_id")

IMPRESSIONS = TableSchema(
    "impressions",
    (
        Column("decision_id", "id"),
        Column("timestamp", "timestamp"),
        Column("member_id", "id"),
        Column("row", "str"),
        Column("row_index", "int", min=0),
        Column("position", "int", min=0),
        Column("title_id", "id"),
        Column("policy", "str"),
        Column("propensity", "float", min=0.0, max=1.0, min_exclusive=True),
        Column("page_id", "id", required=False),
        Column("artwork_id", "str", required=False, nullable=True),
        Column("artwork_propensity", "float", required=False, min=0.0, max=1.0,
               min_exclusive=True, nullable=True),
        Column("model_version", "str", required=False, nullable=True),
        *_CONTEXT,
    ),
    unique="decision_id",
)

OUTCOMES = TableSchema(
    "outcomes",
    (
        Column("decision_id", "id"),
        Column("play", "int", min=0, max=1),
        Column("timestamp", "timestamp", required=False),
        Column("watch_seconds", "float", required=False, min=0, nullable=True),
    ),
    unique="decision_id",
)

SCHEMAS: dict[str, TableSchema] = {
    s.name: s for s in (INTERACTIONS, TITLES, MEMBERS, IMPRESSIONS, OUTCOMES)
}


def join_outcomes(
    impressions: pd.DataFrame, outcomes: pd.DataFrame, *, source: str = "<outcomes>"
) -> pd.DataFrame:
    """Left-join outcomes onto impressions by ``decision_id``.

    Impressions without an outcome get ``play = 0`` and ``watch_seconds = 0``. An outcome whose
    ``decision_id`` is not among the impressions raises :class:`SchemaError` (line of ``source``).

    >>> imp = pd.DataFrame({"decision_id": ["d1", "d2"], "title_id": ["a", "b"]})
    >>> out = pd.DataFrame({"decision_id": ["d2"], "play": [1]})
    >>> join_outcomes(imp, out)["play"].tolist()
    [0, 1]
    """
    known = pd.Index(impressions["decision_id"])
    unknown = ~outcomes["decision_id"].isin(known).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise SchemaError(
            f"unknown decision_id {outcomes['decision_id'].iloc[i]!r}: no impression has it "
            f"({int(unknown.sum())} unknown in all)",
            source=source,
            line=i + 2,
            column="decision_id",
        )
    cols = ["decision_id", "play"] + (
        ["watch_seconds"] if "watch_seconds" in outcomes.columns else []
    )
    right = outcomes[cols].rename(columns={"watch_seconds": "outcome_watch_seconds"})
    joined = impressions.merge(right, on="decision_id", how="left", validate="one_to_one")
    joined["play"] = joined["play"].fillna(0).astype("int64")
    if "outcome_watch_seconds" in joined.columns:
        joined["watch_seconds"] = joined.pop("outcome_watch_seconds").fillna(0.0).astype(float)
    else:
        joined["watch_seconds"] = 0.0
    return joined
