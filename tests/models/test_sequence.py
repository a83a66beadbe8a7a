"""The contextual sequence model ("seq"): shapes, causality, seeds, persistence, context, early
stopping, drift features and invalid configurations. The generic contract lives in
test_contract.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from reelpick.models import SequenceRecommender, load_model
from reelpick.models._seq_net import SeqNet, mask_out
from reelpick.models.sequence import N_DRIFT, _drift_table, _gap_codes

TINY = {"hidden": 16, "n_blocks": 1, "max_len": 16, "max_epochs": 6, "eval_every": 2,
        "dropout": 0.1, "learning_rate": 5e-3, "batch_size": 32}


def device_world(n_members: int = 40, n_titles: int = 20, per_member: int = 30,
                 seed: int = 3) -> pd.DataFrame:
    """Titles 0..9 are played on the tv, 10..19 on mobile; the device of each action is random.
    Only the request's device tells which half comes next."""
    rng = np.random.default_rng(seed)
    half = n_titles // 2
    rows = []
    for m in range(n_members):
        for j in range(per_member):
            device = ["tv", "mobile"][int(rng.integers(2))]
            t = int(rng.integers(half)) + (half if device == "mobile" else 0)
            rows.append((f"m{m}", f"t{t}", 1_600_000_000 + 3600 * j + m, device,
                         int(rng.integers(24)), int(rng.integers(7))))
    return pd.DataFrame(rows, columns=["member_id", "title_id", "timestamp", "device", "hour",
                                       "day_of_week"])


@pytest.fixture(scope="module")
def device_df() -> pd.DataFrame:
    return device_world()


@pytest.fixture(scope="module")
def fitted(device_df) -> SequenceRecommender:
    return SequenceRecommender(**TINY).fit(device_df)


def test_shapes_and_history(fitted, device_df):
    scores = fitted.score(["m0", "m1", "m2"])
    assert scores.shape == (3, 20) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert fitted.history_.shape[1] == 3 and 1 <= fitted.best_epoch_ <= 6
    # ordered sequences kept per member, in time order
    lo, hi = fitted.seq_offsets_[0], fitted.seq_offsets_[1]
    assert hi - lo == 30 and np.all(np.diff(fitted.seq_times_[lo:hi]) > 0)


@pytest.mark.parametrize("encoder", ["transformer", "gru"])
def test_future_items_do_not_change_a_prefix(encoder):
    torch.manual_seed(0)
    net = SeqNet(30, hidden=16, n_blocks=2, n_heads=2, max_len=12, dropout=0.0,
                 feature_sizes=(5, 25), encoder=encoder).eval()
    titles = torch.randint(1, 31, (3, 12))
    feats = torch.randint(0, 5, (3, 12, 2))
    other_titles, other_feats = titles.clone(), feats.clone()
    other_titles[:, 7:] = torch.randint(1, 31, (3, 5))
    other_feats[:, 7:] = torch.randint(0, 5, (3, 5, 2))
    with torch.no_grad():
        a, b = net.encode(titles, feats), net.encode(other_titles, other_feats)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_sequences_are_kept_in_time_order(fitted, device_df):
    model = fitted
    lo, hi = model.seq_offsets_[0], model.seq_offsets_[1]
    order = device_df[device_df["member_id"] == "m0"].sort_values("timestamp")
    assert model.title_vocab_.ids(model.seq_titles_[lo:hi]).tolist() == \
        order["title_id"].tolist()


def test_same_seed_same_model_other_seed_other_model(device_df):
    a = SequenceRecommender(**TINY, random_state=1).fit(device_df).score(["m0", "m5"])
    b = SequenceRecommender(**TINY, random_state=1).fit(device_df).score(["m0", "m5"])
    c = SequenceRecommender(**TINY, random_state=2).fit(device_df).score(["m0", "m5"])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_save_load_equality_with_context(fitted, tmp_path):
    path = fitted.save(tmp_path / "seq.npz")
    loaded = load_model(path)
    ctx = pd.DataFrame({"device": ["tv", "mobile"], "hour": [20, 8],
                        "timestamp": [1_700_000_000, 1_700_000_000]})
    np.testing.assert_allclose(loaded.score(["m0", "m1"], context=ctx),
                               fitted.score(["m0", "m1"], context=ctx), rtol=1e-6)
    np.testing.assert_array_equal(loaded.history_, fitted.history_)
    assert loaded.devices_ == fitted.devices_


