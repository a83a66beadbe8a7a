"""``reelpick evaluate``: baseline recommenders under a time-respecting protocol."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reelpick.cli._common import console, fail, parse_ks, parse_list
from reelpick.data.loaders import load_dataset
from reelpick.data.schema import SchemaError
from reelpick.evaluation import EvalRecord, evaluate_leave_last_out, evaluate_time_cutoff
from reelpick.models.base import available_models


class Protocol(str, Enum):
    leave_last_out = "leave-last-out"
    time_cutoff = "time-cutoff"


def records_table(records: list[EvalRecord], ks: list[int]) -> Table:
    """A rich table of evaluation records: one row per model."""
    cols = [f"{m}@{k}" for k in ks for m in ("NDCG", "HR", "Recall", "MRR")]
    cols += [f"Coverage@{ks[0]}"]
    table = Table(title=f"{records[0].protocol} ({records[0].split.get('n_test_members', '?')} "
                  "test members)" if records else "no results")
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("rec s", justify="right")
    for r in records:
        table.add_row(r.model, *(f"{r.metrics.get(c, float('nan')):.4f}" for c in cols),
                      f"{r.fit_seconds:.2f}", f"{r.recommend_seconds:.3f}")
    return table


@contextmanager
def _errors_as_exit() -> Iterator[None]:
    try:
        yield
    except (ValueError, KeyError) as exc:
        fail(str(exc))


def evaluate(
    data: Annotated[Path, typer.Option(help="Dataset directory: MovieLens (u.data or *.inter) "
                                       "or interactions.parquet/.csv")],
    protocol: Annotated[Protocol, typer.Option(help="Evaluation protocol")] =
    Protocol.leave_last_out,
    models: Annotated[str, typer.Option(help="Comma-separated models")] =
    "popular,itemknn,als,bpr",
    k: Annotated[str, typer.Option(help="Cut-offs, comma-separated")] = "10,20",
    quantile: Annotated[float, typer.Option(help="time-cutoff: quantile of interaction times",
                                            min=0.0, max=1.0)] = 0.8,
    tune: Annotated[bool, typer.Option("--tune", help="Grid-search each model on validation")]
    = False,
    tune_folds: Annotated[int, typer.Option(help="Validation folds averaged when tuning "
                                            "(positions -2, -3, ... or cut-offs 0.7, 0.8, 0.9)",
                                            min=1, max=5)] = 3,
    tune_metric: Annotated[str, typer.Option(help="Metric maximised on validation")]
    = "NDCG@10",
    threads: Annotated[int, typer.Option(help="Threads for BLAS and model fitting", min=1)] = 1,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write records as JSON")]
    = None,
) -> None:
    """Evaluate recommenders on full-catalogue ranking, never training on the future."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    from threadpoolctl import threadpool_limits

    names = parse_list(models, what="--models", allowed=available_models())
    ks = parse_ks(k)
    try:
        dataset = load_dataset(data)
    except (FileNotFoundError, SchemaError, ValueError) as exc:
        fail(str(exc))
    params = {n: {"num_threads": threads} for n in names if n != "popular"}
    catalogue = dataset.title_vocab().to_list()
    with threadpool_limits(threads), _errors_as_exit():
        if protocol is Protocol.leave_last_out:
            records = evaluate_leave_last_out(dataset.interactions, names, ks=ks,
                                              tune_on_validation=tune, params=params,
                                              catalogue=catalogue, tune_folds=tune_folds,
                                              tune_metric=tune_metric)
        else:
            records = evaluate_time_cutoff(dataset.interactions, names, ks=ks, quantile=quantile,
                                           tune_on_validation=tune, params=params,
                                           catalogue=catalogue, tune_folds=tune_folds,
                                           tune_metric=tune_metric)
    console.print(records_table(records, ks))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([r.to_dict() for r in records], indent=2))
        console.print(f"wrote {json_path}")
