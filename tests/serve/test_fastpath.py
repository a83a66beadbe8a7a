"""``GET /v1/homepage`` without the framework (``HomepageFastPath``): which queries it takes,
that its answers equal the route's, batches of concurrent requests, and its error answers."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest

from reelpick.serve import create_app
from reelpick.serve.routers.homepage import parse_query
from reelpick.serve.store import EventStore, StoreClosedError
from tests.serve.conftest import LiveServer, TestClient


@pytest.mark.parametrize("raw, parsed", [
    (b"member=m1", ("m1", "web", None, None, None)),
    (b"member=m1&device=tv&hour=20&country=US&day_of_week=6", ("m1", "tv", "US", 20, 6)),
    (b"hour=0&member=a.b:c@d-e_f", ("a.b:c@d-e_f", "web", None, 0, None)),
])
def test_plain_queries_take_the_fast_path(raw: bytes, parsed: tuple[Any, ...]) -> None:
    assert parse_query(raw) == parsed


@pytest.mark.parametrize("raw", [
    b"", b"device=tv", b"member=m%31", b"member=m+1", b"member=m1&member=m2", b"member=",
    b"member=m1&", b"member=m1&&hour=2", b"member=m1&extra=1", b"member=m1&hour",
    b"member=m1&hour=24", b"member=m1&hour=07", b"member=m1&hour=-1", b"member=m1&hour=2.0",
    b"member=m1&day_of_week=7", b"member=m1&device=fridge", b"member=m/1",
    b"member=" + b"x" * 129, b"member=m1&country=U1", b"member=m1&country=" + b"A" * 17,
    b"member=m\xc3\xa9",
])
def test_anything_else_is_left_to_the_route(raw: bytes) -> None:
    assert parse_query(raw) is None


def _strip(page: dict[str, Any]) -> dict[str, Any]:
    """A page without what differs between two answers (ids, time)."""
    page = {**page, "page_id": None, "context": {**page["context"], "timestamp": None}}
    page["rows"] = [{**row, "items": [{**it, "decision_id": it["decision_id"].split("-")[1]}
                                      for it in row["items"]]} for row in page["rows"]]
    return page


def _pair(a: TestClient, b: TestClient, member: str) -> tuple[Any, Any]:
    """The same request by the fast path (plain query) on ``a`` and by the route (a
    percent-escaped query, which the fast path leaves to it) on ``b``."""
    return (a.get(f"/v1/homepage?member={member}&device=tv&hour=20&day_of_week=2"),
            b.get(f"/v1/homepage?member={member}&device=t%76&hour=20&day_of_week=2"))


def test_fast_path_and_route_answer_the_same(make_settings, greedy_model_dir) -> None:
    """A deterministic policy (no exploration, first images): the fast path and the route
    agree exactly, headers and metrics too."""
    with TestClient(create_app(make_settings(model_dir=greedy_model_dir))) as c:
        for member in ("m1", "m7", "nobody"):
            fast, route = _pair(c, c, member)
            assert fast.status_code == route.status_code == 200
            assert _strip(fast.json()) == _strip(route.json())
            for name in ("content-type", "cache-control", "content-length"):
                assert fast.headers[name] == route.headers[name]
        m = c.get("/metrics").text
        assert 'route="/v1/homepage",status="200"} 6.0' in m
        assert "reelpick_pages_served_total" in m and "reelpick_impressions_logged_total" in m


def test_fast_path_and_route_explore_alike_from_the_same_seed(make_settings) -> None:
    """The exploring policy: both ways compose with the service's one page generator, so two
    services seeded alike answer their k-th request with the same page (explored pages and
    drawn images included) whichever way it came in. (One service answers consecutive
    requests from successive draws of that generator: its pages differ, by design.)"""
    explored = 0
    with TestClient(create_app(make_settings())) as a, \
            TestClient(create_app(make_settings())) as b:
        for k in range(12):
            member = ("m1", "m7", "nobody")[k % 3]
            fast, route = _pair(a, b, member) if k % 2 else _pair(b, a, member)
            assert fast.status_code == route.status_code == 200
            assert _strip(fast.json()) == _strip(route.json()), k
            explored += any(it["explored"] for row in fast.json()["rows"] for it in row["items"])
    assert explored  # some of the compared pages explored (epsilon = 0.3)


def test_fast_path_errors_have_the_route_shape(client: TestClient) -> None:
    fast = client.get("/v1/homepage?member=m1&country=ZZ")
    route = client.get("/v1/homepage?member=m%31&country=ZZ")
    assert fast.status_code == route.status_code == 422
    assert fast.json() == route.json()
    assert fast.json()["detail"][0]["field"] == "query.country"


class _ClosedStore(EventStore):
    def submit_pages_async(self, pages: Any) -> Any:
        raise StoreClosedError("closed for the test")


def test_log_closed_is_503(make_settings, tmp_path) -> None:
    settings = make_settings()
    store = _ClosedStore(tmp_path / "closed.sqlite3")
    store.start()
    try:
        with TestClient(create_app(settings, store=store)) as c:
            r = c.get("/v1/homepage?member=m1")
            assert r.status_code == 503 and r.json()["detail"][0]["type"] == "unavailable"
    finally:
        store.close()


def test_concurrent_requests_are_composed_together_and_all_logged(live_server: LiveServer
                                                                  ) -> None:
    composed: list[int] = []
    provider = live_server.state.bundle.provider
    many = provider.compose_many

    def spy(requests: Any, rng: Any) -> Any:
        composed.append(len(requests))
        return many(requests, rng)

    provider.compose_many = spy  # instance attribute: this app's provider only

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as c:
            return await asyncio.gather(*(
                c.get(f"/v1/homepage?member=m{i % 7}&device=tv&hour=21") for i in range(40)))

    try:
        answers = asyncio.run(burst())
    finally:
        del provider.compose_many
    assert [r.status_code for r in answers] == [200] * 40
    pages = [r.json() for r in answers]
    ids = {p["page_id"] for p in pages}
    assert len(ids) == 40
    assert max(composed) > 1, composed  # some requests shared a pass
    conn = sqlite3.connect(live_server.state.settings.db_path)
    try:
        logged = dict(conn.execute("SELECT page_id, n_slots FROM pages").fetchall())
    finally:
        conn.close()
    for p in pages:
        assert logged[p["page_id"]] == sum(len(row["items"]) for row in p["rows"])


def _spaced_passes(make_settings, n: int, gap_s: float, **settings: Any) -> list[int]:
    """Sizes of the provider passes that compose ``n`` requests sent ``gap_s`` apart."""
    with LiveServer(create_app(make_settings(**settings))) as srv:
        provider = srv.state.bundle.provider
        many, passes = provider.compose_many, []

        def spy(requests: Any, rng: Any) -> Any:
            passes.append(len(requests))
            return many(requests, rng)

        provider.compose_many = spy

        async def spaced() -> list[int]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
                await c.get("/healthz")  # connections open before the timed requests

                async def one(i: int) -> int:
                    await asyncio.sleep(i * gap_s)
                    return (await c.get(f"/v1/homepage?member=m{i}&device=tv")).status_code

                return list(await asyncio.gather(*(one(i) for i in range(n))))

        try:
            assert asyncio.run(spaced()) == [200] * n
        finally:
            del provider.compose_many
        # /metrics counts every pass and its pages (one page alone goes by compose: a pass too)
        got = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
               for line in httpx.get(srv.url + "/metrics").text.splitlines()
               if line.startswith("reelpick_homepage_batch_pages_")}
        singles = n - sum(passes)
        assert got["reelpick_homepage_batch_pages_sum"] == n, got
        assert got["reelpick_homepage_batch_pages_count"] == len(passes) + singles, got
    return passes


def test_requests_within_the_batch_wait_are_composed_in_one_pass(make_settings) -> None:
    """Dynamic batching: requests arriving within ``batch_wait_ms`` of the first share one pass
    of the policy; without a wait, requests that arrive apart are composed one by one; a batch
    of ``batch_max`` runs without waiting for the deadline."""
    assert _spaced_passes(make_settings, 4, 0.015, batch_wait_ms=100.0) == [4]
    assert _spaced_passes(make_settings, 4, 0.15, batch_wait_ms=0.0) == [1, 1, 1, 1]
    passes = _spaced_passes(make_settings, 6, 0.0, batch_wait_ms=100.0, batch_max=2)
    assert sum(passes) == 6 and max(passes) <= 2, passes
