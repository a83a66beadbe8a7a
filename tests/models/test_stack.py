"""StackRanker: LambdaRank over ALS and trending candidates, trained on label windows inside
the training data. Checked on a drifting world whose future it must predict better than
recency-popularity, by its fallback with too little data, and by its configuration errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data.splits import time_cutoff
from reelpick.evaluation import score_model
from reelpick.models import StackRanker, load_model, make_model

DAY = 86400
SMALL = {"als_params": {"factors": 8, "iterations": 8, "regularization": 0.1}}


def drifting_log(seed: int = 0, n_members: int = 400, n_titles: int = 150, days: int = 150,
                 ) -> pd.DataFrame:
    """Two taste clusters and a catalogue released over time: a member plays, at each of a few
    sessions, unseen released titles drawn with weight ``(1 + 4 [same cluster]) *
    2^(-age / 20 days)``, so what is played next depends on the member's taste *and* on what is
    new."""
    rng = np.random.default_rng(seed)
    release = np.sort(rng.uniform(-30, days, n_titles)) * DAY
    genre = rng.integers(0, 2, n_titles)
    rows = []
    for m in range(n_members):
        cluster = m % 2
        seen: set[int] = set()
        for t in np.sort(rng.uniform(0, days, rng.integers(2, 8))) * DAY:
            ok = np.flatnonzero(release <= t)
            ok = ok[~np.isin(ok, list(seen))]
            if ok.size == 0:
                continue
            w = (1.0 + 4.0 * (genre[ok] == cluster)) * np.exp2(-(t - release[ok]) / (20 * DAY))
            for k in rng.choice(ok, size=min(3, ok.size), replace=False, p=w / w.sum()):
                seen.add(int(k))
                rows.append((f"m{m}", f"t{k}", int(t + rng.integers(0, 3600))))
    return pd.DataFrame(rows, columns=["member_id", "title_id", "timestamp"])


def test_predicts_a_drifting_future_better_than_recent_popularity():
    df = drifting_log()
    split = time_cutoff(df, quantile=0.8)
    titles = sorted(df["title_id"].unique())
    stack = StackRanker(**SMALL, min_child_samples=100).fit(split.train, titles=titles)
    pop = make_model("popular", window_days=30).fit(split.train, titles=titles)
    s = score_model(stack, split, ks=(10,)).per_member["NDCG@10"]
    p = score_model(pop, split, ks=(10,)).per_member["NDCG@10"]
    assert stack.booster_ is not None
    assert s.mean() > p.mean() + 0.02, (s.mean(), p.mean())
    stack.booster_ = None                          # its fallback: the trending order alone
    f = score_model(stack, split, ks=(10,)).per_member["NDCG@10"]
    assert s.mean() > f.mean() + 0.02, (s.mean(), f.mean())


@pytest.mark.parametrize("objective", ["binary", "auto"])
def test_other_objectives_also_learn_and_auto_saves_its_choice(objective, tmp_path):
    df = drifting_log()
    split = time_cutoff(df, quantile=0.8)
    titles = sorted(df["title_id"].unique())
    m = StackRanker(**SMALL, objective=objective, min_child_samples=100).fit(split.train,
                                                                             titles=titles)
    assert m.objective_ in ("lambdarank", "binary")
    assert objective == "auto" or m.objective_ == objective
    pop = make_model("popular", window_days=30).fit(split.train, titles=titles)
    s = score_model(m, split, ks=(10,)).per_member["NDCG@10"].mean()
    p = score_model(pop, split, ks=(10,)).per_member["NDCG@10"].mean()
    assert s > p + 0.02, (s, p)
    back = load_model(m.save(tmp_path / "stack.npz"))
    assert back.objective_ == m.objective_                     # type: ignore[attr-defined]
    np.testing.assert_array_equal(back.score(["m1", "m2"]), m.score(["m1", "m2"]))


def test_too_little_history_ranks_by_trending_counts():
    df = pd.DataFrame({"member_id": ["a", "b", "c", "a"], "title_id": ["x", "y", "y", "z"],
                       "timestamp": [0, DAY, 2 * DAY, 3 * DAY]})
    m = StackRanker(**SMALL).fit(df)
    assert m.booster_ is None                      # no window has 10 rows of history
    # b has seen y: z (played on day 3) is more trending than x (day 0)
    assert m.recommend(["b"], k=2).title_ids.tolist() == [["z", "x"]]


@pytest.mark.parametrize("params, field", [({"holdout_fraction": 0.6}, "holdout_fraction"),
                                           ({"n_windows": 20}, "n_windows"),
                                           ({"num_leaves": 0}, "num_leaves"),
                                           ({"objective": "xentropy"}, "objective"),
                                           ({"als_params": {"factors": 0}}, "factors")])
def test_bad_configuration_names_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        StackRanker(**params)


def test_a_member_who_has_seen_every_title_still_gets_scores():
    df = drifting_log(n_members=120, n_titles=30)
    titles = sorted(df["title_id"].unique())
    everything = pd.DataFrame({"member_id": "fan", "title_id": titles,
                               "timestamp": df["timestamp"].max() - np.arange(len(titles))})
    m = StackRanker(**SMALL, min_child_samples=20).fit(pd.concat([df, everything]),
                                                       titles=titles)
    assert np.isfinite(m.score(["fan", "m1"])).all()


def test_ndcg_of_the_objective_choice_closed_form():
    from reelpick.models.stack import _ndcg10

    pred = np.array([0.9, 0.1, 0.5, 0.3, 0.2])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0])
    # group 1 ranks its two labels second and third: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    g1 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    g2 = 0.0                                       # group 2 has no label
    assert _ndcg10(pred, y, np.array([3, 2])) == pytest.approx((g1 + g2) / 2)
