"""The nearline job: members and contexts picked from the served log, and ``reelpick
precompute`` against a real uvicorn: the pages asked for afterwards are the remembered ones."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.serve.export import export_logs
from reelpick.serve.nearline import PrecomputeError, likely_contexts, precompute
from tests.serve.conftest import API_KEY, LiveServer

runner = CliRunner()


def _impressions() -> pd.DataFrame:
    day = 86_400
    rows = [  # (page, member, timestamp, device, country); two slots for page p1
        ("p1", "a", 10 * day, "tv", "US"), ("p1", "a", 10 * day, "tv", "US"),
        ("p2", "a", 11 * day, "mobile", "US"), ("p3", "a", 12 * day, "mobile", "US"),
        ("p4", "a", 12 * day + 5, "tv", "US"),
        ("p5", "b", 12 * day, "web", "DE"), ("p6", "b", 12 * day + 9, "tv", "DE"),
        ("p7", "c", 1 * day, "tv", "GB"),                  # outside a 7-day window
        ("p8", "d", 12 * day, None, "US")]                 # no device: not precomputable
    return pd.DataFrame(rows, columns=["page_id", "member_id", "timestamp", "device", "country"])


def test_likely_contexts_most_pages_then_latest_within_the_window() -> None:
    out = likely_contexts(_impressions(), days=7)
    # a: tv 2 pages (p1 once, p4), mobile 2 -> tie broken by the latest (tv at 12d + 5)
    # b: web 1, tv 1 -> the latest (tv); c: outside the window; d: no device
    assert out.to_dict("records") == [
        {"member_id": "a", "device": "tv", "country": "US", "pages": 4},
        {"member_id": "b", "device": "tv", "country": "DE", "pages": 2}]
    assert likely_contexts(_impressions(), days=30)["member_id"].tolist() == ["a", "b", "c"]
    assert likely_contexts(_impressions(), days=7, top=1)["member_id"].tolist() == ["a"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['device'\]"):
        likely_contexts(_impressions().drop(columns="device"))
    with pytest.raises(ValueError, match="days: must be > 0"):
        likely_contexts(_impressions(), days=0)


def test_reelpick_precompute_from_the_served_log(make_settings, tmp_path) -> None:
    """Serve pages, export the log, run ``reelpick precompute --logs`` for a given hour: each
    member's later page in that hour on their device is a cache hit, not composed again."""
    from reelpick.serve import create_app

    at = int(time.time()) // 3600 * 3600 + 120   # one hour bucket for every request below
    visits = [("m1", "tv"), ("m2", "tv"), ("m2", "tv"), ("m3", "mobile"), ("m4", "web")]
    with LiveServer(create_app(make_settings())) as srv, httpx.Client(base_url=srv.url) as c:
        for member, device in visits:
            assert c.get("/v1/homepage", params={"member": member, "device": device,
                                                 "at": at - 7_200}).status_code == 200
        export_logs(srv.state.settings.db_path, tmp_path / "served")
        r = runner.invoke(app, ["precompute", "--url", srv.url, "--api-key", API_KEY,
                                "--logs", str(tmp_path / "served"), "--at", str(at)])
        assert r.exit_code == 0, r.output
        assert "4 pages asked for" in r.output and "4 composed" in r.output
        info = srv.state.bundle.provider.cache_info
        before = info()
        for member, device in {(m, d) for m, d in visits}:
            assert c.get("/v1/homepage", params={"member": member, "device": device,
                                                 "at": at}).status_code == 200
        after = info()
        assert after["misses"] == before["misses"], (before, after)
        assert after["hits"] == before["hits"] + 4
        # --members: a given list, on one device
        r = runner.invoke(app, ["precompute", "--url", srv.url, "--api-key", API_KEY,
                                "--members", "m7,m8", "--device", "tv", "--at", str(at),
                                "--chunk", "1"])
        assert r.exit_code == 0 and "2 pages asked for in 2 request(s)" in r.output, r.output
        # refusals name the cause
        r = runner.invoke(app, ["precompute", "--url", srv.url, "--api-key", "wrong",
                                "--members", "m1"])
        assert r.exit_code == 2 and "403" in r.output and "wrong API key" in r.output
        r = runner.invoke(app, ["precompute", "--url", srv.url, "--api-key", API_KEY,
                                "--members", "m1", "--country", "XX"])
        assert r.exit_code == 2 and "unknown country 'XX'" in r.output, r.output
    r = runner.invoke(app, ["precompute", "--url", srv.url, "--members", "m1"])
    assert r.exit_code == 2 and "error:" in r.output                  # nobody listening now
    r = runner.invoke(app, ["precompute", "--url", srv.url])
    assert r.exit_code == 2 and "exactly one of --logs" in r.output
    r = runner.invoke(app, ["precompute", "--url", srv.url, "--logs", str(tmp_path)])
    assert r.exit_code == 2 and "no impressions.parquet" in r.output
    with pytest.raises(PrecomputeError, match="precompute"):
        precompute(srv.url, API_KEY, pd.DataFrame({"member_id": ["m1"], "device": ["tv"],
                                                   "country": ["US"]}), timeout=2)


