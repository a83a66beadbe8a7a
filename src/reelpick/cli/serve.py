"""``reelpick serve``: run the home page service with uvicorn on one process.

Settings come from ``REELPICK_*`` environment variables (``docs/serve.md``); the options here
override them. Without an API key a random one is made and printed with the page's URL.

Example: ``reelpick serve --model-dir runs/model --data-dir runs/data --port 8000``
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from reelpick.cli._common import fail


def serve(
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", help="Model directory from `reelpick train` (default: a demo model "
        "trained on a simulated world).", file_okay=False)] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder of the event log.", file_okay=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Serve home pages, events, artwork, metrics and the web page."""
    import uvicorn
    from pydantic import SecretStr, ValidationError

    from reelpick.serve import Settings, create_app

    overrides: dict[str, Any] = {}
    if model_dir is not None:
        overrides["model_dir"] = model_dir
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        fail(f"settings: {exc}")
        return
    if settings.api_key is None:
        settings = settings.model_copy(update={"api_key": SecretStr(secrets.token_urlsafe(16))})
        typer.echo("no REELPICK_API_KEY set; generated one for this run", err=True)
    assert settings.api_key is not None
    key = settings.api_key.get_secret_value()
    typer.echo(f"reelpick serving on http://{host}:{port}/#key={key}", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=10)