def test_context_changes_scores_in_the_right_direction(device_df):
    model = SequenceRecommender(**{**TINY, "max_epochs": 20, "eval_every": 5}).fit(device_df)
    members = [f"m{i}" for i in range(10)]
    tv = model.score(members, context=pd.DataFrame({"device": ["tv"] * 10}))
    mobile = model.score(members, context=pd.DataFrame({"device": ["mobile"] * 10}))
    tv_titles = model.title_vocab_.index([f"t{i}" for i in range(10)])
    mobile_titles = model.title_vocab_.index([f"t{i}" for i in range(10, 20)])
    # the request's device moves probability mass to that device's titles
    assert (tv[:, tv_titles].mean(1) - tv[:, mobile_titles].mean(1) >
            mobile[:, tv_titles].mean(1) - mobile[:, mobile_titles].mean(1)).all()
    assert np.isin(tv.argmax(1), tv_titles).mean() >= 0.9
    assert np.isin(mobile.argmax(1), mobile_titles).mean() >= 0.9


def test_no_context_ablation_ignores_context(device_df):
    model = SequenceRecommender(**TINY, use_context=False).fit(device_df)
    members = ["m0", "m1"]
    np.testing.assert_array_equal(
        model.score(members, context=pd.DataFrame({"device": ["tv", "tv"]})),
        model.score(members, context=pd.DataFrame({"device": ["mobile", "mobile"]})))


def test_missing_or_unknown_context_is_the_unknown_code(fitted):
    members = ["m0", "m1"]
    none = fitted.score(members)
    np.testing.assert_array_equal(
        none, fitted.score(members, context=pd.DataFrame({"colour": ["red", "blue"]})))
    np.testing.assert_array_equal(
        none, fitted.score(members, context=pd.DataFrame({"device": ["fridge", None]})))
    with pytest.raises(ValueError, match="context has 1 rows for 2 members"):
        fitted.score(members, context=pd.DataFrame({"device": ["tv"]}))


def test_early_stopping_stops(device_df):
    model = SequenceRecommender(**{**TINY, "max_epochs": 300, "eval_every": 1, "patience": 2,
                                   "learning_rate": 0.05}).fit(device_df)
    n = len(model.history_)
    assert n < 300
    val = model.history_[:, 2]
    assert model.best_epoch_ == int(model.history_[np.nanargmax(val), 0])
    assert n - model.best_epoch_ == 2  # stopped after `patience` validations without gain


def test_time_budget_stops(device_df):
    model = SequenceRecommender(**{**TINY, "max_epochs": 500, "max_seconds": 1e-9,
                                   "validation": False}).fit(device_df)
    assert len(model.history_) == 1


@pytest.mark.parametrize("params", [
    {"encoder": "gru"},
    {"loss": "sampled", "n_negatives": 8},
    {"use_time": False},
    {"use_time": False, "use_context": False},
    {"precision": "bf16"},
    {"label_smoothing": 0.1, "use_drift": False},
])
def test_variants_train_and_score(device_df, params):
    model = SequenceRecommender(**{**TINY, "max_epochs": 2}, **params).fit(device_df)
    scores = model.score(["m0"], context=pd.DataFrame({"device": ["tv"]}))
    assert scores.shape == (1, 20) and np.isfinite(scores).all()
    assert np.isfinite(model.history_[:, 1]).all()


def test_side_features_change_the_model_and_persist(device_df, tmp_path):
    titles = pd.DataFrame({"title_id": [f"t{i}" for i in range(20)],
                           "genres": ["Drama|Comedy" if i < 10 else "Action" for i in range(20)],
                           "year": [1990 + i for i in range(20)],
                           "duration_seconds": [3600.0] * 20})
    members = pd.DataFrame({"member_id": [f"m{i}" for i in range(40)],
                            "age_band": ["18-24" if i % 2 else "50+" for i in range(40)]})
    df = device_df.assign(watch_seconds=1800.0)
    model = SequenceRecommender(**TINY).fit(df, title_features=titles, member_features=members)
    assert model.side_.shape == (21, 5)  # 3 genres + year + year missing
    assert model.member_attrs_.shape == (40, 1) and (model.seq_feats_[:, 5] == 6).all()
    loaded = load_model(model.save(tmp_path / "side.npz"))
    np.testing.assert_allclose(loaded.score(["m3"]), model.score(["m3"]), rtol=1e-6)
    plain = SequenceRecommender(**TINY).fit(df)
    assert not np.allclose(plain.score(["m3"]), model.score(["m3"]))