def test_reelpick_precompute_into_the_page_store_is_served_by_the_service(
        make_settings, model_dir, tmp_path) -> None:
    """``reelpick precompute --model-dir --store`` composes in its own process; a real
    uvicorn serving that model directory with that page store then serves those pages from
    the store (no page composed on request), and refusals name their cause."""
    from reelpick.serve import create_app

    at = int(time.time()) // 3600 * 3600 + 300
    store = tmp_path / "shared" / "pages.sqlite3"
    r = runner.invoke(app, ["precompute", "--model-dir", str(model_dir), "--store", str(store),
                            "--members", "m1,m2,m3", "--device", "tv", "--at", str(at)])
    assert r.exit_code == 0, r.output
    assert "3 pages: 3 composed into" in r.output
    with LiveServer(create_app(make_settings(page_store=store))) as srv, \
            httpx.Client(base_url=srv.url) as c:
        info = srv.state.bundle.provider.cache_info
        before = info()
        for m in ("m1", "m2", "m3"):
            assert c.get("/v1/homepage", params={"member": m, "device": "tv",
                                                 "at": at}).status_code == 200
        after = info()
        assert after["misses"] == before["misses"], (before, after)
        assert after["stored"] == before["stored"] + 3
    r = runner.invoke(app, ["precompute", "--model-dir", str(model_dir), "--members", "m1"])
    assert r.exit_code == 2 and "give --store" in r.output
    r = runner.invoke(app, ["precompute", "--model-dir", str(tmp_path), "--store", str(store),
                            "--members", "m1"])
    assert r.exit_code == 2 and "manifest" in r.output, r.output
    r = runner.invoke(app, ["precompute", "--model-dir", str(model_dir), "--store", str(store),
                            "--members", "m1", "--country", "XX"])
    assert r.exit_code == 2 and "unknown country 'XX'" in r.output, r.output
    r = runner.invoke(app, ["precompute", "--members", "m1"])
    assert r.exit_code == 2 and "exactly one of --url" in r.output


def test_precompute_into_store_keeps_written_chunks_and_closes_the_store_on_error(
        model_dir, tmp_path, monkeypatch) -> None:
    """A failure part-way (an unknown country in the second chunk) raises PrecomputeError
    naming the member; the first chunk's pages stay in the store and the file is closed."""
    from reelpick.page.store import PageStore
    from reelpick.serve.nearline import precompute_into_store

    closed: list[bool] = []
    close = PageStore.close

    def spy(self: PageStore) -> None:
        closed.append(True)
        close(self)

    monkeypatch.setattr(PageStore, "close", spy)
    contexts = pd.DataFrame({"member_id": ["m1", "m2", "m3"], "device": ["tv"] * 3,
                             "country": ["US", "US", "XX"]})
    store = tmp_path / "pages.sqlite3"
    with pytest.raises(PrecomputeError, match="member 'm3'.*unknown country 'XX'"):
        precompute_into_store(model_dir, store, contexts, chunk=2)
    assert closed == [True]
    monkeypatch.undo()
    pages = PageStore(store)
    try:
        assert sum(pages.versions().values()) == 2
    finally:
        pages.close()
