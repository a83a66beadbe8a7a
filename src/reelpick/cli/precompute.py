"""``reelpick precompute``: the nearline job. Compose the pages members are likely to ask for in
the coming hour on a running service, before they ask (``POST /v1/admin/precompute``).

Example, at the start of every hour: ``reelpick precompute --url http://127.0.0.1:8000
--api-key KEY --logs runs/served --days 7`` (the members served in the last 7 days of the
exported log, each on the device and in the country of most of their pages), or
``--members m1,m2 --device tv`` for a given list. With ``--model-dir DIR --store FILE``
instead of ``--url`` the pages are composed in this process, with the policy published in
``DIR``, into the page store every worker of the service reads (its ``REELPICK_PAGE_STORE``):
the serving processes spend no CPU on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import console, fail, find_table, parse_list


def precompute(
    url: Annotated[str | None, typer.Option(
        "--url", help="Base URL of the running service (it composes the pages).")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", help="Instead of --url: compose here with the policy published in this "
        "model directory, into --store.", file_okay=False)] = None,
    store: Annotated[Path | None, typer.Option(
        "--store", help="Page store file of --model-dir (the service's REELPICK_PAGE_STORE; "
        "default DATA_DIR/pages.sqlite3), read by every worker.", dir_okay=False)] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="Admin key (default: REELPICK_ADMIN_KEY, else REELPICK_API_KEY).")
    ] = None,
    logs: Annotated[Path | None, typer.Option(
        "--logs", help="Folder with the served log's impressions (reelpick logs export): "
        "precompute for the members served in its last --days.", file_okay=False)] = None,
    members: Annotated[str | None, typer.Option(
        "--members", help="Comma-separated member ids (instead of --logs).")] = None,
    device: Annotated[str, typer.Option("--device", help="Device of --members.")] = "web",
    country: Annotated[str | None, typer.Option(
        "--country", help="Country of --members (default: each member's).")] = None,
    days: Annotated[float, typer.Option("--days", min=0.001,
                                        help="Window of --logs, in days.")] = 7.0,
    top: Annotated[int | None, typer.Option(
        "--top", min=1, help="At most this many members (the most active first).")] = None,
    hour: Annotated[int | None, typer.Option("--hour", min=0, max=23, help=(
        "Hour of the pages (default: the service's current UTC hour, or that of --at)."))
    ] = None,
    day_of_week: Annotated[int | None, typer.Option("--day-of-week", min=0, max=6)] = None,
    at: Annotated[int | None, typer.Option(
        "--at", min=0, help="Unix time the pages are for (default: now); e.g. the coming "
        "hour's start, to precompute before it begins.")] = None,
    chunk: Annotated[int, typer.Option("--chunk", min=1, max=100_000,
                                       help="Members per request.")] = 1_000,
) -> None:
    """Compose members' pages ahead (the nearline job): on a running service, or here into
    the service's page store."""
    import pandas as pd
    from rich.progress import Progress

    from reelpick.data.loaders import load_table
    from reelpick.data.schema import DEVICES, IMPRESSIONS
    from reelpick.serve.nearline import PrecomputeError, likely_contexts, precompute_into_store
    from reelpick.serve.nearline import precompute as run

    if (url is None) == (model_dir is None):
        fail("give exactly one of --url (the service composes) or --model-dir with --store "
             "(this process composes into the page store)")
    if model_dir is not None and store is None:
        fail("--model-dir: give --store, the service's page store file (REELPICK_PAGE_STORE, "
             "by default pages.sqlite3 in its data folder)")
    if (logs is None) == (members is None):
        fail("give exactly one of --logs (members from the served log) or --members")
    if logs is not None:
        path = find_table(logs, "impressions")
        if path is None:
            fail(f"--logs {logs}: no impressions.parquet or impressions.csv there "
                 "(write it with `reelpick logs export`)")
            return
        try:
            contexts = likely_contexts(load_table(path, IMPRESSIONS), days=days, top=top)
        except ValueError as exc:
            fail(f"{path}: {exc}")
            return
        if contexts.empty:
            fail(f"{path}: no impressions with a device and country to precompute for")
    else:
        assert members is not None
        if device not in DEVICES:
            fail(f"--device: unknown device {device!r}; choose from {list(DEVICES)}")
        ids = parse_list(members, what="--members")[:top]
        # an empty country: the service's default for each member (their own country)
        contexts = pd.DataFrame({"member_id": ids, "device": device, "country": country or ""})
    key = api_key or os.environ.get("REELPICK_ADMIN_KEY") or os.environ.get("REELPICK_API_KEY")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("composing pages", total=len(contexts))
        try:
            if model_dir is not None:
                assert store is not None
                out = precompute_into_store(
                    model_dir, store, contexts, hour=hour, day_of_week=day_of_week, at=at,
                    chunk=chunk, progress=lambda n: bar.update(task, completed=n))
            else:
                assert url is not None
                out = run(url, key, contexts, hour=hour, day_of_week=day_of_week,
                          at=at, chunk=chunk, progress=lambda n: bar.update(task, completed=n))
        except PrecomputeError as exc:
            fail(str(exc))
            return
    if model_dir is not None:
        console.print(f"{out['pages']:,} pages: {out['composed']:,} composed into {store} "
                      f"({out['stored']:,} pages of model {out['model_version']} stored, "
                      f"{out['seconds']:.1f} s)")
        return
    console.print(f"{out['pages']:,} pages asked for in {out['requests']} request(s): "
                  f"{out['composed']:,} composed, the rest remembered already; the service "
                  f"remembers {out['cached']:,} pages ({out['seconds']:.1f} s, model "
                  f"{out['model_version']})")

