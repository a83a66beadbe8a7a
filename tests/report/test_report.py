"""The report is a pure function of the results object: render it from a stored fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reelpick.report import markdown_summary, render_html, report_from_json, write_report

FIXTURE = Path(__file__).parent / "data" / "results.json"
CHROMIUM = Path(os.environ.get("REELPICK_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def results():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return write_report(results, tmp_path_factory.mktemp("report"))


def test_report_holds_every_section_and_number(results, report):
    text = report.read_text()
    assert text.startswith("<!doctype html>") and "http" not in text.split("<body>")[1][:2000]
    n_plots = 3 + len(results["releases"])
    assert text.count('<img class="plot"') == n_plots
    # one tick per release, on its shipped candidate, and the summary names what shipped
    assert text.count("✔") == len(results["releases"])
    for rel in results["releases"]:
        assert f"<td>{rel['shipped']} ✔</td>" in text
        assert f"<b>{rel['shipped']}</b> shipped." in text
        for c in rel["candidates"]:
            assert c["name"] in text
            assert f"{c['online']['plays']['value']:.3f}" in text
    # the results object travels with the report, unchanged
    assert json.loads((report.parent / "results.json").read_text()) == results


def test_render_is_a_pure_function(results, report, tmp_path):
    again = report_from_json(report.parent / "results.json", tmp_path)
    assert again.read_text() == report.read_text() == render_html(results)


def test_markdown_has_the_same_numbers(results):
    md = markdown_summary(results)
    rel = results["releases"][-1]
    for c in rel["candidates"]:
        assert f"{c['offline']['dr']['value']:.3f}" in md


def test_report_in_headless_chromium(report):
    """Every plot loads (naturalWidth > 0) and every table has rows, in a real browser."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); not downloading one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            imgs = page.eval_on_selector_all(
                "img.plot", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            tables = page.eval_on_selector_all(
                "table", "els => els.map(t => t.querySelectorAll('tbody tr').length)")
            cells = page.eval_on_selector_all(
                "tbody td", "els => els.filter(e => e.innerText.trim() === '').length")
        finally:
            browser.close()
    assert len(imgs) >= 4 and all(c and w > 0 and h > 0 for c, w, h in imgs), imgs
    assert len(tables) >= 5 and all(n > 0 for n in tables), tables
    assert cells == 0