def test_refit_learns_the_validation_actions(device_df, tmp_path):
    # "fresh" is every member's last action only: without the refit it is never a target
    last = device_df.groupby("member_id")["timestamp"].transform("max") == device_df["timestamp"]
    df = device_df.assign(title_id=device_df["title_id"].where(~last, "fresh"))
    params = {**TINY, "max_epochs": 4, "eval_every": 1, "patience": 4}
    plain = SequenceRecommender(**params).fit(df)
    refit = SequenceRecommender(**params, refit=True).fit(df)
    assert refit.refit_epochs_ == refit.best_epoch_ >= 1 and plain.refit_epochs_ == 0
    np.testing.assert_array_equal(refit.history_, plain.history_)  # same validation phase
    members = [f"m{i}" for i in range(10)]
    fresh = plain.title_vocab_.index(["fresh"])[0]

    def rank(model):
        s = model.score(members)
        return (s > s[:, [fresh]]).sum(1).mean()

    assert rank(refit) < rank(plain) - 3
    assert load_model(refit.save(tmp_path / "refit.npz")).refit_epochs_ == refit.refit_epochs_


def test_request_time_sets_the_drift_bucket(device_df):
    # "late" is played by other members only after day 30; m0's actions are all before it
    late = device_df.assign(timestamp=device_df["timestamp"] + 40 * 86_400,
                            title_id="late", member_id=device_df["member_id"] + "x")
    df = pd.concat([device_df, late.iloc[::20]], ignore_index=True)
    a = SequenceRecommender(**TINY).fit(df)
    b = SequenceRecommender(**TINY, request_time="end").fit(df)  # same seed, same weights
    now = pd.DataFrame({"timestamp": [df["timestamp"].max() + 1]})
    np.testing.assert_array_equal(a.score(["m0"], context=now), b.score(["m0"], context=now))
    j = a.title_vocab_.index(["late"])[0]
    d = (b.score(["m0"]) - a.score(["m0"]))[0]  # end of data vs m0's last action
    others = np.delete(d, j)  # their recency and age moved a little, "late" went from unseen
    assert abs(d[j] - np.median(others)) > 5 * (others.max() - others.min())
    off = SequenceRecommender(**TINY, use_drift=False, request_time="end").fit(df)
    assert off.net_.drift is None
    np.testing.assert_array_equal(
        off.score(["m0"]), SequenceRecommender(**TINY, use_drift=False).fit(df).score(["m0"]))


def test_drift_table_uses_only_earlier_buckets():
    # title 0 played in buckets 0 and 1, title 1 first in bucket 3
    table = _drift_table(np.array([0, 1, 3]), np.array([0, 0, 1]), 4, 2, decay=0.5)
    assert table.shape == (5, 2, N_DRIFT)
    never = table[:, 1, 5]
    assert (never[:4] == never[0]).all() and never[4] < never[0]  # unseen until after bucket 3
    cum = table[:, 0, 2]
    assert cum[0] < cum[1] < cum[2] == cum[3] == cum[4]  # bucket b counts plays before b


def test_gap_codes():
    codes = _gap_codes(np.array([np.nan, 0.0, 1.0, 3.0, 1e12, -5.0]), 8)
    assert codes.tolist() == [0, 1, 2, 3, 7, 0]


