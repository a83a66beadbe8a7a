"""One contract suite, run on every recommender (implicit's checkerboard idea, LensKit's
component tests): fit returns self, fitted checks, seen titles excluded, persistence without
pickle, and a toy world whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.models import (
    NotFittedError,
    UnknownMemberError,
    available_models,
    load_model,
    make_model,
)

FAST = {"als": {"factors": 8, "iterations": 10, "regularization": 0.1},
        "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
        "itemknn": {"neighbors": 20}, "popular": {},
        "seq": {"hidden": 16, "n_blocks": 1, "max_len": 16, "max_epochs": 20, "eval_every": 5,
                "learning_rate": 5e-3, "dropout": 0.1, "batch_size": 32}}
FAST["blend"] = {"base": "als", "base_params": FAST["als"], "weight": 0.3}
FAST["stack"] = {"als_params": FAST["als"], "holdout_fraction": 0.2, "n_windows": 2,
                 "n_estimators": 30, "min_child_samples": 5, "n_candidates": 20}
PERSONALISED = ["itemknn", "als", "bpr", "seq", "blend", "stack"]


@pytest.fixture(params=available_models())
def name(request) -> str:
    return request.param


def test_all_models_are_covered():
    assert set(available_models()) == set(FAST)


def test_fit_returns_self_and_learned_state(name, toy_interactions):
    model = make_model(name, **FAST[name])
    assert not model.is_fitted
    assert model.fit(toy_interactions) is model
    assert len(model.member_vocab_) == 60 and len(model.title_vocab_) == 40


def test_not_fitted_error(name):
    model = make_model(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.recommend(["m0"])
    with pytest.raises(NotFittedError):
        model.save("x.npz")


def test_recommend_excludes_seen_and_is_sorted(name, toy_interactions):
    model = make_model(name, **FAST[name]).fit(toy_interactions)
    recs = model.recommend(["m0", "m1"], k=5)
    assert recs.title_ids.shape == (2, 5)
    for member, titles, scores in zip(recs.member_ids, recs.title_ids, recs.scores):
        seen = set(toy_interactions.loc[toy_interactions["member_id"] == member, "title_id"])
        assert not seen & set(titles)
        assert np.all(np.diff(scores) <= 1e-6)
    frame = recs.to_frame()
    assert list(frame.columns) == ["member_id", "rank", "title_id", "score"]
    assert len(frame) == 10


def test_extra_exclusions_and_short_catalogue(name, toy_interactions):
    model = make_model(name, **FAST[name]).fit(toy_interactions)
    first = model.recommend(["m0"], k=1).title_ids[0, 0]
    ex = pd.DataFrame({"member_id": ["m0"], "title_id": [first]})
    assert model.recommend(["m0"], k=1, exclude=ex).title_ids[0, 0] != first
    big = model.recommend(["m0"], k=100)  # 40 titles, 15 seen: 25 rankable, then empty slots
    assert (big.title_idx[0] >= 0).sum() == 25
    assert big.title_ids[0, -1] is None and np.isneginf(big.scores[0, -1])


def test_unknown_member_and_bad_k(name, toy_interactions):
    model = make_model(name, **FAST[name]).fit(toy_interactions)
    with pytest.raises(UnknownMemberError, match="not seen in training.*'nobody'"):
        model.recommend(["m0", "nobody"])
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.recommend(["m0"], k=0)


def test_save_load_roundtrip_without_pickle(name, toy_interactions, tmp_path):
    model = make_model(name, **FAST[name]).fit(toy_interactions)
    path = model.save(tmp_path / f"{name}.npz")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    members = ["m0", "m7", "m33"]
    np.testing.assert_allclose(loaded.score(members), model.score(members), rtol=1e-6)
    assert (loaded.recommend(members, k=5).title_ids == model.recommend(members, k=5)
            .title_ids).all()
    with np.load(path, allow_pickle=False) as z:  # would raise if anything were pickled
        assert "__header__" in z.files


def test_catalogue_titles_without_interactions_are_ranked(name, toy_interactions):
    model = make_model(name, **FAST[name]).fit(toy_interactions, titles=["new1", "new2"])
    assert len(model.title_vocab_) == 42
    assert model.score(["m0"]).shape == (1, 42)


@pytest.mark.parametrize("name", PERSONALISED)
def test_learns_the_two_taste_clusters(name, toy_interactions):
    """Members of cluster c only watch titles of cluster c: top picks must come from it."""
    model = make_model(name, **FAST[name]).fit(toy_interactions)
    members = [f"m{i}" for i in range(60)]
    recs = model.recommend(members, k=3)
    cluster_of_title = np.array([int(t[1:]) >= 20 for t in recs.title_ids.ravel()]).reshape(
        60, 3)
    cluster_of_member = (np.arange(60) % 2 == 1)[:, None]
    assert (cluster_of_title == cluster_of_member).mean() >= 0.9


def test_popular_ranks_by_count_and_window():
    df = pd.DataFrame({"member_id": ["a", "b", "c", "a", "d"],
                       "title_id": ["old", "old", "old", "new", "new"],
                       "timestamp": [0, 0, 0, 86400 * 100, 86400 * 100]})
    assert make_model("popular").fit(df).recommend(["b"], k=1).title_ids[0, 0] == "new"
    recent = make_model("popular", window_days=10).fit(df)
    assert recent.score(["b"])[0].argmax() == recent.title_vocab_.index(["new"])[0]
    allt = make_model("popular").fit(df)
    assert allt.score(["b"])[0].argmax() == allt.title_vocab_.index(["old"])[0]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("als", {"factors": 0}, "ALSConfig.factors: must be >= 1"),
    ("als", {"alpha": -1.0}, "ALSConfig.alpha: must be > 0"),
    ("bpr", {"learning_rate": 0.0}, "BPRConfig.learning_rate"),
    ("itemknn", {"similarity": "euclid"}, "must be one of"),
    ("popular", {"window_days": -3.0}, "window_days"),
])
def test_invalid_hyperparameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        make_model(name, **params)


def test_unknown_model_and_hyperparameter():
    with pytest.raises(ValueError, match="unknown model 'svd'"):
        make_model("svd")
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        make_model("als", factor=3)


def test_load_rejects_non_model_file(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.arange(3))
    with pytest.raises(ValueError, match="not a reelpick model file"):
        load_model(p)
