r"""Next-play model over contextual action sequences ("seq"): what will this member play now?

Given a member's ordered past actions and the current context, the model scores every title of the
catalogue with a softmax:

.. math::

    p(t_{n+1} = j \mid x_{\le n}, c_{n+1}) = \frac{\exp s_{n,j}}{\sum_{j'} \exp s_{n,j'}}, \qquad
    s_{n,j} = (h_n + W_c\,\mathrm{emb}(c_{n+1}))^\top E_j + b_j + g(\phi_j(\tau_n)),

with :math:`h_n` a causal encoding of the action tokens :math:`x_{\le n}`
(:class:`reelpick.models._seq_net.SeqNet`; a GRU as in GRU4Rec, Hidasi et al., ICLR 2016, by
default, measured better than the option of SASRec transformer blocks, Kang & McAuley,
"Self-Attentive Sequential Recommendation", ICDM 2018). Each action token carries the title, the
log-bucketed time since the member's previous action, hour, weekday, device, country and the
watch fraction (or watch time when durations are unknown). The request context :math:`c_{n+1}` is
the device, hour, weekday and country of the request and the time since the last action (its
``timestamp``); a missing column is a learned "unknown" code. Explicit drift:
:math:`\phi_j(\tau)` are features of title :math:`j` from interactions strictly before the time
bucket of :math:`\tau` (the time of the member's last action): exponentially decayed play count
and its share, all-time count, days since its last and first play (recency and age at action
time), never-played flag; :math:`g` is a small MLP.

Training uses only the interactions given to :meth:`fit` (time-respecting splits are the caller's
job, e.g. :mod:`reelpick.evaluation`), with each member's last interaction held out for early
stopping (validation NDCG@10, full ranking, the member's other titles excluded), the full softmax
cross-entropy at every position (over the titles the member has not played yet when nobody
plays a title twice, as ranking excludes them; or a sampled softmax with logQ correction for big
catalogues), Adam, explicit seeds and an explicit torch thread count. Weights are saved as
numpy arrays in the model's ``.npz`` (no pickle).

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"member_id": list("aaabbb"), "title_id": list("xyzxyw"),
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> model = SequenceRecommender(hidden=8, n_blocks=1, max_len=4, max_epochs=2).fit(df)
>>> ctx = pd.DataFrame({"device": ["tv"], "hour": [20]})
>>> model.score(["a"], context=ctx).shape
(1, 4)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from reelpick.models._seq_net import SeqNet, mask_out
from reelpick.models.base import ModelConfig, Recommender

_log = logging.getLogger(__name__)

#: Per-action feature columns, in storage order (code 0 = unknown everywhere).
FEATURES = ("gap", "hour", "day", "device", "country", "watch")
_TIME_FEATURES = ("gap",)
_CONTEXT_FEATURES = ("hour", "day", "device", "country")
_WATCH_CODES = 16
N_DRIFT = 6
DAY = 86_400


@dataclass(frozen=True)
class SequenceConfig(ModelConfig):
    """Hyperparameters of :class:`SequenceRecommender`.

    The defaults are the setting measured best on MovieLens-100K leave-last-out (see
    ``docs/sequence.md``): a 2-layer GRU, windows of 50 actions, batches of 128 windows,
    dropout 0.5, early stopping on validation NDCG@10. ``benchmarks/bench_sequence.py`` runs
    ``hidden=96`` (chosen there on validation NDCG@10; about 1.15x the CPU per epoch of the
    default 64, which the serving paths keep). ``encoder="transformer"`` (with ``n_heads``)
    swaps in SASRec blocks.
    ``use_context`` / ``use_time`` are the ablation switches (context features of actions and
    request; gap features and the drift term). ``loss`` is ``"full"`` (softmax over the whole
    catalogue) or ``"sampled"`` (``n_negatives`` popularity-sampled titles shared by a batch,
    logQ-corrected). ``patience`` counts validations (every ``eval_every`` epochs) without
    improvement; ``validation=False`` trains ``max_epochs`` on everything. ``max_seconds`` caps
    the training time (``None``: no cap). ``use_drift=False`` drops the drift term only (gap
    features kept). ``refit`` retrains a fresh network for the best epoch count on every action,
    validation ones included. ``request_time`` picks the drift features' time when a request
    has no ``timestamp``: the member's last action (``"last"``) or the end of the training data
    (``"end"``, for requests after the training period). ``label_smoothing`` goes to the
    cross-entropy. ``exclude_seen`` drops the titles a member has already played from the
    softmax of each training position, as ranking excludes them at evaluation (``None``: only
    when no member plays a title twice in the training data; the target itself is never
    dropped).
    """

    encoder: str = "gru"
    hidden: int = 64
    n_blocks: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.5
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 80
    eval_every: int = 2
    patience: int = 4
    validation: bool = True
    loss: str = "full"
    n_negatives: int = 1024
    use_context: bool = True
    use_time: bool = True
    use_side: bool = True
    use_drift: bool = True
    refit: bool = False
    request_time: str = "last"
    label_smoothing: float = 0.0
    exclude_seen: bool | None = None
    gap_buckets: int = 24
    drift_bucket_days: float = 1.0
    drift_half_life_days: float = 14.0
    context_dropout: float = 0.1
    precision: str = "fp32"
    max_seconds: float | None = None
    random_state: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        self.check(self.encoder in ("transformer", "gru"), "encoder",
                   "must be one of 'transformer', 'gru'")
        self.check(self.hidden >= 1, "hidden", "must be >= 1")
        self.check(self.n_blocks >= 1, "n_blocks", "must be >= 1")
        self.check(self.n_heads >= 1 and self.hidden % self.n_heads == 0, "n_heads",
                   "must be >= 1 and divide hidden")
        self.check(self.max_len >= 1, "max_len", "must be >= 1")
        self.check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self.check(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.check(self.max_epochs >= 1, "max_epochs", "must be >= 1")
        self.check(self.eval_every >= 1, "eval_every", "must be >= 1")
        self.check(self.patience >= 1, "patience", "must be >= 1")
        self.check(self.precision in ("fp32", "bf16"), "precision",
                   "must be one of 'fp32', 'bf16'")
        self.check(self.loss in ("full", "sampled"), "loss", "must be one of 'full', 'sampled'")
        self.check(self.n_negatives >= 1, "n_negatives", "must be >= 1")
        self.check(self.request_time in ("last", "end"), "request_time",
                   "must be one of 'last', 'end'")
        self.check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        self.check(self.gap_buckets >= 2, "gap_buckets", "must be >= 2")
        self.check(self.drift_bucket_days > 0, "drift_bucket_days", "must be > 0")
        self.check(self.drift_half_life_days > 0, "drift_half_life_days", "must be > 0")
        self.check(0.0 <= self.context_dropout < 1.0, "context_dropout", "must be in [0, 1)")
        self.check(self.max_seconds is None or self.max_seconds > 0, "max_seconds",
                   "must be > 0 or None")
        self.check(self.num_threads >= 1, "num_threads", "must be >= 1")

    @property
    def token_features(self) -> list[int]:
        """Indices into :data:`FEATURES` of the per-action features the network sees."""
        return [i for i, f in enumerate(FEATURES) if self._active(f)]

    @property
    def context_features(self) -> list[int]:
        """Indices into :data:`FEATURES` of the request-context columns."""
        return [i for i, f in enumerate(FEATURES) if f != "watch" and self._active(f)]

    def _active(self, feature: str) -> bool:
        if feature in _TIME_FEATURES:
            return self.use_time
        if feature in _CONTEXT_FEATURES:
            return self.use_context
        return True


class Communicator(Protocol):
    """What data-parallel training needs from its process group (one process per replica):
    this replica's ``rank``, the ``world_size`` and an in-place sum over replicas
    (``torch.distributed.all_reduce``). :mod:`reelpick.distributed.train` provides one over the
    process group that Ray Train sets up."""

    rank: int
    world_size: int

    def all_reduce(self, tensor: torch.Tensor) -> None: ...


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _gap_codes(gap_seconds: np.ndarray, n_buckets: int) -> np.ndarray:
    """1 + floor(log2(1 + gap)) clipped to ``1..n_buckets - 1``; NaN / negative -> 0."""
    g = np.asarray(gap_seconds, dtype=np.float64)
    ok = np.isfinite(g) & (g >= 0)
    codes = np.zeros(g.shape, dtype=np.int64)
    codes[ok] = 1 + np.minimum(np.floor(np.log2(1.0 + g[ok])), n_buckets - 2).astype(np.int64)
    return codes


def _category_codes(values: pd.Series | None, vocab: list[str], n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=np.int64)
    lookup = {v: i + 1 for i, v in enumerate(vocab)}
    return np.array([lookup.get(v, 0) if isinstance(v, str) else 0 for v in values],
                    dtype=np.int64)


def _int_codes(values: pd.Series | None, n: int, high: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=np.int64)
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64,
                                                                      na_value=np.nan)
    ok = np.isfinite(arr) & (arr >= 0) & (arr < high)
    codes = np.zeros(n, dtype=np.int64)
    codes[ok] = arr[ok].astype(np.int64) + 1
    return codes


def _drift_table(buckets: np.ndarray, titles: np.ndarray, n_buckets: int, n_titles: int,
                 decay: float) -> np.ndarray:
    r"""``(n_buckets + 1, n_titles, N_DRIFT)`` standardised drift features; row ``b`` uses only
    interactions in buckets ``< b`` (row ``n_buckets`` uses all of them)."""
    counts = np.zeros((n_buckets, n_titles), dtype=np.float64)
    np.add.at(counts, (buckets, titles), 1.0)
    out = np.zeros((n_buckets + 1, n_titles, N_DRIFT), dtype=np.float64)
    dec = np.zeros(n_titles)
    cum = np.zeros(n_titles)
    last = np.full(n_titles, np.nan)
    first = np.full(n_titles, np.nan)
    for b in range(n_buckets + 1):
        never = np.isnan(first)
        recency = np.where(never, n_buckets + 1.0, b - last)
        age = np.where(never, 0.0, b - first)
        out[b, :, 0] = np.log1p(dec)
        out[b, :, 1] = np.log((dec + 0.1) / (dec.sum() + 0.1 * n_titles))
        out[b, :, 2] = np.log1p(cum)
        out[b, :, 3] = np.log1p(recency)
        out[b, :, 4] = np.log1p(age)
        out[b, :, 5] = never
        if b < n_buckets:
            c = counts[b]
            dec = dec * decay + c
            cum = cum + c
            played = c > 0
            last[played] = b
            first[played & never] = b
    flat = out.reshape(-1, N_DRIFT)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return ((out - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


class SequenceRecommender(Recommender):
    """Contextual next-play model (see the module docstring for the formula and the papers).

    ``fit(interactions, titles=None, title_features=None, member_features=None)``: the optional
    ``title_features`` frame (``title_id`` plus ``genres`` ``|``-separated, ``year``,
    ``duration_seconds``) adds dense side features to the title embeddings and turns watch time
    into a watch fraction; ``member_features`` (``member_id`` plus categorical attribute columns)
    adds one embedding per attribute to the query. ``score(members, context=frame)`` takes one row
    per member with any of ``device``, ``country``, ``hour``, ``day_of_week``, ``timestamp``.

    Learned state: ``net_`` (the :class:`SeqNet`), the members' ordered training sequences
    (``seq_titles_``, ``seq_times_``, ``seq_feats_``, ``seq_offsets_``), the drift table and the
    training ``history_`` (epoch, mean loss, validation NDCG@10); ``best_epoch_``;
    ``refit_epochs_`` (epochs of the ``refit`` network, 0 without refit).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aabb"), "title_id": list("xyxz"),
    ...                    "timestamp": [1, 2, 3, 4]})
    >>> SequenceRecommender(hidden=8, n_blocks=1, max_epochs=1).fit(df).recommend(
    ...     ["a"], k=1).title_ids.shape
    (1, 1)
    """

    name = "seq"
    Config = SequenceConfig
    config: SequenceConfig
    history_: np.ndarray
    best_epoch_: int

    # ------------------------------------------------------------------ fit
    def fit(self, interactions: pd.DataFrame, *, titles: Sequence[str] | None = None,
            title_features: pd.DataFrame | None = None,
            member_features: pd.DataFrame | None = None,
            train_fn: Callable[[SequenceRecommender], None] | None = None
            ) -> SequenceRecommender:
        """Learn from ``interactions``; see the class docstring for the optional side tables.

        ``train_fn(model)``, if given, replaces this process's training loop: it receives the
        prepared model (sequences, vocabularies, network built) and must leave the trained
        weights in ``model.net_`` and set ``history_`` and ``best_epoch_`` -- e.g. by running
        :meth:`train_replica` on data-parallel workers
        (:func:`reelpick.distributed.train.fit_sequence` does it with Ray Train)."""
        self._title_features = title_features
        self._member_features = member_features
        self._train_fn = train_fn
        try:
            super().fit(interactions, titles=titles)
        finally:
            del self._title_features, self._member_features, self._train_fn
        return self

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        c = self.config
        train_fn = getattr(self, "_train_fn", None)
        with _torch_threads(c.num_threads):
            torch.manual_seed(c.random_state)
            rng = np.random.default_rng(c.random_state)
            self._prepare(interactions)
            self.net_ = self._build_net()
            if train_fn is None:
                self._train(rng)
                return
        del self._train_fn  # the prepared model travels to the workers without the hook
        try:
            train_fn(self)
        finally:
            self._train_fn = None
        self.net_.eval()

    def train_replica(self, comm: Communicator | None = None) -> None:
        """Train a prepared model (as :meth:`fit` does once the data are prepared) as replica
        ``comm.rank`` of ``comm.world_size``: same seeds and initial weights everywhere, the
        epoch's batches dealt round-robin (the last ``len % world_size`` dropped), gradients
        averaged over the replicas after every backward pass, validation NDCG summed over the
        replicas' shares of the members. With ``comm = None`` (or one replica) this is exactly
        the training loop of :meth:`fit`: same seed, same weights."""
        c = self.config
        with _torch_threads(c.num_threads):
            torch.manual_seed(c.random_state)
            rng = np.random.default_rng(c.random_state)
            self.net_ = self._build_net()
            self._train(rng, comm)

    def _prepare(self, inter: pd.DataFrame) -> None:
        """Ordered sequences, feature codes, side features and the drift table."""
        c = self.config
        n = len(inter)
        m_idx = self.member_vocab_.index(inter["member_id"])
        t_idx = self.title_vocab_.index(inter["title_id"])
        ts = inter["timestamp"].to_numpy(dtype=np.int64)
        order = np.lexsort((np.arange(n), ts, m_idx))  # member, time, source row
        m_idx, t_idx, ts = m_idx[order], t_idx[order], ts[order]
        inter = inter.iloc[order].reset_index(drop=True)
        n_members, n_titles = len(self.member_vocab_), len(self.title_vocab_)
        offsets = np.zeros(n_members + 1, dtype=np.int64)
        np.add.at(offsets, m_idx + 1, 1)
        offsets = np.cumsum(offsets)

        self.devices_ = sorted(set(inter["device"].dropna().astype(str))) \
            if "device" in inter else []
        self.countries_ = sorted(set(inter["country"].dropna().astype(str))) \
            if "country" in inter else []
        self.side_, durations = self._side_matrix(n_titles)
        self.member_attrs_, self.member_attr_sizes_ = self._member_matrix(n_members)

        first = np.zeros(n, dtype=bool)
        first[offsets[:-1][offsets[:-1] < n]] = True
        gap = np.where(first, np.nan, np.diff(ts, prepend=ts[:1]).astype(np.float64))
        feats = np.zeros((n, len(FEATURES)), dtype=np.int64)
        feats[:, 0] = _gap_codes(gap, c.gap_buckets)
        feats[:, 1] = _int_codes(inter.get("hour"), n, 24)
        feats[:, 2] = _int_codes(inter.get("day_of_week"), n, 7)
        feats[:, 3] = _category_codes(inter.get("device"), self.devices_, n)
        feats[:, 4] = _category_codes(inter.get("country"), self.countries_, n)
        if "watch_seconds" in inter:
            w = inter["watch_seconds"].to_numpy(dtype=np.float64, na_value=np.nan)
            dur = durations[t_idx]
            frac = w / dur
            known = np.isfinite(frac)
            code = np.where(known, 1 + np.minimum(np.floor(np.nan_to_num(frac) * 10), 9),
                            1 + np.minimum(np.floor(np.log2(1 + np.nan_to_num(w) / 60)), 14))
            feats[:, 5] = np.where(np.isfinite(w), code, 0).astype(np.int64)
        self.seq_titles_, self.seq_times_, self.seq_feats_ = t_idx, ts, feats
        self.seq_offsets_ = offsets
        repeats = self.user_items_.nnz < n  # the base class's member x title matrix is 0/1
        self.exclude_seen_ = not repeats if c.exclude_seen is None else bool(c.exclude_seen)

        width = c.drift_bucket_days * DAY
        self.drift_t0_ = int(ts.min())
        buckets = ((ts - self.drift_t0_) // width).astype(np.int64)
        n_buckets = int(buckets.max()) + 1
        self.drift_table_ = (_drift_table(buckets, t_idx, n_buckets, n_titles,
                                          0.5 ** (c.drift_bucket_days / c.drift_half_life_days))
                             if c.use_time else np.zeros((1, n_titles, N_DRIFT), np.float32))

    def _side_matrix(self, n_titles: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense title side features ``(n_titles + 1, n_side)`` (row 0 padding) and durations."""
        frame = getattr(self, "_title_features", None)
        durations = np.full(n_titles, np.nan)
        if frame is None:
            return np.zeros((n_titles + 1, 0), np.float32), durations
        frame = frame.drop_duplicates("title_id")
        idx = self.title_vocab_.index(frame["title_id"].astype(str), missing="negative")
        frame, idx = frame[idx >= 0], idx[idx >= 0]
        if "duration_seconds" in frame:
            durations[idx] = pd.to_numeric(frame["duration_seconds"], errors="coerce")
        if not self.config.use_side:
            return np.zeros((n_titles + 1, 0), np.float32), durations
        cols: list[np.ndarray] = []
        if "genres" in frame:
            genres = frame["genres"].fillna("").astype(str).str.get_dummies(sep="|")
            for g in sorted(genres.columns):
                col = np.zeros(n_titles + 1, np.float32)
                col[idx + 1] = genres[g].to_numpy(dtype=np.float32)
                cols.append(col)
        if "year" in frame:
            year = pd.to_numeric(frame["year"], errors="coerce").to_numpy(dtype=np.float64)
            ok = np.isfinite(year)
            if ok.any():
                z = (year - year[ok].mean()) / max(year[ok].std(), 1.0)
                col, miss = np.zeros(n_titles + 1, np.float32), np.zeros(n_titles + 1, np.float32)
                col[idx + 1] = np.where(ok, z, 0.0)
                miss[idx + 1] = ~ok
                cols += [col, miss]
        side = np.stack(cols, axis=1) if cols else np.zeros((n_titles + 1, 0), np.float32)
        return side.astype(np.float32), durations

    def _member_matrix(self, n_members: int) -> tuple[np.ndarray, np.ndarray]:
        """Categorical member attribute codes ``(n_members, n_attrs)`` (0 = unknown)."""
        frame = getattr(self, "_member_features", None)
        if frame is None or not self.config.use_side:
            return np.zeros((n_members, 0), np.int64), np.zeros(0, np.int64)
        frame = frame.drop_duplicates("member_id")
        idx = self.member_vocab_.index(frame["member_id"].astype(str), missing="negative")
        frame, idx = frame[idx >= 0], idx[idx >= 0]
        codes, sizes = [], []
        for col in [c for c in frame.columns if c != "member_id"]:
            values = frame[col].astype(str).where(frame[col].notna())
            vocab = sorted(set(values.dropna()))
            full = np.zeros(n_members, np.int64)
            full[idx] = _category_codes(values, vocab, len(values))
            codes.append(full)
            sizes.append(len(vocab) + 1)
        if not codes:
            return np.zeros((n_members, 0), np.int64), np.zeros(0, np.int64)
        return np.stack(codes, axis=1), np.array(sizes, np.int64)

    def _feature_sizes(self) -> list[int]:
        sizes = [self.config.gap_buckets, 25, 8, len(self.devices_) + 1,
                 len(self.countries_) + 1, _WATCH_CODES]
        return [sizes[i] for i in self.config.token_features]

    def _context_sizes(self) -> list[int]:
        sizes = [self.config.gap_buckets, 25, 8, len(self.devices_) + 1,
                 len(self.countries_) + 1]
        return [sizes[i] for i in self.config.context_features]

    def _build_net(self) -> SeqNet:
        c = self.config
        net = SeqNet(len(self.title_vocab_), hidden=c.hidden, n_blocks=c.n_blocks,
                     n_heads=c.n_heads, max_len=c.max_len, dropout=c.dropout,
                     feature_sizes=self._feature_sizes(),
                     context_sizes=[*self._context_sizes(), *self.member_attr_sizes_.tolist()],
                     n_drift=N_DRIFT if c.use_time and c.use_drift else 0, encoder=c.encoder,
                     n_side=self.side_.shape[1])
        net.side = torch.from_numpy(self.side_) if self.side_.shape[1] else net.side
        net.drift_table = torch.from_numpy(self.drift_table_)
        return net

    # ------------------------------------------------------------------ batches
    def _bucket(self, times: np.ndarray) -> np.ndarray:
        width = self.config.drift_bucket_days * DAY
        b = (np.asarray(times, dtype=np.int64) - self.drift_t0_) // width
        return np.clip(b, 0, self.drift_table_.shape[0] - 1).astype(np.int64)

    def _windows(self, holdout: bool) -> list[tuple[int, int]]:
        """Training windows ``(start, end)`` of absolute positions: inputs ``start..end-1``,
        targets ``start+1..end``; the last action of members with >= 3 is held out if asked."""
        out = []
        L = self.config.max_len
        for m in range(len(self.seq_offsets_) - 1):
            lo, hi = int(self.seq_offsets_[m]), int(self.seq_offsets_[m + 1])
            if holdout and hi - lo >= 3:
                hi -= 1
            end = hi - 1  # last input position + 1 (the last action is only a target)
            while end > lo:
                start = max(lo, end - L)
                out.append((start, end))
                end = start
        return out

    def _batch(self, windows: Sequence[tuple[int, int]], with_targets: bool
               ) -> dict[str, torch.Tensor]:
        L = max(e - s for s, e in windows)
        B = len(windows)
        tok = self.config.token_features
        ctx = self.config.context_features
        titles = np.zeros((B, L), np.int64)
        feats = np.zeros((B, L, len(tok)), np.int64)
        targets = np.full((B, L), -1, np.int64)
        tctx = np.zeros((B, L, len(ctx)), np.int64)
        bucket = np.zeros((B, L), np.int64)
        member = np.zeros((B, L), np.int64)
        seen = self.exclude_seen_ and with_targets
        pos_type = np.int16 if L < np.iinfo(np.int16).max else np.int32  # half the gathers
        first = np.full((B, len(self.title_vocab_) if seen else 0), L, pos_type)
        for r, (s, e) in enumerate(windows):
            n = e - s
            titles[r, :n] = self.seq_titles_[s:e] + 1
            feats[r, :n] = self.seq_feats_[s:e][:, tok]
            bucket[r, :n] = self._bucket(self.seq_times_[s:e])
            member[r, :n] = np.searchsorted(self.seq_offsets_, s, side="right") - 1
            if seen:  # smallest window position of each played title; -1 before the window
                first[r, self.seq_titles_[s:e][::-1]] = np.arange(n)[::-1]
                first[r, self.seq_titles_[self.seq_offsets_[member[r, 0]]:s]] = -1
            if with_targets:
                targets[r, :n] = self.seq_titles_[s + 1:e + 1]
                tctx[r, :n] = self.seq_feats_[s + 1:e + 1][:, ctx]
        out = {"titles": titles, "feats": feats, "targets": targets, "ctx": tctx,
               "bucket": bucket, "member": member, "first": first}
        return {k: torch.from_numpy(v) for k, v in out.items()}

    def _context_codes(self, ctx: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        if self.member_attrs_.shape[1]:
            attrs = torch.from_numpy(self.member_attrs_)[member]
            ctx = torch.cat([ctx, attrs], dim=-1)
        return ctx

    # ------------------------------------------------------------------ training
    def _loss(self, batch: dict[str, torch.Tensor], log_q: torch.Tensor | None,
              gen: torch.Generator) -> torch.Tensor:
        c = self.config
        net = self.net_
        ctx = batch["ctx"]
        if c.context_dropout > 0 and ctx.numel():
            keep = torch.rand(ctx.shape, generator=gen) >= c.context_dropout
            ctx = ctx * keep
        h = net.encode(batch["titles"], batch["feats"])
        valid = batch["targets"] >= 0
        q = net.query(h[valid], self._context_codes(ctx, batch["member"])[valid])
        target = batch["targets"][valid]
        bucket = batch["bucket"][valid]
        first = batch["first"]  # (B, n_titles) first position played; empty: nothing excluded
        rows, at = valid.nonzero(as_tuple=True)  # batch row and position of each target
        at = at.to(first.dtype)  # compared with first's ints without a promoted copy
        if log_q is None:
            logits = net.logits(q, bucket)
            if not first.numel():
                return F.cross_entropy(logits, target, label_smoothing=c.label_smoothing)
            seen = first[rows] <= at[:, None]  # (N, n_titles): played at or before here
            seen[torch.arange(len(target)), target] = False
            masked = mask_out(logits, seen)
            if c.label_smoothing == 0:
                return F.cross_entropy(masked, target)
            logp = F.log_softmax(masked, dim=-1)
            nll = -logp[torch.arange(len(target)), target]
            smooth = -logp.masked_fill(seen, 0.0).sum(-1) / (~seen).sum(-1)
            return ((1 - c.label_smoothing) * nll + c.label_smoothing * smooth).mean()
        neg = torch.multinomial(log_q.exp(), c.n_negatives, replacement=True, generator=gen)
        cand = torch.cat([target, neg])
        w = net.title_vectors()[1:]
        pos = (q * w[target]).sum(-1) + net.title_bias[target]
        negs = q @ w[neg].T + net.title_bias[neg]
        db = net.drift_bias(bucket, cand)
        if db is not None:
            pos = pos + db[torch.arange(len(target)), torch.arange(len(target))]
            negs = negs + db[:, len(target):]
        correction = torch.log(torch.tensor(float(c.n_negatives))) + log_q[neg]
        negs = negs - correction
        negs = negs.masked_fill(neg[None, :] == target[:, None], float("-inf"))
        if first.numel():  # negatives played at or before here (a target among them is -inf)
            negs = negs.masked_fill(first[:, neg][rows] <= at[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], negs], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long))

    def _train(self, rng: np.random.Generator, comm: Communicator | None = None) -> None:
        """Early-stopped training; with ``refit``, then a fresh network (same seed) trained for
        the best epoch count on every action, the validation ones included."""
        c = self.config
        t0 = time.perf_counter()
        self._train_phase(rng, comm, holdout=c.validation, n_epochs=c.max_epochs, t0=t0)
        self.refit_epochs_ = 0
        if c.refit and c.validation and np.isfinite(self.history_[:, 2]).any():
            history, best_epoch = self.history_, self.best_epoch_
            torch.manual_seed(c.random_state)
            self.net_ = self._build_net()
            self._train_phase(np.random.default_rng(c.random_state), comm, holdout=False,
                              n_epochs=best_epoch, t0=t0)
            self.refit_epochs_ = int(len(self.history_))
            self.history_, self.best_epoch_ = history, best_epoch

    def _train_phase(self, rng: np.random.Generator, comm: Communicator | None, *,
                     holdout: bool, n_epochs: int, t0: float) -> None:
        c = self.config
        net = self.net_
        world = 1 if comm is None else int(comm.world_size)
        rank = 0 if comm is None else int(comm.rank)
        windows = self._windows(holdout)
        val_members = np.flatnonzero(np.diff(self.seq_offsets_) >= 3) if holdout else \
            np.zeros(0, np.int64)
        if world > 1 and -(-len(windows) // c.batch_size) < world:
            raise ValueError(f"{-(-len(windows) // c.batch_size)} training batch(es) for "
                             f"{world} workers: use fewer workers or a smaller batch_size")
        if rank:  # replicas share the initial weights; dropout and sampling differ
            torch.manual_seed(c.random_state + rank)
        gen = torch.Generator().manual_seed(c.random_state + rank)
        log_q = None
        if c.loss == "sampled":
            counts = np.bincount(self.seq_titles_, minlength=len(self.title_vocab_)) + 1.0
            p = counts ** 0.75
            log_q = torch.from_numpy(np.log(p / p.sum()).astype(np.float32))
        opt = torch.optim.Adam(net.parameters(), lr=c.learning_rate,
                               weight_decay=c.weight_decay)
        self.history_ = np.zeros((0, 3), np.float32)
        best, best_state, bad = -np.inf, None, 0
        self.best_epoch_ = 0
        lengths = np.array([e - s for s, e in windows])
        for epoch in range(1, n_epochs + 1):
            net.train()
            key = lengths + rng.uniform(0, 0.25 * c.max_len, len(windows))
            order = np.argsort(key, kind="stable")
            batches = [order[i:i + c.batch_size] for i in range(0, len(order), c.batch_size)]
            losses = []
            perm = rng.permutation(len(batches))
            if world > 1:  # every replica takes as many steps: the remainder is dropped
                perm = perm[:len(perm) // world * world][rank::world]
            for j in perm:
                batch = self._batch([windows[i] for i in batches[j]], with_targets=True)
                with torch.autocast("cpu", dtype=torch.bfloat16,
                                    enabled=c.precision == "bf16"):
                    loss = self._loss(batch, log_q, gen)
                opt.zero_grad()
                loss.backward()
                if comm is not None and world > 1:
                    _average_gradients(net, comm)
                opt.step()
                losses.append(loss.item())
            out_of_time = c.max_seconds is not None and time.perf_counter() - t0 > c.max_seconds
            if comm is not None and world > 1:  # one decision for every replica
                flags = torch.tensor([float(out_of_time), float(np.sum(losses)),
                                      float(len(losses))], dtype=torch.float64)
                comm.all_reduce(flags)
                out_of_time = bool(flags[0] > 0)
                losses = [float(flags[1] / flags[2])]
            last = epoch == n_epochs or out_of_time
            ndcg = np.nan
            if len(val_members) and (epoch % c.eval_every == 0 or last):
                ndcg = self._validate(val_members, comm)
                if ndcg > best:
                    best, bad, self.best_epoch_ = ndcg, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
            if np.isfinite(ndcg):
                _log.info("epoch %d loss %.4f val NDCG@10 %.4f (%.0f s)", epoch,
                          np.mean(losses), ndcg, time.perf_counter() - t0)
            row = np.array([[epoch, np.mean(losses), ndcg]], dtype=np.float32)
            self.history_ = np.vstack([self.history_, row]).astype(np.float32)
            if bad >= c.patience or out_of_time:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch_ = int(self.history_[-1, 0])
        net.eval()

    def _validate(self, members: np.ndarray, comm: Communicator | None = None) -> float:
        """Mean NDCG@10 of each member's last action given the others (full ranking, the
        member's other titles excluded); the request context is the action's own context
        columns, without its timestamp. Replicas (``comm``) each score a share of the members
        and sum the gains."""
        if comm is None or comm.world_size == 1:
            return self._gain_sum(members) / len(members)
        total = torch.tensor([self._gain_sum(members[comm.rank::comm.world_size])],
                             dtype=torch.float64)
        comm.all_reduce(total)
        return float(total[0]) / len(members)

    @torch.no_grad()
    def _gain_sum(self, members: np.ndarray, batch: int = 512) -> float:
        """Sum over ``members`` of the NDCG@10 gain of their last action (see _validate)."""
        self.net_.eval()
        ctx_cols = self.config.context_features
        scores_sum = 0.0
        for i in range(0, len(members), batch):
            m = members[i:i + batch]
            last = self.seq_offsets_[m + 1] - 1
            ctx = self.seq_feats_[last][:, ctx_cols].copy()
            if self.config.use_time:
                ctx[:, ctx_cols.index(0)] = 0  # the request time is not known at test
            scores = self._scores_for(m, self.seq_offsets_[m], last, torch.from_numpy(ctx))
            target = torch.from_numpy(self.seq_titles_[last])
            rows = np.concatenate([np.full(e - s, r) for r, (s, e) in
                                   enumerate(zip(self.seq_offsets_[m], last))])
            cols = np.concatenate([self.seq_titles_[s:e] for s, e in
                                   zip(self.seq_offsets_[m], last)])
            scores[rows, cols] = -torch.inf
            t_score = scores[torch.arange(len(m)), target]
            rank = (scores > t_score[:, None]).sum(1).float()
            gain = torch.where((rank < 10) & torch.isfinite(t_score),
                               1.0 / torch.log2(rank + 2.0), torch.zeros_like(rank))
            scores_sum += float(gain.sum())
        return scores_sum

    def _scores_for(self, members: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    ctx: torch.Tensor, request_bucket: np.ndarray | None = None
                    ) -> torch.Tensor:
        """Scores ``(len(members), n_titles)`` after each member's actions ``lo[r]..hi[r]-1``;
        the drift features are those of each member's last action's time bucket, or of
        ``request_bucket`` where it is >= 0."""
        L = self.config.max_len
        windows = [(max(int(a), int(b) - L), int(b)) for a, b in zip(lo, hi)]
        batch = self._batch(windows, with_targets=False)
        h = self.net_.encode(batch["titles"], batch["feats"])
        n = torch.tensor([e - s for s, e in windows])
        last = h[torch.arange(len(windows)), n - 1]
        q = self.net_.query(last, self._context_codes(ctx, torch.from_numpy(members)))
        bucket = batch["bucket"][torch.arange(len(windows)), n - 1]
        if request_bucket is not None:
            rb = torch.from_numpy(np.asarray(request_bucket, np.int64))
            bucket = torch.where(rb >= 0, rb, bucket)
        return self.net_.logits(q, bucket)

    # ------------------------------------------------------------------ predict
    def score(self, member_ids: Sequence[object] | np.ndarray, *,
              context: pd.DataFrame | None = None) -> np.ndarray:
        """Scores ``(len(member_ids), n_titles)`` given each member's whole training sequence
        and, optionally, the request ``context`` (one row per member; any of ``device``,
        ``country``, ``hour``, ``day_of_week``, ``timestamp``; missing columns are unknown)."""
        idx = self.member_index(member_ids)
        if context is not None and len(context) != len(idx):
            raise ValueError(f"context has {len(context)} rows for {len(idx)} members")
        with _torch_threads(self.config.num_threads), torch.no_grad():
            self.net_.eval()
            ctx = torch.from_numpy(self._request_codes(idx, context))
            rb = self._request_buckets(len(idx), context)
            out = [self._scores_for(idx[i:i + 512], self.seq_offsets_[idx[i:i + 512]],
                                    self.seq_offsets_[idx[i:i + 512] + 1], ctx[i:i + 512],
                                    rb[i:i + 512])
                   for i in range(0, len(idx), 512)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros(
            (0, len(self.title_vocab_)), np.float32)

    def _request_buckets(self, n: int, context: pd.DataFrame | None) -> np.ndarray:
        """Drift time bucket of each request: its ``timestamp`` where given, else the end of
        the training data (``request_time="end"``) or -1 (the member's last action)."""
        default = self.drift_table_.shape[0] - 1 if self.config.request_time == "end" else -1
        out = np.full(n, default, np.int64)
        if context is not None and "timestamp" in context:
            now = pd.to_numeric(context["timestamp"].reset_index(drop=True), errors="coerce"
                                ).to_numpy(dtype=np.float64, na_value=np.nan)
            ok = np.isfinite(now)
            out[ok] = self._bucket(now[ok].astype(np.int64))
        return out

    def _request_codes(self, idx: np.ndarray, context: pd.DataFrame | None) -> np.ndarray:
        n = len(idx)
        full = np.zeros((n, len(FEATURES) - 1), np.int64)
        if context is not None:
            context = context.reset_index(drop=True)
            if "timestamp" in context:
                now = pd.to_numeric(context["timestamp"], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan)
                last = self.seq_times_[self.seq_offsets_[idx + 1] - 1]
                full[:, 0] = _gap_codes(now - last, self.config.gap_buckets)
            full[:, 1] = _int_codes(context.get("hour"), n, 24)
            full[:, 2] = _int_codes(context.get("day_of_week"), n, 7)
            full[:, 3] = _category_codes(context.get("device"), self.devices_, n)
            full[:, 4] = _category_codes(context.get("country"), self.countries_, n)
        return full[:, self.config.context_features]

    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        return self.score(self.member_vocab_.ids(member_idx))

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        state: dict[str, Any] = {f"net.{k}": v.detach().numpy()
                                 for k, v in self.net_.state_dict().items()}
        state.update({
            "seq_titles": self.seq_titles_, "seq_times": self.seq_times_,
            "seq_feats": self.seq_feats_, "seq_offsets": self.seq_offsets_,
            "devices": np.array(self.devices_, dtype=str),
            "countries": np.array(self.countries_, dtype=str),
            "side": self.side_, "member_attrs": self.member_attrs_,
            "member_attr_sizes": self.member_attr_sizes_,
            "drift_table": self.drift_table_, "drift_t0": np.array(self.drift_t0_),
            "history": self.history_, "best_epoch": np.array(self.best_epoch_),
            "refit_epochs": np.array(getattr(self, "refit_epochs_", 0)),
            "exclude_seen": np.array(self.exclude_seen_),
        })
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.seq_titles_, self.seq_times_ = arrays["seq_titles"], arrays["seq_times"]
        self.seq_feats_, self.seq_offsets_ = arrays["seq_feats"], arrays["seq_offsets"]
        self.devices_ = arrays["devices"].tolist()
        self.countries_ = arrays["countries"].tolist()
        self.side_, self.member_attrs_ = arrays["side"], arrays["member_attrs"]
        self.member_attr_sizes_ = arrays["member_attr_sizes"]
        self.drift_table_, self.drift_t0_ = arrays["drift_table"], int(arrays["drift_t0"])
        self.history_, self.best_epoch_ = arrays["history"], int(arrays["best_epoch"])
        self.refit_epochs_ = int(arrays["refit_epochs"]) if "refit_epochs" in arrays else 0
        self.exclude_seen_ = bool(arrays["exclude_seen"]) if "exclude_seen" in arrays else False
        self.net_ = self._build_net()
        self.net_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in arrays.items()
                                   if k.startswith("net.")})
        self.net_.eval()


def _average_gradients(net: torch.nn.Module, comm: Communicator) -> None:
    """Replace every gradient by its mean over the replicas (one flat all-reduce; a parameter
    without a gradient counts as zero, so every replica takes the same Adam step)."""
    params = [p for p in net.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])
    comm.all_reduce(flat)
    flat /= comm.world_size
    start = 0
    for p in params:
        g = flat[start:start + p.numel()].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        start += p.numel()


__all__ = ["Communicator", "SequenceConfig", "SequenceRecommender"]
