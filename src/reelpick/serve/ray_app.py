"""The home page service on Ray Serve: N replicas of ``create_app(settings)`` behind Ray's HTTP
proxy, every replica logging to one PostgreSQL event log.

Each replica is a Ray actor that builds its own app at start-up (``serve.ingress`` with a late
``__serve_build_asgi_app__``, so nothing but the settings travels to it), runs the app's
lifespan (loads the model, opens its own :class:`~reelpick.serve.pgstore.PostgresEventStore`
with its own group-commit writer) and answers the requests the proxy routes to it. A 2xx from
any replica means what it logged is committed in PostgreSQL, so the durability guarantee of the
single process holds for the whole deployment; ``event_id`` stays idempotent across replicas
(one unique key), and a page served by one replica can be acted on through another. Ray's
health check calls :meth:`check_health`, which fails when the replica's log writer stopped, so
Ray replaces that replica.

Requires the ``ray`` extra (``ray[serve]``, ``psycopg``); ray is imported only by these
functions. Command line: ``reelpick serve --backend ray --replicas N``. See
``docs/distributed.md`` ("Serving on Ray").
"""

from __future__ import annotations

from typing import Any

from reelpick.serve.settings import Settings

APP_NAME = "reelpick"
DEPLOYMENT_NAME = "reelpick-homepage"


def _check(settings: Settings) -> None:
    if settings.event_log is None:
        raise ValueError("Ray Serve replicas need a shared event log: set REELPICK_EVENT_LOG "
                         "(or --event-log) to a postgresql:// URL")
    if settings.model_dir is None:
        raise ValueError("give every replica the same model directory (model_dir); "
                         "resolve the demo policy first (reelpick.cli.serve.demo_policy_dir)")


def build_app(settings: Settings, *, replicas: int = 2, num_cpus: float = 1.0,
              max_ongoing_requests: int = 64) -> Any:
    """The Ray Serve application: a deployment of ``replicas`` copies of
    ``create_app(settings)`` (``serve.run`` it). ``settings.event_log`` must name a PostgreSQL
    log and ``settings.model_dir`` a model directory every replica can read."""
    _check(settings)
    if replicas < 1:
        raise ValueError(f"replicas: must be >= 1, got {replicas}")
    from ray import serve

    @serve.ingress()
    class HomepageReplica:
        """One replica: the settings in, the app built in the replica's own process."""

        def __init__(self, settings: Settings) -> None:
            self.settings = settings

        def __serve_build_asgi_app__(self) -> Any:
            from reelpick.serve.app import create_app

            return create_app(self.settings)

        def check_health(self) -> None:
            app = getattr(self, "_asgi_app", None)
            state = getattr(getattr(app, "state", None), "service", None)
            if state is not None and not state.store.alive:
                raise RuntimeError("the event log writer of this replica stopped")

    # Any: ray's overloads read these keywords as the decorator form
    deployment: Any = serve.deployment(
        HomepageReplica, name=DEPLOYMENT_NAME, num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus}, max_ongoing_requests=max_ongoing_requests,
        health_check_period_s=5.0)
    return deployment.bind(settings)


def start(settings: Settings, *, replicas: int = 2, host: str = "127.0.0.1", port: int = 8000,
          num_cpus: float = 1.0, address: str | None = None,
          ray_init: dict[str, Any] | None = None) -> str:
    """Start (or join) Ray, start Serve's HTTP proxy on ``host:port`` and deploy
    :func:`build_app`; returns the base URL once every replica is up.

    ``address``: a running Ray cluster to join (``"auto"``, ``"ray://..."``); ``None`` starts a
    local one (``ray.init(address="local", **ray_init)``). Stop with :func:`stop`.
    """
    import ray
    from ray import serve

    app = build_app(settings, replicas=replicas, num_cpus=num_cpus)
    if not ray.is_initialized():
        opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        opts.update(ray_init or {})
        ray.init(address=address or "local", **opts)
    serve.start(http_options={"host": host, "port": port},
                logging_config={"log_level": "WARNING", "enable_access_log": False})
    serve.run(app, name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def stop(*, shutdown_ray: bool = True, app_only: bool = False) -> None:
    """Shut Serve down (replicas close their logs: queued jobs are committed) and, by
    default, Ray too (a joined cluster is only disconnected from). ``app_only``: delete just
    this application and leave Serve running (a shared cluster with other applications)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            if app_only:
                serve.delete(APP_NAME)
            else:
                serve.shutdown()
        finally:
            if shutdown_ray:
                ray.shutdown()
