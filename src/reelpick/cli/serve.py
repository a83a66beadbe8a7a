"""``reelpick serve``: run the home page service with uvicorn on one process, or on Ray Serve.

Settings come from ``REELPICK_*`` environment variables (``docs/serve.md``); the options here
override them. Without an API key a random one is made and printed with the page's URL.

Example: ``reelpick serve --model-dir runs/model --data-dir runs/data --port 8000``, or N
replicas on Ray logging to PostgreSQL: ``reelpick serve --backend ray --replicas 2
--event-log postgresql://user@host/db`` (``docs/distributed.md``).
"""

from __future__ import annotations

import secrets
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from reelpick.cli._common import fail


class Backend(str, Enum):
    uvicorn = "uvicorn"
    ray = "ray"


def serve(
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", help="Model directory from `reelpick promote` (default: a demo page "
        "policy trained on a simulated world's logs, built once in DATA_DIR/demo-model).",
        file_okay=False)] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder of the event log.", file_okay=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
    event_log: Annotated[str | None, typer.Option(
        "--event-log", help="Log to PostgreSQL at this postgresql:// URL instead of "
        "DATA_DIR/events.sqlite3 (REELPICK_EVENT_LOG).")] = None,
    backend: Annotated[Backend, typer.Option(
        "--backend", help="uvicorn: one process; ray: Ray Serve replicas behind Ray's HTTP "
        "proxy (needs the ray extra and a PostgreSQL --event-log).")] = Backend.uvicorn,
    replicas: Annotated[int, typer.Option("--replicas", min=1, max=256,
                                          help="Ray Serve replicas (--backend ray).")] = 2,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Join this Ray cluster (e.g. auto); default: start a local "
        "one.")] = None,
    replica_cpus: Annotated[float, typer.Option(
        "--replica-cpus", min=0.0, help="CPUs Ray reserves per replica.")] = 1.0,
) -> None:
    """Serve home pages, events, artwork, metrics and the web page."""
    from pydantic import SecretStr, ValidationError

    from reelpick.serve import Settings

    overrides: dict[str, Any] = {}
    if model_dir is not None:
        overrides["model_dir"] = model_dir
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if event_log is not None:
        overrides["event_log"] = event_log
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
    if settings.model_dir is None:  # the demo policy, built once here (for every replica)
        settings = settings.model_copy(update={"model_dir": demo_policy_dir(settings).resolve()})
    if backend is Backend.ray:
        _serve_ray(settings, host=host, port=port, replicas=replicas, address=ray_address,
                   replica_cpus=replica_cpus, key=key)
        return
    import uvicorn

    from reelpick.serve import create_app

    typer.echo(f"reelpick serving on http://{host}:{port}/#key={key}", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=10)


def _serve_ray(settings: Any, *, host: str, port: int, replicas: int, address: str | None,
               replica_cpus: float, key: str) -> None:
    """Deploy ``replicas`` replicas on Ray Serve and block until Ctrl-C."""
    import time

    if settings.event_log is None:
        fail("--backend ray: replicas need a shared log; give --event-log postgresql://... "
             "(or set REELPICK_EVENT_LOG)")
        return
    try:
        from reelpick.serve import ray_app
    except ImportError as exc:  # pragma: no cover - the ray extra is missing
        fail(f"--backend ray needs the ray extra (pip install -e '.[ray]'): {exc}")
        return
    error: Exception | None = None
    try:
        url = ray_app.start(settings, replicas=replicas, host=host, port=port,
                            num_cpus=replica_cpus, address=address)
        typer.echo(f"reelpick serving {replicas} Ray Serve replicas on {url}/#key={key} "
                   "(Ctrl-C stops)", err=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:  # Ctrl-C, also while deploying: stop cleanly, exit 0
        pass
    except Exception as exc:  # noqa: BLE001 - Ray start-up or deployment failed
        error = exc
    finally:
        # replicas close their logs (queued jobs commit); a local Ray stops, a joined cluster
        # keeps its Serve instance and other applications
        ray_app.stop(app_only=address is not None)
    if error is not None:
        fail(f"Ray Serve did not start: {error}")


#: Visits of the simulated log the demo policy learns from.
DEMO_VISITS = 4_000


def demo_policy_dir(settings: Any) -> Path:
    """A model directory serving a :class:`~reelpick.page.PagePolicy` trained on
    ``DEMO_VISITS`` simulated visits of the ``settings.demo_preset`` world (seed 0), logged by
    an exploring popularity policy; built once under ``data_dir/demo-model``. The simulator
    runs here, in the command, never in the service."""
    out = Path(settings.data_dir) / "demo-model"
    if (out / "manifest.json").exists():
        return out
    from reelpick.page import PagePolicyConfig, train_page_policy
    from reelpick.policies import PopularPolicy
    from reelpick.serve.model_dir import publish_policy
    from reelpick.world import World, WorldConfig

    typer.echo(f"no --model-dir: building a demo policy in {out} (once)", err=True)
    world = World(WorldConfig.preset(settings.demo_preset), seed=0)
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), DEMO_VISITS)
    cfg = PagePolicyConfig(n_rows=world.config.page_rows,
                           n_positions=world.config.page_positions,
                           epsilon=settings.demo_epsilon)
    policy = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
                               artworks=world.artworks(), interactions=log.interactions(),
                               config=cfg, name="demo")
    with tempfile.TemporaryDirectory(prefix="reelpick-demo-") as tmp:
        publish_policy(out, policy.save(Path(tmp) / "policy"))  # copied into out/versions/
    return out
