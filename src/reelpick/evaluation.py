"""Offline evaluation protocols for recommenders: leave-last-out, time cut-off, rolling backtests.

Every protocol ranks the full catalogue for each test member with the member's training titles
excluded, and respects time: models never see an interaction at or after what they are tested on.

>>> import pandas as pd
>>> from reelpick.data.splits import leave_last_out
>>> df = pd.DataFrame({"member_id": list("aaabbb"), "title_id": list("xyzxyw"),
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> recs = evaluate_leave_last_out(df, ["popular"], ks=(2,), progress=False)
>>> recs[0].model, sorted(recs[0].metrics)[:2]
('popular', ['Coverage@2', 'HR@2'])
"""

from __future__ import annotations

import itertools
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from reelpick.data.splits import (
    TTSplit,
    leave_last_out,
    publishing_delay,
    resolve_cutoff,
    rolling_cutoffs,
    time_cutoff,
)
from reelpick.metrics.ranking import RankingResult, ranking_metrics, truth_matrix
from reelpick.models.base import Recommender, make_model

#: The light hyperparameter grids searched by ``--tune`` (on validation data only).
GRIDS: dict[str, dict[str, list[Any]]] = {
    "popular": {"window_days": [None, 30.0, 90.0]},
    "itemknn": {"neighbors": [20, 50, 100, 200], "similarity": ["cosine", "bm25"]},
    "als": {"factors": [32, 64, 128], "regularization": [5.0], "alpha": [1.0, 4.0],
            "iterations": [20], "recency_half_life_days": [None, 15.0, 60.0],
            "weighting": ["none", "bm25"]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05],
            "regularization": [0.001, 0.01], "iterations": [100, 300]},
    "blend": {"weight": [0.0, 0.5, 0.8, 0.9, 1.0], "prior_half_life_days": [7.0, 15.0]},
}


@dataclass(frozen=True)
class EvalRecord:
    """One model evaluated under one protocol (one JSON record of ``reelpick evaluate --json``).

    ``peak_rss_mb`` is the process's peak resident memory after the model's fit and recommend.
    ``tuning`` lists the validation score of each configuration tried (empty without tuning).
    """

    model: str
    protocol: str
    metrics: dict[str, float]
    fit_seconds: float
    recommend_seconds: float
    peak_rss_mb: float
    params: dict[str, Any]
    split: dict[str, Any] = field(default_factory=dict)
    tuning: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                    "{task.total}"), TimeElapsedColumn(), disable=not enabled, transient=True)


def score_model(
    model: Recommender,
    split: TTSplit,
    *,
    ks: Sequence[int] = (10, 20),
    exclude: pd.DataFrame | None = None,
) -> RankingResult:
    """Rank the catalogue with a fitted ``model`` for every test member of ``split`` (their
    training titles and ``exclude`` rows removed) and score against ``split.test``.

    The result's ``per_member`` frame is indexed by ``member_id`` (members whose test titles are
    all unknown to the model are left out), so two models scored on one split pair by member.
    """
    if len(split.test) == 0:
        raise ValueError("the split leaves no test rows (with a time cut-off: no member active "
                         "after the cut-off was seen before it); choose another cut-off")
    members = split.test["member_id"].unique()
    recs = model.recommend(members, k=max(ks), exclude=exclude)
    m_idx = pd.Index(members).get_indexer(split.test["member_id"])
    t_idx = model.title_vocab_.index(split.test["title_id"], missing="negative")
    truth = truth_matrix(m_idx, t_idx, len(members), len(model.title_vocab_))
    n_train_members = max(len(model.member_vocab_), 1)
    popularity = np.asarray(model.user_items_.sum(axis=0)).ravel() / n_train_members
    result = ranking_metrics(recs.title_idx, truth, ks=ks, item_popularity=popularity)
    evaluated = np.asarray(truth.getnnz(axis=1)).ravel() > 0
    per_member = result.per_member.set_axis(pd.Index(members[evaluated], name="member_id"))
    return RankingResult(per_member=per_member, summary=result.summary)


