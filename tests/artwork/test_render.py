"""Rendered artwork: valid XML, shows the title and the theme, differs by variant; files for
the service are named by artwork id."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from reelpick.artwork import render_artwork, write_artwork_images
from reelpick.data.schema import THEMES

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("theme", THEMES)
def test_svg_is_valid_and_shows_title_and_theme(theme):
    svg = render_artwork("Tom & Jerry <3>", theme, quality=-1.2, variant=3)
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    texts = " ".join(t.text or "" for t in root.iter(f"{NS}text"))
    assert "Tom & Jerry" in texts
    assert theme.replace("_", " ") in texts
    assert root.find(f"{NS}title") is not None


def test_variants_and_quality_change_the_picture():
    a = render_artwork("The Last Signal", "romance", 0.0, 0)
    b = render_artwork("The Last Signal", "romance", 0.0, 1)
    c = render_artwork("The Last Signal", "romance", 2.0, 0)
    assert len({a, b, c}) == 3
    assert render_artwork("The Last Signal", "romance", 0.0, 0) == a   # deterministic


def test_write_artwork_images(world, tmp_path):
    arts = world.artworks().head(12)
    paths = write_artwork_images(arts, world.titles(), tmp_path / "art")
    assert sorted(paths) == sorted(arts["artwork_id"])
    names = dict(zip(world.titles()["title_id"], world.titles()["name"]))
    for aid, tid, theme in zip(arts["artwork_id"], arts["title_id"], arts["theme"]):
        path = tmp_path / "art" / f"{aid}.svg"
        assert paths[aid] == path
        svg = path.read_text()
        ET.fromstring(svg)
        assert names[tid] in svg and theme.replace("_", " ") in svg


def test_service_finds_the_written_images(world, tmp_path):
    """The service's lookup (``artwork_dir``) serves these files when present."""
    serve = pytest.importorskip("reelpick.serve.routers.titles")
    arts = world.artworks().head(2)
    write_artwork_images(arts, world.titles(), tmp_path)
    found = serve.find_image(tmp_path, arts["artwork_id"].iloc[0])
    assert found is not None and found[1] == "image/svg+xml"
