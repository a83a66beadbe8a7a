"""``reelpick train``: train page policy candidates from logs.

Trains :class:`reelpick.page.PagePolicy` candidates, one per combination of ``--set`` values,
each saved as a policy folder under ``--out`` (see :mod:`reelpick.cli.page`); ``reelpick
promote`` publishes one into the model directory the service loads. From ``impressions`` +
``outcomes`` (the service's exported log, or ``reelpick simulate``'s) the ranker learns from
the logged pages; from plays alone (``interactions`` + ``titles``, or a dataset folder) from
pseudo-pages (:mod:`reelpick.page.implicit`). ``--policy page`` is the only policy: the ALS
model directory (``--policy als``) was removed with the service's second page composer.

Example: ``reelpick train --logs runs/sim --out runs/cand --set epsilon=0.05,0.2``

``reelpick train-seq`` trains the contextual sequence model (``seq``) on the same folders and
writes its ``.npz``; ``--backend ray`` trains it data-parallel with Ray Train
(:mod:`reelpick.distributed.train`; one worker gives the local model exactly).
"""


from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import (
    BACKEND_HELP,
    RAY_ADDRESS_HELP,
    check_backend_option,
    console,
    fail,
)


def train(
    logs: Annotated[Path, typer.Option("--logs", help="Folder with the logged tables: "
                                       "impressions + outcomes (titles/artworks here or in "
                                       "--catalog), or plays alone: interactions + titles, or "
                                       "a dataset folder (MovieLens, interactions.csv).",
                                       exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder of candidate policy folders.",
                                      file_okay=False)],
    policy: Annotated[str, typer.Option(
        "--policy", help="page: the shipped PagePolicy (sources + LightGBM ranker + artwork "
        "bandit + exploration), the only one (auto is the same)")] = "page",
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=V1[,V2...] of PagePolicyConfig (repeatable); every combination is "
        "one candidate, e.g. --set epsilon=0.05,0.2 --set artwork=thompson")] = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="Where titles.parquet (artworks.parquet) are when not in --logs: a "
        "folder, a saved policy, or the served model directory",
        exists=True, file_okay=False)] = None,
    until: Annotated[int | None, typer.Option(
        "--until", help="Learn only from what was logged before this Unix time (a time "
                        "split; later logs stay for `reelpick ope`)")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
) -> None:
    """Train page policy candidates from logs."""
    if policy == "als":
        fail("--policy als was removed: the service serves one page policy; train it with "
             "--policy page (from impressions + outcomes, or from plays alone) and publish it "
             "with `reelpick promote`")
    if policy not in ("page", "auto"):
        fail(f"--policy: expected page, got {policy!r}")
    _train_page(logs, out, settings or [], catalog, until, seed)


def _train_page(logs: Path, out: Path, settings: list[str], catalog: Path | None,
                until: int | None, seed: int) -> None:
    from reelpick.cli.page import read_page_logs, train_candidates, window
    from reelpick.data.schema import SchemaError

    if not any(s.partition("=")[0].strip() == "seed" for s in settings):
        settings = [*settings, f"seed={seed}"]
    try:
        tables = window(read_page_logs(logs, catalog), until=until)
        records = train_candidates(tables, out, settings)
    except (FileNotFoundError, ValueError, SchemaError) as exc:
        fail(str(exc))
        return
    for r in records:
        console.print(f"saved {r['name']} {r['version']} to {r['path']} ({r['pages']:,} pages, "
                      f"{r['plays']:,} plays, {r['seconds']:.1f} s)")
    if records and records[0].get("trained_on_policies") == ["implicit-negatives"]:
        console.print(f"{len(records)} candidate(s) in {out}, trained on plays alone (no "
                      "impressions logged: the ranker learnt from pseudo-pages of sampled "
                      f"titles); first launch: reelpick promote --first --candidates {out} "
                      "--model-dir <model dir>")
        return
    console.print(f"{len(records)} candidate(s) in {out}; next: reelpick ope --logs <served "
                  f"logs> --candidates {out}")


def train_seq(
    logs: Annotated[Path, typer.Option("--logs", help="Folder with interactions.parquet (and "
                                       "titles/members.parquet), or a dataset folder.",
                                       exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (.npz).",
                                      dir_okay=False)],
    encoder: Annotated[str, typer.Option(help="gru or transformer.")] = "gru",
    hidden: Annotated[int, typer.Option(min=1, help="Hidden size.")] = 64,
    blocks: Annotated[int, typer.Option(min=1, help="GRU layers or transformer blocks.")] = 2,
    max_len: Annotated[int, typer.Option(min=1, help="Longest window of actions.")] = 50,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs (early stopping).")] = 80,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per batch (per worker).")]
    = 128,
    max_seconds: Annotated[float | None, typer.Option(min=1, help="Training time cap.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    num_workers: Annotated[int, typer.Option(min=1, help="Ray Train workers (CPU).")] = 2,
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
    storage_path: Annotated[str | None, typer.Option(
        help="Ray Train checkpoint storage (a path every node can write, or s3://...); "
             "default: a temporary folder")] = None,
) -> None:
    """Train the contextual sequence model and save it (.npz, no pickle)."""
    from reelpick.distributed.train import fit_sequence
    from reelpick.serve.model_dir import read_logs

    check_backend_option(backend)
    try:
        tables = read_logs(logs)
        titles = tables["titles"]
        model = fit_sequence(
            tables["interactions"], titles=titles["title_id"].astype(str).tolist(),
            title_features=titles, member_features=tables.get("members"), backend=backend,
            num_workers=num_workers, address=ray_address, storage_path=storage_path,
            encoder=encoder, hidden=hidden, n_blocks=blocks, max_len=max_len, max_epochs=epochs,
            batch_size=batch_size, max_seconds=max_seconds, random_state=seed)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        fail(str(exc))
        return
    path = model.save(out)
    console.print(f"wrote {path} ({len(model.title_vocab_):,} titles, "
                  f"{len(model.member_vocab_):,} members, best epoch {model.best_epoch_}, "
                  f"backend {backend})")
