"""Loaders: MovieLens-100K (GroupLens and RecBole layouts) and reelpick's own CSV/Parquet tables.

Every loader reads raw text and hands it to a :class:`~reelpick.data.schema.TableSchema`, so a bad
value is reported with its file, line and column rather than coerced.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "inter.csv"
>>> _ = p.write_text("member_id,title_id,timestamp\\nm1,t1,1700000000\\n")
>>> load_interactions(p)["title_id"].tolist()
['t1']
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reelpick.data.dataset import Dataset
from reelpick.data.schema import INTERACTIONS, SCHEMAS, SchemaError, TableSchema

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
    """Load a dataset directory: MovieLens (either layout) or reelpick's own tables.

    reelpick's own layout is ``interactions.{parquet,csv}`` with optional ``titles.*`` and
    ``members.*`` beside it.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if (root / "u.data").exists() or list(root.glob("*.inter")):
        return load_movielens(root)
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
            f"{root}: no dataset found; expected MovieLens files (u.data or *.inter) or "
            "interactions.parquet/.csv"
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
