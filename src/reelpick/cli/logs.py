"""``reelpick logs export``: the service's event log to schema-valid Parquet.

Example: ``reelpick logs export --db reelpick-data/events.sqlite3 --out runs/logged``
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
    db: Annotated[Path, typer.Option("--db", help="The event log (events.sqlite3).",
                                     exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Output folder.", file_okay=False)],
) -> None:
    """Write impressions.parquet and outcomes.parquet (validated against the schemas)."""
    from reelpick.serve.export import export_logs

    try:
        result = export_logs(db, out)
    except (SchemaError, ValueError, OSError) as exc:
        fail(str(exc))
        return
    console.print(f"wrote {result.impressions:,} impressions from {result.pages:,} pages and "
                  f"{result.outcomes:,} outcomes to {out}")
