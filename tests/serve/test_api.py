"""The HTTP API in process (TestClient): shapes, logging, idempotency, validation, API keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reelpick.serve import create_app
from reelpick.serve.model_dir import read_manifest
from reelpick.serve.schemas import HomepageOut
from tests.serve.conftest import API_KEY, TestClient

KEY = {"X-API-Key": API_KEY}


def homepage(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/homepage", params={"member": "m1", "device": "tv", "hour": 20, **params})
    assert r.status_code == 200, r.text
    return r.json()


def slots(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for row in page["rows"] for it in row["items"]]


def test_homepage_shape_and_propensities(client: TestClient) -> None:
    page = homepage(client)
    HomepageOut.model_validate(page)  # the pre-serialised answer matches the documented model
    assert page["member"] == "m1" and not page["cold_start"]
    assert len(page["rows"]) == 4
    items = slots(page)
    assert len(items) == 24 and len({i["title_id"] for i in items}) == 24
    for it in items:
        assert 0 < it["propensity"] <= 1 and 0 < it["artwork_propensity"] <= 1
        assert it["decision_id"].startswith(page["page_id"] + "-")
        assert it["artwork_url"] == f"/v1/artwork/{it['artwork_id']}"
    # the published page policy's own name and version (tests.serve.conftest)
    manifest = read_manifest(client.app.state.service.settings.model_dir)
    assert page["policy"] == manifest["name"] == "test-policy"
    assert page["model_version"] == manifest["version"]


def test_unknown_member_gets_cold_start_page(client: TestClient) -> None:
    page = homepage(client, member="brand-new-member", country="GB")
    assert page["cold_start"] and page["context"]["country"] == "GB"
    assert len(slots(page)) == 24


def test_every_served_slot_is_logged(client: TestClient, settings) -> None:
    pages = [homepage(client, member=f"m{i}") for i in range(5)]
    conn = sqlite3.connect(settings.db_path)
    rows = dict(conn.execute("SELECT page_id, n_slots FROM pages").fetchall())
    conn.close()
    for p in pages:
        assert rows[p["page_id"]] == len(slots(p))


def test_events_acknowledged_and_idempotent(client: TestClient) -> None:
    items = slots(homepage(client))
    body = {"events": [
        {"event_id": "e-1", "decision_id": items[0]["decision_id"], "kind": "impression"},
        {"event_id": "e-2", "decision_id": items[0]["decision_id"], "kind": "play"},
        {"event_id": "e-3", "decision_id": items[0]["decision_id"], "kind": "watch",
         "watch_seconds": 120.5, "timestamp": 1_800_000_000}]}
    r = client.post("/v1/events", json=body, headers=KEY)
    assert r.status_code == 200 and r.json() == {"received": 3, "accepted": 3, "duplicates": 0}
    r = client.post("/v1/events", json=body, headers=KEY)
    assert r.json() == {"received": 3, "accepted": 0, "duplicates": 3}


def _event(**kw: Any) -> dict[str, Any]:
    return {"event_id": "e", "decision_id": "DECISION", "kind": "play", **kw}


BAD_EVENTS = [
    # (body, status, field)
    ({"events": [_event(extra=1)]}, 422, "events[0].extra"),
    ({"events": [_event()], "more": 1}, 422, "more"),
    ({"events": [_event(kind="buy")]}, 422, "events[0].kind"),
    ({"events": [_event(watch_seconds="10")]}, 422, "events[0].watch_seconds"),
    ({"events": [_event(watch_seconds=-1)]}, 422, "events[0].watch_seconds"),
    ({"events": [_event(watch_seconds=1e12)]}, 422, "events[0].watch_seconds"),
    ({"events": [_event(kind="impression", watch_seconds=3)]}, 422, "events[0].watch_seconds"),
    ({"events": [_event(timestamp=-5)]}, 422, "events[0].timestamp"),
    ({"events": [_event(timestamp=1.5)]}, 422, "events[0].timestamp"),
    ({"events": [_event(event_id="")]}, 422, "events[0].event_id"),
    ({"events": [_event(event_id="x" * 200)]}, 422, "events[0].event_id"),
    ({"events": [_event(event_id="a b")]}, 422, "events[0].event_id"),
    ({"events": [_event(decision_id=5)]}, 422, "events[0].decision_id"),
    ({"events": [_event(decision_id="nope-1")]}, 422, "events[0].decision_id"),
    ({"events": [_event(), _event(event_id="f", decision_id="DECISION-99")]}, 422,
     "events[1].decision_id"),
    ({"events": []}, 422, "events"),
    ({"events": [_event(event_id=f"e{i}") for i in range(11)]}, 422, "events"),
    ({"events": "x"}, 422, "events"),
    ({}, 422, "events"),
    ([], 422, "body"),
]


@pytest.mark.parametrize("body,status,field", BAD_EVENTS)
def test_bad_events_get_4xx_naming_the_field(make_settings, body, status, field) -> None:
    with TestClient(create_app(make_settings(max_batch_events=10))) as client:
        decision = slots(homepage(client))[0]["decision_id"]
        body = _replace(body, "DECISION", decision)
        r = client.post("/v1/events", json=body, headers=KEY)
        assert r.status_code == status, r.text
        fields = [d["field"] for d in r.json()["detail"]]
        assert field in fields, fields
        # nothing of a rejected batch is logged
        ok = client.post("/v1/events", json={"events": [_event(
            event_id="e", decision_id=decision)]}, headers=KEY)
        assert ok.json()["accepted"] == 1


def _replace(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_replace(x, old, new) for x in obj]
    if isinstance(obj, dict):
        return {k: _replace(v, old, new) for k, v in obj.items()}
    return obj


@pytest.mark.parametrize("content,status", [
    (b"{not json", 422), (b"x" * 2_000_000, 413), (b"", 422)])
def test_raw_bodies(client: TestClient, content: bytes, status: int) -> None:
    r = client.post("/v1/events", content=content,
                    headers={**KEY, "content-type": "application/json"})
    assert r.status_code == status
    assert r.json()["detail"][0]["field"] == "body"


def test_chunked_oversized_body_is_413(client: TestClient) -> None:
    def gen():
        for _ in range(40):
            yield b" " * 65_536

    r = client.post("/v1/events", content=gen(), headers={**KEY,
                                                          "content-type": "application/json"})
    assert r.status_code == 413


BAD_QUERIES = [
    ({"hour": 24}, "query.hour"), ({"hour": -1}, "query.hour"), ({"hour": "noon"}, "query.hour"),
    ({"day_of_week": 7}, "query.day_of_week"), ({"device": "fridge"}, "query.device"),
    ({"country": "ZZ"}, "query.country"), ({"country": "1!"}, "query.country"),
    ({"member": ""}, "query.member"), ({"member": "a/b"}, "query.member"),
    ({"member": "x" * 300}, "query.member"), ({"colour": "red"}, "query.colour"),
]


@pytest.mark.parametrize("params,field", BAD_QUERIES)
def test_bad_homepage_queries(client: TestClient, params: dict[str, Any], field: str) -> None:
    r = client.get("/v1/homepage", params={"member": "m1", **params})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]]


def test_missing_member_is_422(client: TestClient) -> None:
    r = client.get("/v1/homepage")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.member"


@pytest.mark.parametrize("headers,status", [({}, 401), ({"X-API-Key": "wrong"}, 403)])
def test_api_key_required(client: TestClient, headers: dict[str, str], status: int) -> None:
    d = slots(homepage(client))[0]["decision_id"]
    r = client.post("/v1/events", json={"events": [_event(decision_id=d)]}, headers=headers)
    assert r.status_code == status and r.json()["detail"][0]["field"] == "header.X-API-Key"
    r = client.post("/v1/admin/reload", headers=headers)
    assert r.status_code == status


def test_precompute_composes_pages_ahead_and_the_page_served_is_the_remembered_one(
        client: TestClient) -> None:
    """POST /v1/admin/precompute composes the members' pages for a context and hour; the
    homepage asked for later in that context is the remembered page (no miss), and bad
    bodies get 4xx with the field named."""
    body = {"members": ["m1", "m2", "m3", "newcomer"], "device": "tv", "hour": 20,
            "day_of_week": 2}
    r = client.post("/v1/admin/precompute", json=body, headers=KEY)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["pages"] == 4 and out["composed"] == 4 and out["cached"] >= 4
    again = client.post("/v1/admin/precompute", json=body, headers=KEY).json()
    assert again["composed"] == 0
    info = client.app.state.service.bundle.provider.cache_info
    before = info()
    for m in ("m1", "m2", "m3", "newcomer"):
        homepage(client, member=m, hour=20, day_of_week=2)
    after = info()
    assert after["misses"] == before["misses"] and after["hits"] == before["hits"] + 4
    metrics = client.get("/metrics").text
    assert "reelpick_pages_precomputed_total 4.0" in metrics
    assert 'reelpick_page_cache{what="hits"}' in metrics
    for bad, field in (({**body, "country": "XX"}, "country"),
                       ({**body, "members": []}, "members"),
                       ({**body, "hour": 24}, "hour"),
                       ({**body, "device": "fridge"}, "device"),
                       ({**body, "extra": 1}, "extra")):
        r = client.post("/v1/admin/precompute", json=bad, headers=KEY)
        assert r.status_code == 422 and field in [d["field"] for d in r.json()["detail"]], \
            r.text
    assert client.post("/v1/admin/precompute", json=body).status_code == 401
    assert client.post("/v1/admin/precompute", json=body,
                       headers={"X-API-Key": "wrong"}).status_code == 403


def test_pages_precomputed_by_another_process_are_served_from_the_page_store(
        client: TestClient) -> None:
    """Pages composed into the service's page store by another process (the nearline job,
    another worker) are served from it: no page composed on request, the stored hits on
    /metrics, and the pages those the service composes itself."""
    from reelpick.page import PagePolicy
    from reelpick.page.store import PageStore
    from reelpick.serve.policy_provider import PagePolicyProvider
    from reelpick.serve.provider import PageContext

    state = client.app.state.service
    settings = state.settings
    policy_dir = Path(settings.model_dir) / state.bundle.manifest["path"]
    job = PagePolicyProvider.from_dir(policy_dir)          # another process's copy
    members = ["m4", "m5", "m6", "stranger"]
    at = 1_900_000_000
    ctx = PageContext("mobile", "US", 9, 5, at)
    store = PageStore(settings.page_store_path)
    assert job.precompute([(m, ctx) for m in members], store=store) == 4
    assert set(store.versions()) == {PagePolicy.load(policy_dir).version}  # one per key
    info = state.bundle.provider.cache_info
    before = info()
    for m in members:
        homepage(client, member=m, device="mobile", country="US", hour=9, day_of_week=5,
                 at=at)
    after = info()
    assert after["misses"] == before["misses"]
    stored = sum(store.versions().values())    # unknown members share the cold-start key
    assert after["stored"] == before["stored"] + stored and stored >= 3
    assert f'reelpick_page_cache{{what="stored"}} {after["stored"]:.1f}' in \
        client.get("/metrics").text


def test_precompute_deletes_the_page_stores_pages_of_past_hours(client: TestClient) -> None:
    """POST /v1/admin/precompute deletes the store's pages of hours before the one it
    composes for (of any version), keeps those of that hour, and says how many it deleted."""
    import numpy as np

    from reelpick.page.store import PageStore, StoredPage

    at = 1_900_000_000
    store = PageStore(client.app.state.service.settings.page_store_path)
    page = {"titles": np.array([0, 1]), "probs": None}
    store.put("old-version", [StoredPage(b"past", at // 3600 - 2, **page)])
    store.put("old-version", [StoredPage(b"now", at // 3600, **page)])
    body = {"members": ["m1", "m2"], "device": "tv", "hour": 20, "day_of_week": 2, "at": at}
    r = client.post("/v1/admin/precompute", json=body, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json()["pruned"] == 1
    assert store.get("old-version", [b"past", b"now"]).keys() == {b"now"}
    assert client.post("/v1/admin/precompute", json=body, headers=KEY).json()["pruned"] == 0
    store.close()


def test_writes_disabled_without_a_configured_key(make_settings) -> None:
    with TestClient(create_app(make_settings(api_key=None))) as c:
        r = c.post("/v1/events", json={"events": [_event()]}, headers={"X-API-Key": ""})
        assert r.status_code == 403


def test_separate_admin_key(make_settings) -> None:
    with TestClient(create_app(make_settings(admin_key="admin-k"))) as c:
        assert c.post("/v1/admin/reload", headers=KEY).status_code == 403
        r = c.post("/v1/admin/reload", headers={"X-API-Key": "admin-k"})
        assert r.status_code == 200 and r.json()["model_version"]


def test_titles_and_artwork(client: TestClient) -> None:
    item = slots(homepage(client))[0]
    t = client.get(f"/v1/titles/{item['title_id']}").json()
    assert t["name"] == item["name"] and t["artworks"]
    r = client.get(item["artwork_url"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in r.text
    assert client.get("/v1/titles/nope").json()["detail"][0]["field"] == "path.title_id"
    assert client.get("/v1/artwork/nope").status_code == 404
    assert client.get("/v1/titles/a%20b").status_code == 422


def test_artwork_file_is_served_when_present(make_settings, tmp_path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    (art / "t0-a0.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    with TestClient(create_app(make_settings(artwork_dir=art))) as c:
        r = c.get("/v1/artwork/t0-a0")
        assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")


def test_health_metrics_openapi_and_page(client: TestClient) -> None:
    homepage(client)
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["log"]["integrity"] == "ok"
    m = client.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    assert 'reelpick_http_requests_total{method="GET",route="/v1/homepage",status="200"}' in m.text
    assert "reelpick_impressions_logged_total 24.0" in m.text
    spec = client.get("/openapi.json").json()
    assert {"/v1/homepage", "/v1/events", "/v1/titles/{title_id}", "/v1/admin/reload",
            "/healthz", "/metrics"} <= set(spec["paths"])
    assert client.get("/").text.lstrip().startswith("<!doctype html>")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/nowhere").json()["detail"][0]["field"] == "path"


def test_seeded_pages_are_reproducible(make_settings) -> None:
    def titles() -> list[str]:
        with TestClient(create_app(make_settings(seed=5))) as c:
            return [i["title_id"] for i in slots(homepage(c, member="m2"))]
    assert titles() == titles()


def test_undecodable_body_is_400_naming_the_body(client: TestClient) -> None:
    """Found by schemathesis: bytes that are not UTF-8 under a JSON content type."""
    r = client.post("/v1/events", content=b"\xad)@\xeb,\xae\x91",
                    headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "body"


def test_homepage_openapi_documents_the_response_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/v1/homepage"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/HomepageOut")
