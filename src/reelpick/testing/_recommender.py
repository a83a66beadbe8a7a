"""The recommender contract suite (:func:`check_recommender`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from reelpick.errors import NotFittedError
from reelpick.models.base import Recommendations, Recommender, UnknownMemberError, load_model


def _fail(who: str, message: str) -> AssertionError:
    return AssertionError(f"{who}: {message}")


def _raises_not_fitted(who: str, call: Callable[[], object], what: str) -> None:
    try:
        call()
    except NotFittedError:
        return
    except Exception as exc:
        raise _fail(who, f"{what} before fit raised {type(exc).__name__} ({exc}), expected "
                         "reelpick.errors.NotFittedError") from exc
    raise _fail(who, f"{what} before fit did not raise NotFittedError")


def check_recommender(model_factory: Callable[[], Recommender], interactions: pd.DataFrame, *,
                      k: int = 5, n_members: int = 8) -> None:
    """Run the :class:`~reelpick.models.Recommender` contract on a fresh model from
    ``model_factory`` fitted on ``interactions`` (schema ``INTERACTIONS``; keep it tiny).

    Checks, each failing with an :class:`AssertionError` that names the model and the rule:

    * before ``fit``: ``score``, ``recommend`` and ``save`` raise
      :class:`~reelpick.errors.NotFittedError` and ``is_fitted`` is false;
    * ``fit`` returns the model itself and learns every member and title of ``interactions``;
    * ``score(members)`` is ``(n_members, n_titles)`` float32, the same when asked twice,
      never NaN; an unseen member raises :class:`~reelpick.models.UnknownMemberError`;
    * ``recommend(members, k)``: ``(n_members, k)`` results in request order, best first,
      ``title_ids`` = the title vocabulary at ``title_idx``, scores equal to :meth:`score` at
      those titles and equal to the ``k`` best scores among the titles the member has not seen
      (no seen title is recommended); with ``exclude_seen=False`` the ``k`` best of all titles;
      an ``exclude`` table removes its titles;
    * ``save`` / :func:`~reelpick.models.load_model` give a model of the same class and
      hyperparameters with the same scores and recommendations.

    >>> from reelpick.models import MostPopular
    >>> df = pd.DataFrame({"member_id": ["a", "a", "b", "c"], "title_id": ["x", "y", "x", "z"],
    ...                    "timestamp": [1, 2, 3, 4]})
    >>> check_recommender(MostPopular, df, k=2)
    """
    model = model_factory()
    who = type(model).__name__
    if getattr(model, "is_fitted", False):
        raise _fail(who, "model_factory() returned a fitted model; it must build a fresh one")
    ids = np.asarray(interactions["member_id"].unique(), dtype=object)
    members = ids[:n_members]
    _raises_not_fitted(who, lambda: model.score(members), "score()")
    _raises_not_fitted(who, lambda: model.recommend(members, k=k), "recommend()")
    with tempfile.TemporaryDirectory() as tmp:
        _raises_not_fitted(who, lambda: model.save(Path(tmp) / "model.npz"), "save()")

    if model.fit(interactions) is not model:
        raise _fail(who, "fit() must return self")
    if not model.is_fitted:
        raise _fail(who, "is_fitted is false after fit()")
    n_titles = len(model.title_vocab_)
    if len(model.member_vocab_) != len(ids):
        raise _fail(who, f"member_vocab_ has {len(model.member_vocab_)} members, interactions "
                         f"{len(ids)}")
    if n_titles != interactions["title_id"].nunique():
        raise _fail(who, f"title_vocab_ has {n_titles} titles, interactions "
                         f"{interactions['title_id'].nunique()}")

    scores = model.score(members)
    if scores.shape != (len(members), n_titles) or scores.dtype != np.float32:
        raise _fail(who, f"score() gave {scores.dtype} {scores.shape}, expected float32 "
                         f"{(len(members), n_titles)}")
    if np.isnan(scores).any():
        raise _fail(who, "score() gave NaN")
    if not np.array_equal(scores, model.score(members)):
        raise _fail(who, "score() differs between two calls on the same members")
    try:
        model.score(np.array(["\x00never-seen-member"], dtype=object))
    except UnknownMemberError:
        pass
    else:
        raise _fail(who, "score() of an unseen member did not raise UnknownMemberError")

    seen = model.user_items_[model.member_index(members)].toarray() > 0
    _check_recommendations(who, model, members, scores, seen, k)

    first = model.recommend(members[:1], k=1).title_ids[0, 0]
    if first is not None:
        ex = pd.DataFrame({"member_id": [members[0]], "title_id": [first]})
        if first in model.recommend(members[:1], k=k, exclude=ex).title_ids[0]:
            raise _fail(who, f"recommend(exclude=...) still recommends the excluded {first!r}")

    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model.npz")
        loaded = load_model(path)
        if type(loaded) is not type(model) or loaded.get_params() != model.get_params():
            raise _fail(who, f"load_model gave {type(loaded).__name__} with "
                             f"{loaded.get_params()}, saved {model.get_params()}")
        again = loaded.score(members)
        if again.shape != scores.shape or not np.allclose(again, scores, rtol=1e-5, atol=1e-6,
                                                          equal_nan=True):
            raise _fail(who, "the loaded model's scores differ from the saved model's")
        a, b = loaded.recommend(members, k=k), model.recommend(members, k=k)
        if not np.allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6):
            raise _fail(who, "the loaded model recommends differently")


def _check_recommendations(who: str, model: Recommender, members: np.ndarray,
                           scores: np.ndarray, seen: np.ndarray, k: int) -> None:
    for exclude_seen in (True, False):
        recs = model.recommend(members, k=k, exclude_seen=exclude_seen)
        what = f"recommend(k={k}, exclude_seen={exclude_seen})"
        if not isinstance(recs, Recommendations):
            raise _fail(who, f"{what} returned {type(recs).__name__}, not Recommendations")
        if recs.title_idx.shape != (len(members), k) or recs.title_ids.shape != (len(members), k):
            raise _fail(who, f"{what}: shape {recs.title_idx.shape}, expected "
                             f"{(len(members), k)}")
        if list(recs.member_ids) != list(members):
            raise _fail(who, f"{what}: members not in request order")
        for i, m in enumerate(members):
            idx, sc = recs.title_idx[i], recs.scores[i]
            shown = idx >= 0
            if shown.any() and not (shown[: shown.sum()].all()):
                raise _fail(who, f"{what}: empty slots before filled ones for {m!r}")
            ids = list(model.title_vocab_.ids(idx[shown])) if shown.any() else []
            if list(recs.title_ids[i][shown]) != ids:
                raise _fail(who, f"{what}: title_ids do not match title_idx for {m!r}")
            if np.any(np.diff(sc[shown]) > 1e-6):
                raise _fail(who, f"{what}: scores not sorted best first for {m!r}")
            if not np.allclose(sc[shown], scores[i, idx[shown]], rtol=1e-5, atol=1e-6):
                raise _fail(who, f"{what}: scores differ from score() for {m!r}")
            if exclude_seen and seen[i, idx[shown]].any():
                raise _fail(who, f"{what}: recommends a title {m!r} has seen")
            allowed = scores[i][~seen[i]] if exclude_seen else scores[i]
            allowed = allowed[np.isfinite(allowed)]
            best = np.sort(allowed)[::-1][:k]
            if shown.sum() != best.size or not np.allclose(sc[shown], best, rtol=1e-5,
                                                           atol=1e-6):
                raise _fail(who, f"{what}: not the {k} best-scored eligible titles for {m!r}")
