"""``reelpick logs export``: the service's event log to schema-valid Parquet.

Example: ``reelpick logs export --db reelpick-data/events.sqlite3 --out runs/logged``, or from
the PostgreSQL log: ``reelpick logs export --event-log postgresql://user@host/db --out DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import console, fail
from reelpick.data.schema import SchemaError

app = typer.Typer(help="Work with the service's event log.", no_args_is_help=True)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Output folder.", file_okay=False)],
    db: Annotated[Path | None, typer.Option("--db", help="The SQLite event log "
                                            "(events.sqlite3).", exists=True,
                                            dir_okay=False)] = None,
    event_log: Annotated[str | None, typer.Option(
        "--event-log", help="The PostgreSQL event log, postgresql://user@host:port/db "
        "(what REELPICK_EVENT_LOG names).")] = None,
) -> None:
    """Write impressions.parquet and outcomes.parquet (validated against the schemas)."""
    if (db is None) == (event_log is None):
        fail("give exactly one of --db (SQLite log) and --event-log (PostgreSQL URL)")
        return
    try:
        if event_log is not None:
            from reelpick.serve.pgstore import export_pg_logs, is_postgres_url

            if not is_postgres_url(event_log):
                fail("--event-log: expected a postgresql:// URL")
                return
            result = export_pg_logs(event_log, out)
        else:
            from reelpick.serve.export import export_logs

            assert db is not None
            result = export_logs(db, out)
    except (SchemaError, ValueError, OSError) as exc:
        fail(str(exc))
        return
    console.print(f"wrote {result.impressions:,} impressions from {result.pages:,} pages and "
                  f"{result.outcomes:,} outcomes to {out}")