def run_model(
    name: str,
    params: dict[str, Any],
    split: TTSplit,
    *,
    catalogue: Sequence[str],
    ks: Sequence[int] = (10, 20),
    exclude: pd.DataFrame | None = None,
) -> tuple[dict[str, float], float, float, Recommender]:
    """Fit ``name(**params)`` on ``split.train``, rank the catalogue for every test member (their
    training titles and ``exclude`` rows removed) and score against ``split.test``
    (:func:`score_model`).

    Returns ``(metrics, fit_seconds, recommend_seconds, model)``.
    """
    if len(split.test) == 0:
        raise ValueError("the split leaves no test rows (with a time cut-off: no member active "
                         "after the cut-off was seen before it); choose another cut-off")
    model = make_model(name, **params)
    t0 = time.perf_counter()
    model.fit(split.train, titles=catalogue)
    t1 = time.perf_counter()
    result = score_model(model, split, ks=ks, exclude=exclude)
    t2 = time.perf_counter()
    return result.summary, t1 - t0, t2 - t1, model


def _grid(name: str) -> list[dict[str, Any]]:
    grid = GRIDS.get(name, {})
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())] or [{}]


#: Metrics that can be maximised on validation (``NAME@k``).
TUNABLE_METRICS = ("NDCG", "HR", "Recall", "Precision", "MRR")


def _metric_k(metric: str) -> int:
    """The cut-off ``k`` of a metric name such as ``"NDCG@10"``."""
    name, _, k = metric.partition("@")
    if name not in TUNABLE_METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"tuning metric must be one of {', '.join(TUNABLE_METRICS)} followed by "
                         f"@k (e.g. 'NDCG@10'), got {metric!r}")
    return int(k)


def validation_splits(protocol: str, train: pd.DataFrame, folds: int = 3) -> list[TTSplit]:
    """Validation splits inside ``train`` (the outer training data) that mimic the test protocol.

    * ``"leave-last-out"``: fold ``j`` holds out each member's ``(j+1)``-th last training
      interaction and trains on everything before it, so the folds validate on the positions just
      before the test item (-2, -3, -4, ...) and never on the future of their own training data.
    * ``"time-cutoff"``: one time cut-off per fold at quantiles centred on 0.8 of the training
      period, 0.1 apart (``folds=3``: 0.7, 0.8, 0.9), each testing on everything after it.

    With one validation item per member (943 on ml-100k) the validation NDCG@10 has a standard
    error of about 0.007, larger than most differences between grid points; averaging over folds
    shrinks it by about ``sqrt(folds)``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aaaaa"), "title_id": list("vwxyz"),
    ...                    "timestamp": [1, 2, 3, 4, 5]})
    >>> [s.test["title_id"].tolist() for s in validation_splits("leave-last-out", df, folds=2)]
    [['z'], ['y']]
    """
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    splits = []
    if protocol == "leave-last-out":
        rest = train
        for _ in range(folds):
            split = leave_last_out(rest)
            if len(split.test) == 0:
                break
            splits.append(split)
            rest = split.train
    elif protocol == "time-cutoff":
        for j in range(folds):
            q = 0.8 + 0.1 * (j - (folds - 1) / 2)
            if not 0.0 < q < 1.0:
                raise ValueError(f"{folds} time cut-off folds 0.1 apart do not fit in (0, 1)")
            split = time_cutoff(train, quantile=q)
            if len(split.test):
                splits.append(split)
    else:
        raise ValueError(f"protocol must be 'leave-last-out' or 'time-cutoff', got {protocol!r}")
    if not splits:
        raise ValueError("no validation fold has test rows: too little data to tune on")
    return splits


