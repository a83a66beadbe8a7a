r"""Instruments from the system's own logs: experiment cells and randomised exploration slots.

No extra bookkeeping is needed: the impressions log already carries what identifies causal
effects.

``experiment_cell`` (optional impressions column)
    A per-visit randomised cell (e.g. a promotion test) that moves exposure. Valid as an
    instrument when it is (i) *relevant* (it shifts exposure; check the first-stage F), (ii)
    *excluded* (it changes plays only through what is shown) and (iii) *independent* of the
    member's hidden state (it is randomised). :func:`visit_design` builds one row per page
    (``page_id``): exposure :math:`D_v` = impressions of the treated titles on the page,
    outcome :math:`Y_v` = plays of treated titles in the visit (from the page via
    ``outcomes``, or organic, i.e. interactions without a ``decision_id``, attributed to the
    member's latest page at most ``window`` seconds earlier), instruments = cell dummies,
    controls = context dummies, clusters = members.
``propensity < 1`` (required impressions column)
    A slot whose title was drawn at random by the policy. :func:`exploration_impressions` keeps
    them; they give the treated arm of the uplift contrast (:mod:`reelpick.causal.uplift`).

Example
-------
>>> from reelpick.world import PromotionPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> logs = Logs.from_simulation(world.simulate(PromotionPolicy(), 2_000), world.titles())
>>> des = visit_design(logs, treat="kind:series")
>>> des.y.shape == des.endog.shape[:1] == (2_000,), des.instrument_names
(True, ('cell_1',))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reelpick.data.loaders import load_table
from reelpick.data.schema import join_outcomes

CONTROL_COLUMNS: tuple[str, ...] = ("device", "country", "day_of_week")


@dataclass(frozen=True, eq=False)
class Logs:
    """Impressions joined with outcomes (``play``), interactions, and titles if known."""

    impressions: pd.DataFrame
    interactions: pd.DataFrame
    titles: pd.DataFrame | None = None

    @classmethod
    def read(cls, path: str | Path) -> Logs:
        """Read ``impressions``, ``outcomes``, ``interactions`` (and ``titles`` when present)
        ``.parquet`` from a directory written by ``reelpick simulate`` (schema-validated)."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: not a directory of reelpick logs")
        need = [path / f"{n}.parquet" for n in ("impressions", "outcomes", "interactions")]
        missing = [p.name for p in need if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{path}: missing {', '.join(missing)} (expected the "
                                    f"output of `reelpick simulate`)")
        imp = load_table(need[0], "impressions")
        out = load_table(need[1], "outcomes")
        inter = load_table(need[2], "interactions")
        titles = load_table(path / "titles.parquet", "titles") \
            if (path / "titles.parquet").exists() else None
        return cls(join_outcomes(imp, out, source=str(need[1])), inter, titles)

    @classmethod
    def from_simulation(cls, log: Any, titles: pd.DataFrame | None = None) -> Logs:
        """From a :class:`reelpick.world.SimulationLog` (in memory)."""
        imp = join_outcomes(log.impressions(), log.outcomes())
        return cls(imp, log.interactions(), titles)


@dataclass(frozen=True, eq=False)
class Design:
    """An IV design: ``y (n,)``, ``endog (n, 1)``, ``instruments (n, q)``, ``controls (n, p)``,
    ``clusters (n,)`` (member ids), with names; ``rows`` the page ids."""

    y: np.ndarray
    endog: np.ndarray
    instruments: np.ndarray
    controls: np.ndarray
    clusters: np.ndarray
    endog_names: tuple[str, ...]
    instrument_names: tuple[str, ...]
    control_names: tuple[str, ...]
    rows: np.ndarray

    def frames(self) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """``(y, endog, instruments, controls)`` as named pandas objects (for 2SLS)."""
        return (pd.Series(self.y, name="plays"),
                pd.DataFrame(self.endog, columns=list(self.endog_names)),
                pd.DataFrame(self.instruments, columns=list(self.instrument_names)),
                pd.DataFrame(self.controls, columns=list(self.control_names)))


def treated_titles(logs: Logs, treat: str) -> set[str]:
    """Title ids selected by ``treat``: ``kind:<kind>`` or ``genre:<genre>`` (need the titles
    table) or ``titles:<id>,<id>,...``."""
    what, _, value = treat.partition(":")
    if not value:
        raise ValueError(f"treat: expected 'kind:<kind>', 'genre:<genre>' or "
                         f"'titles:<id>,...', got {treat!r}")
    if what == "titles":
        ids = {v.strip() for v in value.split(",") if v.strip()}
    elif what in ("kind", "genre"):
        t = logs.titles
        col = "kind" if what == "kind" else "genres"
        if t is None or col not in t.columns:
            raise ValueError(f"treat={treat!r} needs a titles table with a '{col}' column "
                             f"(titles.parquet)")
        vals = t[col].fillna("").astype(str)
        mask = vals == value if what == "kind" else vals.str.split("|").apply(
            lambda g: value in g)
        ids = set(t.loc[mask.to_numpy(), "title_id"])
    else:
        raise ValueError(f"treat: unknown selector {what!r}; use kind, genre or titles")
    if not ids:
        raise ValueError(f"treat={treat!r} selects no titles")
    return ids


def organic_plays(logs: Logs, *, window: int = 3600) -> pd.DataFrame:
    """Interactions without a ``decision_id`` (plays not from a page slot), each attributed to
    the member's latest page at most ``window`` seconds before it: columns ``page_id``,
    ``title_id``. Plays with no page in the window are dropped."""
    inter = logs.interactions
    if "decision_id" not in inter.columns:
        raise ValueError("interactions: need a 'decision_id' column (null for plays not made "
                         "from a page slot) to separate organic plays")
    org = inter[inter["decision_id"].isna()][["member_id", "title_id", "timestamp"]]
    pages = (logs.impressions.groupby("page_id", sort=False)
             .agg(member_id=("member_id", "first"), page_ts=("timestamp", "first"))
             .reset_index())
    if org.empty:
        return pd.DataFrame({"page_id": pd.Series(dtype=object),
                             "title_id": pd.Series(dtype=object)})
    a = org.sort_values("timestamp").astype({"timestamp": "int64"})
    b = pages.sort_values("page_ts").astype({"page_ts": "int64"})
    m = pd.merge_asof(a, b, left_on="timestamp", right_on="page_ts", by="member_id",
                      direction="backward", tolerance=window)
    return m.dropna(subset=["page_id"])[["page_id", "title_id"]]


def _dummies(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    cols = [c for c in columns if c in frame.columns]
    if not cols:
        return np.empty((len(frame), 0)), []
    d = pd.get_dummies(frame[cols].astype(str), drop_first=True, dtype=float)
    d = d.loc[:, d.std() > 0]
    return d.to_numpy(), [str(c) for c in d.columns]


def visit_design(logs: Logs, *, treat: str = "kind:series", instrument: str = "experiment_cell",
                 controls: tuple[str, ...] = CONTROL_COLUMNS, window: int = 3600) -> Design:
    """One row per page: plays of the treated titles on exposure to them, instrumented by the
    page's experiment cell (see the module docstring)."""
    imp = logs.impressions
    for col in ("page_id", instrument):
        if col not in imp.columns:
            raise ValueError(f"impressions: need a '{col}' column for an experiment-cell "
                             f"instrument")
    ids = treated_titles(logs, treat)
    tr = imp["title_id"].isin(ids).to_numpy()
    pages = imp.groupby("page_id", sort=True)
    first = pages.first()
    d = pd.Series(tr.astype(float), index=imp.index).groupby(imp["page_id"]).sum().reindex(
        first.index)
    page_plays = imp[tr & (imp["play"].to_numpy() > 0)].groupby("page_id").size()
    org = organic_plays(logs, window=window)
    org_plays = org[org["title_id"].isin(ids)].groupby("page_id").size()
    y = (page_plays.reindex(first.index, fill_value=0)
         + org_plays.reindex(first.index, fill_value=0)).to_numpy(float)
    cell = first[instrument]
    if cell.isna().any():
        raise ValueError(f"impressions: '{instrument}' has missing values")
    levels = sorted(cell.unique().tolist())
    if len(levels) < 2:
        raise ValueError(f"impressions: '{instrument}' takes a single value {levels}; an "
                         f"instrument must vary")
    z = np.column_stack([(cell == lv).to_numpy(float) for lv in levels[1:]])
    w, wn = _dummies(first.reset_index(), controls)
    return Design(y=y, endog=d.to_numpy(float)[:, None], instruments=z, controls=w,
                  clusters=first["member_id"].to_numpy(), endog_names=("exposure",),
                  instrument_names=tuple(f"cell_{lv}" for lv in levels[1:]),
                  control_names=tuple(wn), rows=first.index.to_numpy())


def exploration_impressions(logs: Logs) -> pd.DataFrame:
    """Impressions from randomised slots (``propensity < 1``), with ``play``."""
    imp = logs.impressions
    return imp[imp["propensity"].to_numpy() < 1.0]