@pytest.mark.parametrize(("params", "message"), [
    ({"encoder": "lstm"}, "SequenceConfig.encoder: must be one of"),
    ({"hidden": 0}, "SequenceConfig.hidden: must be >= 1"),
    ({"hidden": 10, "n_heads": 3}, "SequenceConfig.n_heads: must be >= 1 and divide hidden"),
    ({"dropout": 1.0}, r"SequenceConfig.dropout: must be in \[0, 1\)"),
    ({"learning_rate": 0.0}, "SequenceConfig.learning_rate: must be > 0"),
    ({"max_len": 0}, "SequenceConfig.max_len"),
    ({"loss": "bce"}, "SequenceConfig.loss: must be one of 'full', 'sampled'"),
    ({"n_negatives": 0}, "SequenceConfig.n_negatives"),
    ({"patience": 0}, "SequenceConfig.patience"),
    ({"gap_buckets": 1}, "SequenceConfig.gap_buckets"),
    ({"drift_half_life_days": 0.0}, "SequenceConfig.drift_half_life_days"),
    ({"context_dropout": -0.1}, "SequenceConfig.context_dropout"),
    ({"precision": "fp16"}, "SequenceConfig.precision"),
    ({"max_seconds": 0.0}, "SequenceConfig.max_seconds"),
    ({"num_threads": 0}, "SequenceConfig.num_threads"),
    ({"request_time": "now"}, "SequenceConfig.request_time: must be one of 'last', 'end'"),
    ({"label_smoothing": 1.0}, "SequenceConfig.label_smoothing"),
])
def test_invalid_config(params, message):
    with pytest.raises(ValueError, match=message):
        SequenceRecommender(**params)


def no_repeat_world(n_members: int = 30, n_titles: int = 40, per_member: int = 12,
                    seed: int = 5) -> pd.DataFrame:
    """Every member plays distinct titles (as in MovieLens, where nobody rates a title twice)."""
    rng = np.random.default_rng(seed)
    rows = [(f"m{m}", f"t{t}", 1_600_000_000 + 3600 * j + m)
            for m in range(n_members)
            for j, t in enumerate(rng.permutation(n_titles)[:per_member])]
    return pd.DataFrame(rows, columns=["member_id", "title_id", "timestamp"])


def test_exclude_seen_is_automatic_and_persists(device_df, tmp_path):
    df = no_repeat_world()
    params = {**TINY, "max_epochs": 1}
    assert SequenceRecommender(**params).fit(df).exclude_seen_  # no repeats: on
    assert not SequenceRecommender(**params).fit(device_df).exclude_seen_  # repeats: off
    assert not SequenceRecommender(**params, exclude_seen=False).fit(df).exclude_seen_
    forced = SequenceRecommender(**params, exclude_seen=True).fit(device_df)
    assert forced.exclude_seen_
    assert load_model(forced.save(tmp_path / "seen.npz")).exclude_seen_


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_exclude_seen_loss_is_the_softmax_over_unplayed_titles(smoothing):
    # windows of 5 over 12 actions: the first windows start mid-sequence, so titles played
    # before the window must be left out as well
    df = no_repeat_world()
    model = SequenceRecommender(**{**TINY, "max_len": 5, "max_epochs": 1, "dropout": 0.0,
                                   "context_dropout": 0.0, "label_smoothing": smoothing}
                                ).fit(df)
    windows = model._windows(holdout=False)[:7]
    assert any(s > model.seq_offsets_[np.searchsorted(model.seq_offsets_, s, "right") - 1]
               for s, _ in windows)
    batch = model._batch(windows, with_targets=True)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        got = float(model._loss(batch, None, gen))
        net = model.net_
        h = net.encode(batch["titles"], batch["feats"])
        expected = []
        for r, (s, e) in enumerate(windows):
            lo = model.seq_offsets_[np.searchsorted(model.seq_offsets_, s, "right") - 1]
            for i in range(e - s):
                target = int(model.seq_titles_[s + i + 1])
                q = net.query(h[r, i][None], batch["ctx"][r, i][None])
                logits = net.logits(q, batch["bucket"][r, i][None])[0].double()
                played = np.unique(model.seq_titles_[lo:s + i + 1])
                assert target not in played
                keep = np.setdiff1d(np.arange(len(logits)), played)
                logp = logits[keep] - torch.logsumexp(logits[keep], 0)
                nll = -float(logp[np.searchsorted(keep, target)])
                expected.append((1 - smoothing) * nll - smoothing * float(logp.mean()))
    assert got == pytest.approx(np.mean(expected), rel=1e-5)
    # and it is not the loss over every title
    model.exclude_seen_ = False
    with torch.no_grad():
        full = float(model._loss(model._batch(windows, True), None, gen))
    assert full > got + 0.05


