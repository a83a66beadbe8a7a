"""The web page end to end in headless Chromium (Debian's package; no browser download)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from tests.serve.conftest import API_KEY, LiveServer

CHROMIUM = Path(os.environ.get("REELPICK_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def test_page_renders_rows_and_play_lands_in_the_log(live_server: LiveServer) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    shot = Path(tempfile.gettempdir()) / "reelpick-homepage.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{live_server.url}/#key={API_KEY}")
            page.wait_for_selector(".row .card img")
            rows = page.locator(".row")
            assert rows.count() == 4
            page.wait_for_function(
                "Array.from(document.querySelectorAll('.row:first-child img'))"
                ".every(i => i.complete && i.naturalWidth > 0)")
            first = page.locator(".card").first
            decision = first.get_attribute("data-decision")
            first.locator("button.play").click()
            page.wait_for_selector(".card button.play[data-state=logged]")
            first.locator("button.why").click()
            page.wait_for_selector("dialog#explain[open]")
            text = page.locator("#ex-body").inner_text()
            served = live_server.state.bundle
            assert "propensity" in text and "score" in text
            assert served.provider.name in text and served.version in text  # the page policy
            page.screenshot(path=str(shot), full_page=False)
            page.locator("#ex-close").click()
            page.wait_for_selector("dialog#explain", state="hidden")
            # an explored page (epsilon 0.3 of visits): its drawn titles have no ranker
            # score (null), and Explain still opens and says so
            for _ in range(40):
                if page.locator(".card .badge").count():
                    break
                page.click("#load")
                page.wait_for_function("!document.getElementById('status').textContent"
                                       ".startsWith('loading')")
            card = page.locator(".card:has(.badge)").first
            card.locator("button.why").click()
            page.wait_for_selector("dialog#explain[open]")
            text = page.locator("#ex-body").inner_text()
            assert "exploration" in text and "propensity" in text
            page.locator("#ex-close").click()
            # a new member gets a cold-start page
            page.fill("#member", "someone-new")
            page.click("#load")
            page.wait_for_function("document.getElementById('status').textContent"
                                   ".includes('cold-start')")
        finally:
            browser.close()
    conn = sqlite3.connect(live_server.state.settings.db_path)
    kinds = conn.execute("SELECT kind FROM events WHERE decision_id = ?", (decision,)).fetchall()
    conn.close()
    assert kinds == [("play",)]
    assert shot.stat().st_size > 10_000
