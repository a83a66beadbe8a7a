"""The model directory the service loads: page policies published by ``reelpick promote``,
swapped atomically.

Layout (no pickle anywhere)::

    MODEL_DIR/manifest.json     {"format": 1, "kind": "reelpick.page-policy", "version": V,
                                 "path": "versions/V", ...}
    MODEL_DIR/versions/V/       a saved :class:`reelpick.page.PagePolicy` (policy.json,
                                catalog.json, sources, ranker, artwork bandit)

:func:`publish_policy` copies a saved policy to a new ``versions/V`` folder and then replaces
``manifest.json`` with ``os.replace`` (atomic), so a service reloading at any moment reads
either the old or the new policy, never a mix. The two newest versions are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

FORMAT = 1
MANIFEST = "manifest.json"
KEEP_VERSIONS = 2
#: ``kind`` of a manifest whose versions are saved :class:`reelpick.page.PagePolicy` folders
POLICY_KIND = "reelpick.page-policy"


def read_logs(logs: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a ``reelpick simulate`` folder (or any folder with the same files):
    ``interactions`` and ``titles`` required, ``members`` and ``artworks`` optional. A folder
    without ``interactions.parquet`` is read as a dataset (MovieLens in either layout, or
    ``interactions.csv`` with optional ``titles``/``members``): see
    :func:`reelpick.data.loaders.load_dataset`."""
    logs = Path(logs)
    if not (logs / "interactions.parquet").exists():
        from reelpick.data.loaders import load_dataset

        ds = load_dataset(logs)
        titles = ds.titles if ds.titles is not None else pd.DataFrame(
            {"title_id": pd.unique(ds.interactions["title_id"])})
        tables = {"interactions": ds.interactions, "titles": titles}
        if ds.members is not None:
            tables["members"] = ds.members
        return tables
    out: dict[str, pd.DataFrame] = {}
    for name in ("interactions", "titles", "members", "artworks"):
        path = logs / f"{name}.parquet"
        if path.exists():
            out[name] = pd.read_parquet(path)
        elif name in ("interactions", "titles"):
            raise FileNotFoundError(f"{path}: missing (expected the output of reelpick simulate)")
    return out


def publish_policy(out: str | Path, policy_dir: str | Path, *, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Publish the saved page policy ``policy_dir`` (:meth:`reelpick.page.PagePolicy.save`) as
    the current version of model directory ``out``: copied to ``versions/<its version>``, then
    ``manifest.json`` replaced atomically, so a service reloading at any moment reads the old
    or the new policy, never a mix. ``extra`` (e.g. the promotion decision) joins the
    manifest. Returns the manifest."""
    src = Path(policy_dir)
    try:
        header = json.loads((src / "policy.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{src / 'policy.json'}: not a saved page policy ({exc})") from None
    if header.get("kind") != POLICY_KIND:
        raise ValueError(f"{src / 'policy.json'}: kind {header.get('kind')!r} is not "
                         f"{POLICY_KIND!r}")
    version = str(header["version"])
    out = Path(out)
    final = out / "versions" / version
    if not final.exists():
        staging = out / "versions" / f".staging-{os.getpid()}-{time.time_ns()}"
        shutil.copytree(src, staging)
        os.replace(staging, final)
    manifest = {
        "format": FORMAT, "kind": POLICY_KIND, "version": version,
        "path": f"versions/{version}", "name": header.get("name"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_titles": len(json.loads((src / "catalog.json").read_text())["titles"]),
        "n_members": len(header.get("members", [])), **(extra or {}),
    }
    _write_manifest(out, manifest)
    _prune(out, keep=version)
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out / MANIFEST)


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The manifest of a model directory; :class:`ValueError` when absent or unreadable."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a reelpick model directory ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: model format {manifest.get('format')!r} is not supported")
    return manifest


def _prune(out: Path, keep: str) -> None:
    versions = sorted((p for p in (out / "versions").iterdir()
                       if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    for old in versions[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)