def test_exclude_seen_sampled_loss_drops_played_negatives():
    df = no_repeat_world()
    model = SequenceRecommender(**{**TINY, "max_len": 5, "max_epochs": 1, "dropout": 0.0,
                                   "context_dropout": 0.0, "loss": "sampled",
                                   "n_negatives": 30}).fit(df)
    windows = model._windows(holdout=False)[:7]
    batch = model._batch(windows, with_targets=True)
    log_q = torch.log(torch.full((len(model.title_vocab_),), 1 / len(model.title_vocab_)))
    with torch.no_grad():
        got = float(model._loss(batch, log_q, torch.Generator().manual_seed(0)))
        neg = torch.multinomial(log_q.exp(), 30, replacement=True,
                                generator=torch.Generator().manual_seed(0)).numpy()
        h = model.net_.encode(batch["titles"], batch["feats"])
        expected, dropped = [], 0
        for r, (s, e) in enumerate(windows):
            lo = model.seq_offsets_[np.searchsorted(model.seq_offsets_, s, "right") - 1]
            for i in range(e - s):
                target = int(model.seq_titles_[s + i + 1])
                q = model.net_.query(h[r, i][None], batch["ctx"][r, i][None])
                logits = model.net_.logits(q, batch["bucket"][r, i][None])[0].double()
                out = np.isin(neg, model.seq_titles_[lo:s + i + 1]) | (neg == target)
                dropped += int(np.isin(neg, model.seq_titles_[lo:s + i + 1]).sum())
                negs = logits[neg[~out]] - float(np.log(30) + log_q[0])
                both = torch.cat([logits[target][None], negs])
                expected.append(-float(both[0] - torch.logsumexp(both, 0)))
    assert dropped > 0
    assert got == pytest.approx(np.mean(expected), rel=1e-5)


def test_exclude_seen_never_drops_the_target_of_a_repeat(device_df):
    # forced on data with repeats: a target the member has played before stays in the softmax
    model = SequenceRecommender(**{**TINY, "max_epochs": 1}, exclude_seen=True).fit(device_df)
    batch = model._batch(model._windows(holdout=False)[:4], with_targets=True)
    loss = model._loss(batch, None, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    sampled = SequenceRecommender(**{**TINY, "max_epochs": 1}, exclude_seen=True,
                                  loss="sampled", n_negatives=8).fit(device_df)
    assert np.isfinite(sampled.history_[:, 1]).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_mask_out_gives_the_gradients_of_masked_fill(smoothing):
    # the in-place mask with a pass-through backward (the training loss's fast path) must give
    # the same loss and gradients as the plain out-of-place masked_fill
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, generator=g, dtype=torch.float64)
    mask = torch.rand(64, 40, generator=g) < 0.4
    target = torch.randint(0, 40, (64,), generator=g)
    mask[torch.arange(64), target] = False
    grads, losses = [], []
    for fast in (True, False):
        leaf = x.clone().requires_grad_(True)
        y = leaf * 1.0
        y = mask_out(y, mask) if fast else y.masked_fill(mask, float("-inf"))
        logp = torch.nn.functional.log_softmax(y, dim=-1)
        nll = -logp[torch.arange(64), target]
        smooth = -logp.masked_fill(mask, 0.0).sum(-1) / (~mask).sum(-1)
        loss = ((1 - smoothing) * nll + smoothing * smooth).mean()
        loss.backward()
        grads.append(leaf.grad)
        losses.append(float(loss))
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)
    assert (grads[0][mask] == 0).all() and grads[0].abs().sum() > 0


def test_logits_equal_the_product_plus_bias_plus_drift(fitted):
    net = fitted.net_
    g = torch.Generator().manual_seed(1)
    q = torch.randn(9, net.title_emb.weight.shape[1], generator=g)
    bucket = torch.tensor([0, 2, 2, 1, 0, 2, 2, 2, 1]) % net.drift_table.shape[0]
    with torch.no_grad():
        w = net.title_vectors()[1:]
        plain = q @ w.T + net.title_bias
        torch.testing.assert_close(net.logits(q), plain)
        drift = net.drift_bias(bucket)
        assert drift is not None and drift.abs().sum() > 0
        torch.testing.assert_close(net.logits(q, bucket), plain + drift)
        sub = torch.tensor([4, 0, 7])
        torch.testing.assert_close(net.logits(q, bucket, sub), (plain + drift)[:, sub])
