"""MovieLens loaders (GroupLens and RecBole layouts) on small files, and on ml-100k if present."""

from __future__ import annotations

import warnings

import pytest

from reelpick.data import SchemaError, load_movielens
from reelpick.data.loaders import ML100K_GENRES, load_dataset


def _grouplens(root, data="1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n"):
    root.mkdir(exist_ok=True)
    (root / "u.data").write_text(data)
    flags = ["0"] * len(ML100K_GENRES)
    comedy = flags.copy()
    comedy[ML100K_GENRES.index("Comedy")] = "1"
    (root / "u.item").write_text(
        "10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(comedy) + "\n"
        "20|Heat (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n", encoding="latin-1")
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return root


def test_grouplens_layout(tmp_path):
    ds = load_movielens(_grouplens(tmp_path / "ml"))
    assert ds.interactions["member_id"].tolist() == ["1", "2", "1"]  # file order kept
    assert ds.titles.set_index("title_id").loc["10", "genres"] == "Comedy"
    assert ds.titles["year"].tolist() == [1995, 1995]
    assert ds.members["occupation"].tolist() == ["technician", "other"]


def test_grouplens_unknown_title_in_join(tmp_path):
    root = _grouplens(tmp_path / "ml", data="1\t10\t4\t881250949\n1\t99\t4\t881250950\n")
    with pytest.raises(SchemaError, match=r"u.data, line 2, column 'title_id'.*'99'"):
        load_movielens(root)


def test_grouplens_bad_rating(tmp_path):
    root = _grouplens(tmp_path / "ml", data="1\t10\tfive\t881250949\n")
    with pytest.raises(SchemaError, match=r"u.data, line 1, column 'rating'"):
        load_movielens(root)


def test_recbole_atomic_layout(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t100\n2\t20\t3\t200\n")
    (tmp_path / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Comedy\n20\tHeat\tunkonwn\tCrime\n")
    with pytest.warns(UserWarning, match=r"line 3 \('unkonwn'\)"):
        ds = load_movielens(tmp_path)
    assert ds.titles["genres"].tolist() == ["Animation|Comedy", "Crime"]
    assert ds.titles["year"].isna().tolist() == [False, True]


def test_missing_directory_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no dataset found"):
        load_dataset(tmp_path)


@pytest.mark.data
def test_real_ml100k(ml100k_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = load_movielens(ml100k_dir)
    assert len(ds.interactions) == 100_000
    assert ds.n_members == 943 and len(ds.titles) == 1682
    assert ds.interactions["rating"].between(1, 5).all()
    assert ds.interactions.duplicated(["member_id", "title_id"]).sum() == 0
