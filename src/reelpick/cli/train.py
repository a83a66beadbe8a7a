"""``reelpick train``: train the page policy candidates (or the ALS serving model) from logs.

``--policy page`` (the default when ``--logs`` holds ``impressions``) trains
:class:`reelpick.page.PagePolicy` candidates, one per combination of ``--set`` values, each
saved as a policy folder under ``--out`` (see :mod:`reelpick.cli.page`). ``--policy als``:

reads ``interactions``, ``titles`` (and ``members``, ``artworks`` when present) ``.parquet`` from
``--logs`` (the output of ``reelpick simulate``), trains ALS and context popularity, and
publishes a new version in ``--out`` (npz and JSON, no pickle; ``manifest.json`` replaced
atomically, so a running server can ``POST /v1/admin/reload`` at any time).

Example: ``reelpick train --logs runs/sim --out runs/model``

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
from reelpick.serve.model_dir import TrainConfig, train_model_dir


def train(
    logs: Annotated[Path, typer.Option("--logs", help="Folder with the logged tables: "
                                       "impressions + outcomes (page policy; titles/artworks "
                                       "here or in --catalog), or interactions + titles (ALS), "
                                       "or a dataset folder (MovieLens, interactions.csv).",
                                       exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Page policy: folder of candidate policy "
                                      "folders. ALS: model directory to publish into.",
                                      file_okay=False)],
    policy: Annotated[str, typer.Option(
        "--policy", help="page (the shipped PagePolicy: sources + LightGBM ranker + artwork "
        "bandit + exploration, trained from impressions/outcomes), als (ALS + context "
        "popularity from interactions), or auto (page when --logs has impressions)")] = "auto",
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="Page policy: KEY=V1[,V2...] of PagePolicyConfig (repeatable); every "
        "combination is one candidate, e.g. --set epsilon=0.05,0.2 --set artwork=thompson")]
    = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="Page policy: where titles.parquet (artworks.parquet) are when not "
        "in --logs: a folder, a saved policy, or the served model directory",
        exists=True, file_okay=False)] = None,
    until: Annotated[int | None, typer.Option(
        "--until", help="Page policy: learn only from what was logged before this Unix time "
                        "(a time split; later logs stay for `reelpick ope`)")] = None,
    factors: Annotated[int, typer.Option("--factors", min=1, help="ALS factors.")] = 64,
    iterations: Annotated[int, typer.Option("--iterations", min=1, help="ALS sweeps.")] = 15,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
) -> None:
    """Train the page policy candidates (or the ALS serving model) from logs."""
    if policy not in ("auto", "page", "als"):
        fail(f"--policy: expected page, als or auto, got {policy!r}")
    if policy == "auto":
        has_imp = any((logs / f"impressions{e}").exists() for e in (".parquet", ".csv"))
        policy = "page" if has_imp else "als"
    if policy == "page":
        _train_page(logs, out, settings or [], catalog, until, seed)
        return
    try:
        manifest = train_model_dir(logs, out, TrainConfig(factors=factors, iterations=iterations,
                                                           seed=seed))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
        return
    console.print(f"published model {manifest['version']} to {out} "
                  f"({manifest['n_titles']:,} titles, {manifest['n_members']:,} members, "
                  f"{manifest['n_interactions']:,} plays, {manifest['seconds']:.1f} s)")


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