def tune(
    name: str,
    split: TTSplit | Sequence[TTSplit],
    *,
    catalogue: Sequence[str],
    metric: str = "NDCG@10",
    base_params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0, 1),
    progress: Progress | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid search on validation split(s): returns the best parameters and every trial.

    Each configuration is scored by ``metric`` averaged over the validation folds (``split`` may
    be one split or a list, see :func:`validation_splits`) and, for models with a
    ``random_state``, over ``seeds``: on ml-100k the seed-to-seed spread of validation NDCG@10
    (about 0.005) is as large as the differences between configurations, so a single seed and a
    single fold pick noise. Every trial records its per-fold means too.
    """
    folds = [split] if isinstance(split, TTSplit) else list(split)
    if not folds:
        raise ValueError("tune needs at least one validation split")
    k = _metric_k(metric)
    trials: list[dict[str, Any]] = []
    candidates = _grid(name)
    has_seed = "random_state" in make_model(name).get_params()
    task = (progress.add_task(f"tune {name}", total=len(candidates) * len(folds))
            if progress else None)
    for params in candidates:
        merged = {**(base_params or {}), **params}
        per_fold = []
        for fold in folds:
            values = [run_model(name, {**merged, "random_state": s} if has_seed else merged,
                                fold, catalogue=catalogue, ks=(k,))[0][metric]
                      for s in (seeds if has_seed else seeds[:1])]
            per_fold.append(float(np.mean(values)))
            if progress is not None and task is not None:
                progress.advance(task)
        trials.append({"params": merged, metric: float(np.mean(per_fold)),
                       "folds": per_fold})
    best = max(trials, key=lambda t: t[metric])
    return best["params"], trials


def _catalogue(interactions: pd.DataFrame, catalogue: Sequence[str] | None) -> list[str]:
    """The titles to rank: as given, else every title in the interactions."""
    if catalogue is not None:
        return list(catalogue)
    return list(pd.unique(interactions["title_id"]))


def _split_info(split: TTSplit, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {} if split.cutoff is None else {"cutoff": split.cutoff}
    info.update(extra)
    info.update(n_train=len(split.train), n_test=len(split.test),
                n_test_members=int(split.test["member_id"].nunique()))
    return info


def _evaluate(
    protocol: str,
    outer: TTSplit,
    inner: Sequence[TTSplit] | None,
    models: Iterable[str],
    *,
    catalogue: Sequence[str],
    ks: Sequence[int],
    params: dict[str, dict[str, Any]] | None,
    progress: bool,
    split_info: dict[str, Any],
    tune_metric: str = "NDCG@10",
    exclude: pd.DataFrame | None = None,
) -> list[EvalRecord]:
    records = []
    models = list(models)
    with _progress(progress) as bar:
        task = bar.add_task(f"{protocol}", total=len(models))
        for name in models:
            chosen = dict((params or {}).get(name, {}))
            trials: list[dict[str, Any]] = []
            if inner is not None:
                chosen, trials = tune(name, inner, catalogue=catalogue, base_params=chosen,
                                      metric=tune_metric, progress=bar)
            metrics, fit_s, rec_s, model = run_model(name, chosen, outer, catalogue=catalogue,
                                                     ks=ks, exclude=exclude)
            records.append(EvalRecord(name, protocol, metrics, fit_s, rec_s, _peak_rss_mb(),
                                      model.get_params(), split_info, trials))
            bar.advance(task)
    return records


def evaluate_leave_last_out(
    interactions: pd.DataFrame,
    models: Iterable[str],
    *,
    ks: Sequence[int] = (10, 20),
    tune_on_validation: bool = False,
    tune_folds: int = 3,
    tune_metric: str = "NDCG@10",
    params: dict[str, dict[str, Any]] | None = None,
    catalogue: Sequence[str] | None = None,
    progress: bool = True,
) -> list[EvalRecord]:
    """Leave-last-out: each member's last interaction is test, the ones before it validation.

    With ``tune_on_validation`` each model's grid (:data:`GRIDS`) is searched by fitting on
    the training data before each validation position and scoring ``tune_metric`` there,
    averaged over ``tune_folds`` positions (-2, -3, ...; see :func:`validation_splits`); the
    chosen model is then refit on everything before the test item and tested, with those titles
    excluded from the ranking.
    """
    outer = leave_last_out(interactions)
    inner = (validation_splits("leave-last-out", outer.train, tune_folds)
             if tune_on_validation else None)
    return _evaluate("leave-last-out", outer, inner, models,
                     catalogue=_catalogue(interactions, catalogue), ks=ks, params=params,
                     progress=progress, split_info=_split_info(outer), tune_metric=tune_metric)


def evaluate_time_cutoff(
    interactions: pd.DataFrame,
    models: Iterable[str],
    *,
    quantile: float = 0.8,
    cutoff: int | None = None,
    ks: Sequence[int] = (10, 20),
    tune_on_validation: bool = False,
    tune_folds: int = 3,
    tune_metric: str = "NDCG@10",
    params: dict[str, dict[str, Any]] | None = None,
    catalogue: Sequence[str] | None = None,
    progress: bool = True,
) -> list[EvalRecord]:
    """Global time cut-off: train before ``t`` (a timestamp, or the ``quantile`` of times), test
    at or after ``t`` for members seen in training. Tuning uses ``tune_folds`` further cut-offs
    inside the training period (quantiles 0.7, 0.8, 0.9 of it for three folds) as validation,
    scored by ``tune_metric``."""
    outer = (time_cutoff(interactions, cutoff) if cutoff is not None
             else time_cutoff(interactions, quantile=quantile))
    inner = (validation_splits("time-cutoff", outer.train, tune_folds)
             if tune_on_validation else None)
    return _evaluate("time-cutoff", outer, inner, models,
                     catalogue=_catalogue(interactions, catalogue), ks=ks, params=params,
                     progress=progress, split_info=_split_info(
                         outer, quantile=None if cutoff is not None else quantile),
                     tune_metric=tune_metric)


def evaluate_backtest(
    interactions: pd.DataFrame,
    models: Iterable[str],
    *,
    quantiles: Sequence[float] = (0.6, 0.7, 0.8, 0.9),
    horizon: float | None = 0.1,
    delay_days: float = 0.0,
    ks: Sequence[int] = (10, 20),
    params: dict[str, dict[str, Any]] | None = None,
    catalogue: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[list[EvalRecord], pd.DataFrame]:
    """Rolling-origin backtest: one time cut-off evaluation per quantile (test window
    ``horizon`` wide). Returns every record and a summary frame with the mean and standard
    deviation of each metric over cut-offs, per model.

    ``delay_days`` simulates a training and publishing delay: each model is trained at the
    cut-off ``t`` and serves from ``t + d`` (:func:`~reelpick.data.splits.publishing_delay`;
    the window keeps its width); what a member played in the gap ``[t, t + d)`` is excluded
    from their ranking, as a server that knows it would.
    """
    if delay_days < 0:
        raise ValueError(f"delay_days must be >= 0, got {delay_days}")
    catalogue = _catalogue(interactions, catalogue)
    records: list[EvalRecord] = []
    models = list(models)
    ts = interactions["timestamp"].to_numpy()
    for q, split in zip(sorted(quantiles), rolling_cutoffs(interactions, quantiles,
                                                          horizon=horizon)):
        if len(split.test) == 0:
            continue
        exclude = None
        if delay_days > 0 and split.cutoff is not None:
            t = split.cutoff
            width = (None if horizon is None or q + horizon >= 1.0 else
                     (resolve_cutoff(interactions, quantile=q + horizon) - t) / 86400.0)
            split = publishing_delay(interactions, t, delay_days=delay_days, window_days=width)
            gap = (ts >= t) & (ts < t + delay_days * 86400.0)
            exclude = interactions.loc[gap, ["member_id", "title_id"]]
            if len(split.test) == 0:
                continue
        records += _evaluate("backtest", split, None, models, catalogue=catalogue, ks=ks,
                             params=params, progress=progress, exclude=exclude,
                             split_info=_split_info(split, quantile=q, delay_days=delay_days))
    rows = [{"model": r.model, "quantile": r.split["quantile"], **r.metrics} for r in records]
    frame = pd.DataFrame(rows)
    metric_cols = [c for c in frame.columns if "@" in c]
    summary = frame.groupby("model")[metric_cols].agg(["mean", "std"]) if rows else frame
    return records, summary


@dataclass(frozen=True)
class PairedCI:
    """A paired difference (model − baseline) with its percentile bootstrap interval.

    ``mean``: the observed mean difference; ``low`` / ``high``: the ``1 - alpha`` percentile
    interval; ``se``: the standard deviation of the bootstrap replicates; ``n``: rows (members,
    or member x cut-off pairs); ``n_clusters``: cut-offs resampled (``0`` without clusters).
    """

    mean: float
    low: float
    high: float
    se: float
    n: int
    n_clusters: int = 0

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def __str__(self) -> str:
        return f"{self.mean:+.4f} (95% CI {self.low:+.4f} … {self.high:+.4f})"


def paired_bootstrap(
    diff: Sequence[float] | np.ndarray | pd.Series,
    *,
    clusters: Sequence[Any] | np.ndarray | pd.Series | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: int = 0,
) -> PairedCI:
    r"""Percentile bootstrap CI of the mean of paired differences ``diff`` (one per member:
    the model's metric minus the baseline's on the same member and split).

    Without ``clusters`` members are resampled with replacement. With ``clusters`` (one label
    per row, e.g. the cut-off of a pooled backtest) the bootstrap is two-stage: cut-offs are
    resampled with replacement, then members within each drawn cut-off; the statistic is the
    mean over all drawn rows. With :math:`C` equal clusters of :math:`m` rows, cluster means
    :math:`\mu_c` and within variances :math:`\sigma_c^2`, the replicate variance is
    :math:`\frac{1}{C}\big(\mathrm{Var}_c(\mu_c) + \overline{\sigma_c^2}/m\big)`, so the
    interval reflects how much the gain changes from one cut-off to the next, not only
    member noise.

    >>> ci = paired_bootstrap([0.1, 0.2, 0.0, 0.3], n_boot=500)
    >>> round(ci.mean, 3), ci.low <= ci.mean <= ci.high
    (0.15, True)
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError(f"diff must be a non-empty 1-D array, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("diff has NaN or infinite values")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(random_state)
    if clusters is None:
        reps = np.empty(n_boot)
        for start in range(0, n_boot, 256):
            b = min(256, n_boot - start)
            reps[start:start + b] = d[rng.integers(0, len(d), (b, len(d)))].mean(axis=1)
        n_clusters = 0
    else:
        labels = np.asarray(clusters)
        if labels.shape != d.shape:
            raise ValueError(f"clusters must have one label per diff row ({len(d)}), got "
                             f"shape {labels.shape}")
        groups = [d[labels == c] for c in pd.unique(labels)]
        n_clusters = len(groups)
        reps = np.empty(n_boot)
        for b in range(n_boot):
            total, count = 0.0, 0
            for c in rng.integers(0, n_clusters, n_clusters):
                g = groups[c]
                total += g[rng.integers(0, len(g), len(g))].sum()
                count += len(g)
            reps[b] = total / count
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return PairedCI(float(d.mean()), float(low), float(high), float(reps.std()), len(d),
                    n_clusters)


def tune_blend(
    folds: Sequence[TTSplit],
    *,
    catalogue: Sequence[str],
    base: str = "als",
    base_grid: Sequence[dict[str, Any]] = ({},),
    grid: Sequence[dict[str, float]] | None = None,
    metrics: Sequence[str] = ("NDCG@10", "Recall@20"),
    seeds: Sequence[int] = (0,),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Tune a :class:`~reelpick.models.blend.TrendBlend` on validation cut-offs ``folds``.

    Each base configuration (``base_grid``) is fitted once per fold (and seed); the blend's
    ``weight`` and ``prior_half_life_days`` (``grid``, default
    :func:`~reelpick.models.blend.blend_grid`, which includes ``weight=0``, the base alone) are
    then swept over that fit. A trial's score is the mean of ``metrics`` over folds and seeds.
    Returns the best ``make_model("blend", **params)`` parameters and every trial.
    """
    from reelpick.models.blend import TrendBlend, blend_grid

    folds = list(folds)
    if not folds:
        raise ValueError("tune_blend needs at least one validation split")
    ks = sorted({_metric_k(m) for m in metrics})
    grid = list(grid) if grid is not None else blend_grid()
    has_seed = "random_state" in make_model(base).get_params()
    trials: list[dict[str, Any]] = []
    for bp in base_grid:
        scores = np.zeros((len(grid), len(folds)))
        for f, fold in enumerate(folds):
            for s in (seeds if has_seed else seeds[:1]):
                params = {**bp, "random_state": s} if has_seed else dict(bp)
                fitted = make_model(base, **params).fit(fold.train, titles=catalogue)
                for g, point in enumerate(grid):
                    model = TrendBlend.from_fitted(fitted, fold.train, **point)
                    summary = score_model(model, fold, ks=ks).summary
                    scores[g, f] += np.mean([summary[m] for m in metrics])
            scores[:, f] /= len(seeds) if has_seed else 1
        for g, point in enumerate(grid):
            trials.append({"params": {"base": base, "base_params": dict(bp), **point},
                           "score": float(scores[g].mean()),
                           "folds": scores[g].tolist()})
    best = max(trials, key=lambda t: t["score"])
    return best["params"], trials
