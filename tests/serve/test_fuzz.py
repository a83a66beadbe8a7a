"""Schemathesis against the OpenAPI document of a real uvicorn on 127.0.0.1: generated valid and
invalid requests, never a 5xx, every 4xx a JSON body naming the field (see
:mod:`reelpick.testing.fuzz`)."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("schemathesis", reason="dev dependency: pip install -e '.[dev]'")

from reelpick.serve import create_app  # noqa: E402
from reelpick.testing.fuzz import fuzz  # noqa: E402
from tests.serve.conftest import API_KEY, LiveServer  # noqa: E402

RELOAD = "POST /v1/admin/reload"
#: composes a page per generated member: as few requests as the reloads
PRECOMPUTE = "POST /v1/admin/precompute"


def _run(make_settings, per_operation: int, reloads: int, seed: int) -> dict:
    app = create_app(make_settings(max_batch_events=50))
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        report = fuzz(client, app.openapi(), per_operation=per_operation, api_key=API_KEY,
                      seed=seed, limits={RELOAD: reloads, PRECOMPUTE: reloads})
        assert srv.state.store.alive and client.get("/healthz").status_code == 200
    summary = report.summary()
    print(summary)
    assert report.server_errors == 0, (summary, report.problems)
    assert report.n_problems == 0, report.problems
    return summary


def test_fuzz_quick(make_settings) -> None:
    """A few hundred generated requests (every operation, valid and invalid inputs)."""
    s = _run(make_settings, per_operation=40, reloads=5, seed=1)
    assert s["requests"] >= 300, s
    assert {"200", "404", "422"} <= set(s["statuses"]), s


@pytest.mark.slow
def test_fuzz_10k(make_settings) -> None:
    """The issue's target: >= 10,000 generated requests, 0 server errors."""
    s = _run(make_settings, per_operation=1_300, reloads=100, seed=2)
    assert s["requests"] >= 10_000, s
