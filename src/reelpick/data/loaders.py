"""Loaders: MovieLens-100K (GroupLens and RecBole layouts), the Open Bandit Dataset (as timestamped
click interactions) and reelpick's own CSV/Parquet tables.

Every loader reads raw text and hands it to a :class:`~reelpick.data.schema.TableSchema`, so a bad
value is reported with its file, line and column rather than coerced.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "inter.csv"
>>> _ = p.write_text("member_id,title_id,timestamp\\nm1,t1,1700000000\\n")
>>> load_interactions(p)["title_id"].tolist()
['t1']
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reelpick.data.dataset import Dataset
from reelpick.data.schema import INTERACTIONS, SCHEMAS, Column, SchemaError, TableSchema

PathLike = str | os.PathLike[str]

#: The 19 genre flags of GroupLens ``u.item``, in file order (also listed in ``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)


def _read_delimited(path: Path, sep: str, *, names: list[str] | None = None,
                    encoding: str = "utf-8") -> pd.DataFrame:
    """Read a delimited text file as strings, turning parser errors into :class:`SchemaError`."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
            header=None if names else "infer", names=names, encoding=encoding,
            engine="c", quoting=3 if sep != "," else 0,
        )
    except pd.errors.ParserError as exc:  # ragged rows and the like
        raise SchemaError(f"cannot parse: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"not {encoding} text: {exc}", source=str(path)) from None


def load_table(path: PathLike, schema: TableSchema | str) -> pd.DataFrame:
    """Load a CSV (``.csv``, ``.tsv``) or Parquet (``.parquet``) file and validate it.

    Parameters
    ----------
    path : path to the file.
    schema : a :class:`TableSchema` or the name of one (``"interactions"``, ``"titles"``,
        ``"members"``, ``"impressions"``, ``"outcomes"``).

    Returns
    -------
    pd.DataFrame with canonical column dtypes. Line numbers in errors are file lines (header = 1)
    for text files and 1-based row numbers for Parquet.
    """
    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        df = pq.read_table(path).to_pandas()
        return schema.validate(df, source=str(path), line_offset=1)
    if suffix in (".csv", ".tsv", ".txt"):
        df = _read_delimited(path, "\t" if suffix == ".tsv" else ",")
        return schema.validate(df, source=str(path), line_offset=2)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .parquet")


def save_table(df: pd.DataFrame, path: PathLike) -> Path:
    """Write a table as CSV or Parquet (by extension); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix.lower() in (".csv", ".tsv"):
        df.to_csv(path, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        raise ValueError(f"{path}: unsupported file type; use .csv, .tsv or .parquet")
    return path


def load_interactions(path: PathLike) -> pd.DataFrame:
    """Load and validate an interactions table (CSV or Parquet)."""
    return load_table(path, INTERACTIONS)


def load_dataset(path: PathLike) -> Dataset:
    """Load a dataset directory: MovieLens (either layout), the Open Bandit Dataset
    (:func:`load_obd_dataset` with its defaults) or reelpick's own tables.

    reelpick's own layout is ``interactions.{parquet,csv}`` with optional ``titles.*`` and
    ``members.*`` beside it.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if (root / "u.data").exists() or list(root.glob("*.inter")):
        return load_movielens(root)
    if _obd_files(root):
        return load_obd_dataset(root)
    tables: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for name in ("interactions", "titles", "members"):
        for ext in (".parquet", ".csv", ".tsv"):
            p = root / f"{name}{ext}"
            if p.exists():
                tables[name] = load_table(p, name)
                sources[name] = str(p)
                break
    if "interactions" not in tables:
        raise FileNotFoundError(
            f"{root}: no dataset found; expected MovieLens files (u.data or *.inter), the Open "
            "Bandit Dataset layout ({random,bts}/{all,men,women}/) or interactions.parquet/.csv"
        )
    return Dataset.from_frames(tables["interactions"], tables.get("titles"),
                               tables.get("members"), name=root.name, sources=sources)


def load_movielens(path: PathLike) -> Dataset:
    """Load MovieLens-100K from a directory in the GroupLens or the RecBole atomic layout.

    GroupLens: ``u.data`` (tab: user, item, rating, timestamp), ``u.item`` (``|``, latin-1, 19
    genre flags), ``u.user`` (``|``). RecBole: ``<name>.inter``, ``.item``, ``.user`` with
    ``field:type`` headers. Row order of the interactions file is kept: it breaks timestamp ties in
    :func:`reelpick.data.splits.leave_last_out`.

    Returns a :class:`Dataset` with ``rating`` on interactions, ``name``/``genres``/``year`` on
    titles and the user attributes on members.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if (root / "u.data").exists():
        return _load_grouplens(root)
    inter = sorted(root.glob("*.inter"))
    if inter:
        return _load_recbole(inter[0])
    raise FileNotFoundError(f"{root}: neither u.data (GroupLens) nor *.inter (RecBole) found")


def _load_grouplens(root: Path) -> Dataset:
    data = root / "u.data"
    inter = _read_delimited(data, "\t", names=["member_id", "title_id", "rating", "timestamp"])
    titles = members = None
    sources = {"interactions": str(data)}
    if (root / "u.item").exists():
        cols = ["title_id", "name", "release_date", "video_release_date", "url",
                *ML100K_GENRES]
        raw = _read_delimited(root / "u.item", "|", names=cols, encoding="latin-1")
        flags = raw[list(ML100K_GENRES)].fillna("0")
        bad = ~flags.isin(["0", "1"])
        if bad.to_numpy().any():
            r, c = divmod(int(bad.to_numpy().argmax()), len(ML100K_GENRES))
            raise SchemaError(f"genre flag must be 0 or 1, got {flags.iat[r, c]!r}",
                              source=str(root / "u.item"), line=r + 1,
                              column=ML100K_GENRES[c])
        genres = flags.apply(lambda row: "|".join(g for g, f in zip(ML100K_GENRES, row)
                                                  if f == "1"), axis=1)
        year = pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
        titles = pd.DataFrame({"title_id": raw["title_id"], "name": raw["name"],
                               "genres": genres, "year": year.astype("Int64")})
        titles = _validated(titles, "titles", root / "u.item", 1)
        sources["titles"] = str(root / "u.item")
    if (root / "u.user").exists():
        members = _read_delimited(root / "u.user", "|", names=[
            "member_id", "age", "gender", "occupation", "zip_code"])
        members = _validated(members, "members", root / "u.user", 1)
        sources["members"] = str(root / "u.user")
    inter = _validated(inter, "interactions", data, 1)
    return Dataset.from_frames(inter, titles, members, name=root.name, sources=sources,
                               line_offset=1)


def _validated(df: pd.DataFrame, table: str, path: Path, offset: int) -> pd.DataFrame:
    return SCHEMAS[table].validate(df, source=str(path), line_offset=offset)


def _read_atomic(path: Path) -> pd.DataFrame:
    df = _read_delimited(path, "\t")
    df.columns = [str(c).split(":", 1)[0] for c in df.columns]
    return df


def _years(values: pd.Series, path: Path) -> pd.Series:
    """Release years; a token that is not a year (ml-100k has 'unkonwn' twice and 'V' once) is
    read as missing, with a warning naming each line, never silently."""
    years = pd.to_numeric(values, errors="coerce")
    bad = years.isna() & values.notna()
    if bad.any():
        where = ", ".join(f"line {i + 2} ({values.iloc[i]!r})" for i in np.flatnonzero(bad))
        warnings.warn(f"{path}, column 'release_year': not a year, read as missing: {where}",
                      stacklevel=3)
    return years.astype("Int64")


def _load_recbole(inter_path: Path) -> Dataset:
    stem = inter_path.with_suffix("")
    inter = _read_atomic(inter_path).rename(columns={"user_id": "member_id",
                                                     "item_id": "title_id"})
    inter = _validated(inter, "interactions", inter_path, 2)
    sources = {"interactions": str(inter_path)}
    titles = members = None
    item_path = stem.with_suffix(".item")
    if item_path.exists():
        raw = _read_atomic(item_path)
        titles = pd.DataFrame({"title_id": raw["item_id"]})
        if "movie_title" in raw:
            titles["name"] = raw["movie_title"]
        if "class" in raw:
            titles["genres"] = raw["class"].fillna("").str.split().str.join("|")
        if "release_year" in raw:
            titles["year"] = _years(raw["release_year"], item_path)
        titles = _validated(titles, "titles", item_path, 2)
        sources["titles"] = str(item_path)
    user_path = stem.with_suffix(".user")
    if user_path.exists():
        members = _read_atomic(user_path).rename(columns={"user_id": "member_id"})
        members = _validated(members, "members", user_path, 2)
        sources["members"] = str(user_path)
    return Dataset.from_frames(inter, titles, members, name=stem.name, sources=sources)


# --- Open Bandit Dataset ----------------------------------------------------------------------

#: Logging policies and campaigns of the Open Bandit Dataset, in the order files are read.
OBD_POLICIES: tuple[str, ...] = ("random", "bts")
OBD_CAMPAIGNS: tuple[str, ...] = ("all", "men", "women")
#: The four hashed categorical user features of an OBD log.
OBD_USER_FEATURES: tuple[str, ...] = tuple(f"user_feature_{i}" for i in range(4))

#: One OBD log file ``{policy}/{campaign}/{campaign}.csv``. Positions are 1..3 in the files;
#: the user features are optional here (the OPE loader does without them).
OBD_LOG = TableSchema("obd_log", (
    Column("timestamp", "timestamp"),
    Column("item_id", "int", min=0),
    Column("position", "int", min=1),
    Column("click", "int", min=0, max=1),
    Column("propensity_score", "float", min=0.0, max=1.0, min_exclusive=True),
    *(Column(c, "id", required=False) for c in OBD_USER_FEATURES),
))
#: ``item_context.csv``: one row per item (action) of a campaign.
OBD_ITEMS = TableSchema("obd_item_context", (
    Column("item_id", "int", min=0),
    Column("item_feature_0", "float"),
), unique="item_id")


def _obd_files(root: Path) -> list[tuple[str, str]]:
    """The ``(policy, campaign)`` pairs whose log file exists under ``root``."""
    return [(p, c) for p in OBD_POLICIES for c in OBD_CAMPAIGNS
            if (root / p / c / f"{c}.csv").is_file()]


def _read_csv_frame(path: Path) -> pd.DataFrame:
    """``pd.read_csv(path, index_col=0)`` (the OBD files' first column is a row index), with
    parser errors turned into :class:`SchemaError` naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected the Open Bandit Dataset layout "
                                "{random,bts}/{all,men,women}/{campaign}.csv + item_context.csv)")
    try:
        return pd.read_csv(path, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SchemaError(f"cannot parse: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"not utf-8 text: {exc}", source=str(path)) from None


def read_obd_files(path: PathLike, behavior_policy: str,
                   campaign: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check one OBD log and its item table: ``path/{behavior_policy}/{campaign}/``
    ``{campaign}.csv`` and ``item_context.csv``.

    Returns the two frames exactly as ``pd.read_csv(..., index_col=0)`` reads them (file order,
    pandas' dtypes), after checking them against :data:`OBD_LOG` and :data:`OBD_ITEMS` and that
    every logged ``item_id`` is in the item table. A bad value raises :class:`SchemaError` with
    the file, its line (header = 1) and the column. Shared by :func:`load_obd_dataset` and
    :func:`reelpick.ope.load_obd`.

    >>> read_obd_files("../shared/data/obd", "random", "men")[0].shape  # doctest: +SKIP
    (10000, 43)
    """
    if behavior_policy not in OBD_POLICIES:
        raise ValueError(f"behavior_policy must be 'random' or 'bts', got {behavior_policy!r}")
    if campaign not in OBD_CAMPAIGNS:
        raise ValueError(f"campaign must be 'all', 'men' or 'women', got {campaign!r}")
    folder = Path(path) / behavior_policy / campaign
    log_file, item_file = folder / f"{campaign}.csv", folder / "item_context.csv"
    for f in (log_file, item_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such file (expected the Open Bandit Dataset "
                                    "layout {random,bts}/{all,men,women}/)")
    log, items = _read_csv_frame(log_file), _read_csv_frame(item_file)
    checked = OBD_ITEMS.validate(items, source=str(item_file), line_offset=2)
    log_checked = OBD_LOG.validate(log, source=str(log_file), line_offset=2)
    unknown = ~log_checked["item_id"].isin(checked["item_id"]).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise SchemaError(f"item_id {int(log_checked['item_id'].iloc[i])} is not in "
                          f"{item_file.name} ({int(unknown.sum())} rows in all)",
                          source=str(log_file), line=i + 2, column="item_id")
    return log, items


def _segment_id(features: pd.DataFrame) -> pd.Series:
    """A short stable id per distinct combination of the user-feature strings."""
    cols = [features[c].astype(str).to_numpy(dtype=object) for c in features.columns]
    joined = ["\x1f".join(parts) for parts in zip(*cols)]
    codes = {v: "u" + hashlib.blake2b(v.encode(), digest_size=6).hexdigest()
             for v in dict.fromkeys(joined)}
    return pd.Series([codes[v] for v in joined], index=features.index, dtype=object)


def load_obd_dataset(
    path: PathLike,
    *,
    behavior_policies: Sequence[str] | None = None,
    campaigns: Sequence[str] | None = None,
    events: Literal["clicks", "impressions"] = "clicks",
) -> Dataset:
    """The Open Bandit Dataset (Saito et al. 2021; ZOZOTOWN fashion e-commerce, 7 days from
    2019-11-24, CC BY 4.0) as a timestamped interactions :class:`Dataset`.

    ``path`` is the OBD root, holding ``{random,bts}/{all,men,women}/{campaign}.csv`` and
    ``item_context.csv`` (the layout obp ships, e.g. ``../shared/data/obd``).
    ``behavior_policies`` / ``campaigns`` pick the files (default ``None``: every one present;
    a named one that is missing raises :class:`FileNotFoundError`).

    Mapping (OBD has no user ids):

    * ``member_id``: the combination of the four hashed user features ``user_feature_0..3``, a
      *segment* of users rather than one person (``"u"`` + 12 hex digits of its BLAKE2b hash);
      ``members`` holds the four features.
    * ``title_id``: ``"{campaign}:{item_id}"``; the item indices of the three campaigns are
      separate spaces (80, 34 and 46 items), so they never merge. ``titles`` lists every item of
      every campaign read (its ``campaign`` and the numeric ``item_feature_0``).
    * ``timestamp``: the impression time, whole UTC seconds. Rows are ordered by the full
      microsecond time (stable), so ties at the second keep their true order.
    * ``events="clicks"`` keeps the clicked impressions only (positive feedback: 287 rows in
      the 60,000-row sample); ``"impressions"`` keeps every row with its ``click``.
    * Extra columns: ``position`` (1..3), ``propensity_score``, ``policy``, ``campaign``.

    Every value is checked (:func:`read_obd_files`): an error names the file, line and column.

    Example
    -------
    >>> ds = load_obd_dataset("../shared/data/obd")  # doctest: +SKIP
    >>> len(ds.interactions), ds.n_members, ds.titles.shape[0]  # doctest: +SKIP
    (287, 129, 160)

    Reference: Y. Saito, S. Aihara, M. Matsutani, Y. Narita. "Open Bandit Dataset and Pipeline:
    Towards Realistic and Reproducible Off-Policy Evaluation." NeurIPS 2021 Datasets and
    Benchmarks Track (arXiv:2008.07146).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if events not in ("clicks", "impressions"):
        raise ValueError(f"events must be 'clicks' or 'impressions', got {events!r}")
    for name, given, allowed in (("behavior_policies", behavior_policies, OBD_POLICIES),
                                 ("campaigns", campaigns, OBD_CAMPAIGNS)):
        if given is not None:
            if isinstance(given, str) or not given:
                raise ValueError(f"{name} must be a non-empty sequence of names, got {given!r}")
            bad = [g for g in given if g not in allowed]
            if bad:
                raise ValueError(f"{name}: unknown {bad}; choose from {list(allowed)}")
    if behavior_policies is None and campaigns is None:
        pairs = _obd_files(root)
        if not pairs:
            raise FileNotFoundError(f"{root}: no Open Bandit Dataset files found (expected "
                                    "{random,bts}/{all,men,women}/{campaign}.csv)")
    else:
        pols = list(behavior_policies or OBD_POLICIES)
        camps = list(campaigns or OBD_CAMPAIGNS)
        present = set(_obd_files(root))
        pairs = [(p, c) for p in pols for c in camps
                 if (behavior_policies is not None and campaigns is not None)
                 or (p, c) in present]
        if not pairs:
            raise FileNotFoundError(f"{root}: none of policies {pols} x campaigns {camps} found")
    frames, titles = [], {}
    for policy, campaign in pairs:
        log, items = read_obd_files(root, policy, campaign)
        log_file = root / policy / campaign / f"{campaign}.csv"
        missing = [c for c in OBD_USER_FEATURES if c not in log.columns]
        if missing:
            raise SchemaError(f"missing user feature column(s) {missing}; load_obd_dataset "
                              "builds member ids from them", source=str(log_file))
        when = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
        frame = pd.DataFrame({
            "member_id": _segment_id(log[list(OBD_USER_FEATURES)]).to_numpy(),
            "title_id": (f"{campaign}:" + log["item_id"].astype("int64").astype(str)).to_numpy(),
            "timestamp": ((when - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
            .to_numpy(dtype="int64"),
            "position": log["position"].to_numpy(dtype="int64"),
            "propensity_score": log["propensity_score"].to_numpy(dtype="float64"),
            "click": log["click"].to_numpy(dtype="int64"),
            "policy": policy, "campaign": campaign,
            "_when": when.to_numpy(),
        })
        frame[list(OBD_USER_FEATURES)] = log[list(OBD_USER_FEATURES)].astype(str).to_numpy()
        frames.append(frame)
        if campaign not in titles:
            titles[campaign] = pd.DataFrame({
                "title_id": f"{campaign}:" + items["item_id"].astype("int64").astype(str),
                "campaign": campaign,
                "item_feature_0": items["item_feature_0"].to_numpy(dtype="float64")})
    inter = pd.concat(frames, ignore_index=True).sort_values("_when", kind="stable")
    members = (inter[["member_id", *OBD_USER_FEATURES]].drop_duplicates("member_id")
               .reset_index(drop=True))
    if events == "clicks":
        inter = inter[inter["click"] == 1].drop(columns="click")
    inter = inter.drop(columns=["_when", *OBD_USER_FEATURES])
    members = members[members["member_id"].isin(inter["member_id"])].reset_index(drop=True)
    title_table = pd.concat(titles.values(), ignore_index=True)
    return Dataset.from_frames(inter.reset_index(drop=True), title_table, members,
                               name="obd", sources={"interactions": str(root)})
