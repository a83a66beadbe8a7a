"""A validated bundle of interactions with optional title and member tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelpick.data.schema import INTERACTIONS, MEMBERS, TITLES, SchemaError
from reelpick.data.vocab import Vocabulary


@dataclass(frozen=True)
class Dataset:
    """Interactions plus optional ``titles`` and ``members`` tables, all validated.

    Build one with :meth:`from_frames`, which validates every table against its schema and checks
    that every member and title an interaction names exists in the side tables when they are given.

    Attributes
    ----------
    interactions : pd.DataFrame
        Schema :data:`reelpick.data.schema.INTERACTIONS`, in source row order.
    titles, members : pd.DataFrame or None
        Schemas ``TITLES`` and ``MEMBERS``.
    name : str
        A label used in reports.

    Example
    -------
    >>> inter = pd.DataFrame({"member_id": ["a", "a", "b"], "title_id": ["x", "y", "x"],
    ...                       "timestamp": [1, 2, 3]})
    >>> ds = Dataset.from_frames(inter, name="toy")
    >>> ds.n_members, ds.n_titles
    (2, 2)
    """

    interactions: pd.DataFrame
    titles: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    name: str = "dataset"

    @classmethod
    def from_frames(
        cls,
        interactions: pd.DataFrame,
        titles: pd.DataFrame | None = None,
        members: pd.DataFrame | None = None,
        *,
        name: str = "dataset",
        sources: dict[str, str] | None = None,
        line_offset: int = 2,
    ) -> Dataset:
        """Validate and bundle tables. ``sources`` names the file of each table for error
        messages; ``line_offset`` turns an interactions row position into its file line (2 for a
        file with a header, 1 without)."""
        src = {"interactions": "<interactions>", "titles": "<titles>", "members": "<members>"}
        src.update(sources or {})
        inter = INTERACTIONS.validate(interactions, source=src["interactions"],
                                      line_offset=line_offset)
        tit = TITLES.validate(titles, source=src["titles"]) if titles is not None else None
        mem = MEMBERS.validate(members, source=src["members"]) if members is not None else None
        for table, col in ((tit, "title_id"), (mem, "member_id")):
            if table is None:
                continue
            unknown = ~inter[col].isin(pd.Index(table[col])).to_numpy()
            if unknown.any():
                i = int(np.flatnonzero(unknown)[0])
                raise SchemaError(
                    f"unknown {col} {inter[col].iloc[i]!r}: not in the "
                    f"{'titles' if col == 'title_id' else 'members'} table "
                    f"({int(unknown.sum())} rows in all)",
                    source=src["interactions"],
                    line=i + line_offset,
                    column=col,
                )
        return cls(inter, tit, mem, name)

    @property
    def n_members(self) -> int:
        return int(self.interactions["member_id"].nunique())

    @property
    def n_titles(self) -> int:
        return int(self.interactions["title_id"].nunique())

    def member_vocab(self) -> Vocabulary:
        return Vocabulary(self.interactions["member_id"])

    def title_vocab(self) -> Vocabulary:
        """Titles in the titles table if given (whole catalogue), else those interacted with."""
        if self.titles is not None:
            return Vocabulary(self.titles["title_id"])
        return Vocabulary(self.interactions["title_id"])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, interactions={len(self.interactions)}, "
            f"members={self.n_members}, titles={self.n_titles})"
        )
