"""The nearline job: compose members' pages before they ask (``POST /v1/admin/precompute``).

:func:`likely_contexts` picks, from the served log's impressions, the members who visited in
the last days and the context each visits in most (device, country), most active first;
:func:`precompute` asks a running service to compose their pages for one hour, one request per
(device, country) group and chunk; :func:`precompute_into_store` composes them in this process
instead, from the published policy, into the page store every worker of the service reads
(:mod:`reelpick.page.store`), so the serving processes spend no CPU on them. ``reelpick
precompute`` runs either (``docs/serve.md``).

>>> import pandas as pd
>>> imp = pd.DataFrame({"page_id": ["p1", "p1", "p2", "p3", "p4"],
...                     "member_id": ["a", "a", "a", "b", "a"],
...                     "timestamp": [10, 10, 20, 30, 40],
...                     "device": ["tv", "tv", "tv", "web", "mobile"],
...                     "country": ["US", "US", "US", "DE", "US"]})
>>> likely_contexts(imp, days=1).to_dict("records")
[{'member_id': 'a', 'device': 'tv', 'country': 'US', 'pages': 3}, \
{'member_id': 'b', 'device': 'web', 'country': 'DE', 'pages': 1}]
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PrecomputeError", "likely_contexts", "precompute", "precompute_into_store"]


class PrecomputeError(RuntimeError):
    """The service refused or could not be reached (the message says which, and why)."""


def likely_contexts(impressions: pd.DataFrame, *, days: float = 7.0, top: int | None = None
                    ) -> pd.DataFrame:
    """One row per member who was served a page in the ``days`` before the newest impression:
    ``member_id``, the ``device`` and ``country`` of most of their pages there (ties: the
    latest), and ``pages`` (how many), most pages first (then by member id); at most ``top``
    rows. ``impressions`` has the :data:`~reelpick.data.schema.IMPRESSIONS` columns
    ``member_id``, ``timestamp``, ``device`` and ``country`` (``page_id`` when present counts
    pages, else every row counts)."""
    need = ["member_id", "timestamp", "device", "country"]
    missing = [c for c in need if c not in impressions.columns]
    if missing:
        raise ValueError(f"impressions: missing column(s) {missing} (the service's exported "
                         "impressions have them)")
    if days <= 0:
        raise ValueError(f"days: must be > 0, got {days!r}")
    if top is not None and top < 1:
        raise ValueError(f"top: must be >= 1, got {top!r}")
    cols = need + (["page_id"] if "page_id" in impressions.columns else [])
    frame = impressions[cols]
    if "page_id" in frame.columns:
        frame = frame.drop_duplicates("page_id")
    if frame.empty:
        return pd.DataFrame({"member_id": [], "device": [], "country": [], "pages": []})
    frame = frame[frame["timestamp"] >= frame["timestamp"].max() - days * 86_400]
    frame = frame.dropna(subset=["device", "country"]).astype(
        {"member_id": str, "device": str, "country": str})
    counts = (frame.groupby(["member_id", "device", "country"], sort=False)
              .agg(n=("timestamp", "size"), last=("timestamp", "max")).reset_index())
    best = (counts.sort_values(["member_id", "n", "last"], ascending=[True, False, False])
            .drop_duplicates("member_id"))
    pages = frame.groupby("member_id").size().rename("pages")
    out = best[["member_id", "device", "country"]].merge(pages, on="member_id")
    out = out.sort_values(["pages", "member_id"], ascending=[False, True], kind="stable")
    if top is not None:
        out = out.head(top)
    return out.reset_index(drop=True).astype({"pages": int})


def precompute(base_url: str, api_key: str | None, contexts: pd.DataFrame, *,
               hour: int | None = None, day_of_week: int | None = None, at: int | None = None,
               chunk: int = 1_000, timeout: float = 600.0,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Ask the service at ``base_url`` to compose the pages of ``contexts`` (rows of
    ``member_id``, ``device``, ``country``: :func:`likely_contexts`; an empty or missing
    country is each member's own) for one hour (``hour``,
    ``day_of_week`` and ``at`` as in ``POST /v1/admin/precompute``; default the service's
    now), ``chunk`` members a request. Returns ``{"pages", "composed", "cached", "seconds",
    "requests", "model_version"}`` summed over the requests; ``progress(n)`` is called with
    the members done after each. Raises :class:`PrecomputeError` with the service's answer."""
    if chunk < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk!r}")
    total: dict[str, Any] = {"pages": 0, "composed": 0, "cached": 0, "seconds": 0.0,
                             "requests": 0, "model_version": None}
    url = base_url.rstrip("/") + "/v1/admin/precompute"
    extra = {k: v for k, v in (("hour", hour), ("day_of_week", day_of_week), ("at", at))
             if v is not None}
    done = 0
    for device, country, members in _chunks(contexts, chunk):
        body = {"members": members, "device": device, **extra}
        if country:
            body["country"] = country
        answer = _post(url, api_key, body, timeout)
        for k in ("pages", "composed", "seconds"):
            total[k] += answer[k]
        total["cached"] = answer["cached"]
        total["model_version"] = answer["model_version"]
        total["requests"] += 1
        done += len(members)
        if progress is not None:
            progress(done)
    return total


def _chunks(contexts: pd.DataFrame, chunk: int) -> Iterator[tuple[str, str, list[str]]]:
    """``(device, country, members)`` of ``contexts`` by (device, country) group, at most
    ``chunk`` members each; a missing country ("" or None) is ``""``: the service's default,
    each member's own."""
    frame = contexts.assign(country=contexts["country"].fillna("").astype(str))
    for (device, country), group in frame.groupby(["device", "country"], sort=True):
        members = group["member_id"].astype(str).tolist()
        for lo in range(0, len(members), chunk):
            yield str(device), str(country), members[lo:lo + chunk]


def _post(url: str, api_key: str | None, body: dict[str, Any], timeout: float
          ) -> dict[str, Any]:
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"X-API-Key": api_key or "",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())["detail"][0]
            why = f"{detail.get('field') or ''}: {detail['msg']}".lstrip(": ")
        except (ValueError, KeyError, IndexError, TypeError):
            why = exc.reason
        raise PrecomputeError(f"{url}: {exc.code} {why}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PrecomputeError(f"{url}: {exc}") from None


def precompute_into_store(model_dir: str | Path, store: str | Path, contexts: pd.DataFrame, *,
                          hour: int | None = None, day_of_week: int | None = None,
                          at: int | None = None, chunk: int = 1_000,
                          progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Compose the pages of ``contexts`` (as :func:`precompute`) in this process with the
    policy published in ``model_dir`` (its manifest's current version) and write them to the
    page store file ``store`` (the service's ``REELPICK_PAGE_STORE``, by default
    ``pages.sqlite3`` in its data folder); pages of other versions and of past hours are
    deleted first. Returns ``{"pages", "composed", "stored", "seconds", "model_version"}``.
    Raises :class:`PrecomputeError` for a model directory or store that cannot be read, or
    an unknown country."""
    import time

    from reelpick.page.store import PageStore
    from reelpick.serve.app import limit_threads
    from reelpick.serve.errors import ApiError
    from reelpick.serve.model_dir import read_manifest
    from reelpick.serve.policy_provider import PagePolicyProvider
    from reelpick.serve.routers.homepage import page_context

    if chunk < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk!r}")
    limit_threads(1)  # as the service: the same floating-point sums, the same pages
    t0 = time.perf_counter()
    try:
        manifest = read_manifest(Path(model_dir))
        provider = PagePolicyProvider.from_dir(Path(model_dir) / manifest["path"],
                                               version=manifest["version"])
        pages = PageStore(store)
    except (OSError, ValueError, KeyError) as exc:
        raise PrecomputeError(f"{exc}") from None
    try:
        provider.cache(max(chunk, 1_000))  # memory: at most a chunk's pages remembered here
        now = int(time.time())
        ts = now if at is None else int(at)
        pages.prune(keep_version=provider.policy.version, from_bucket=ts // 3600)
        composed = done = 0
        for device, country, members in _chunks(contexts, chunk):
            requests = []
            for m in members:
                ctx = page_context(provider.catalog, m, device, country or None, hour,
                                   day_of_week, at, now)
                if isinstance(ctx, ApiError):
                    raise PrecomputeError(f"member {m!r}: {ctx.msg}")
                requests.append((m, ctx))
            composed += provider.precompute(requests, store=pages)
            done += len(requests)
            if progress is not None:
                progress(done)
        stored = pages.versions().get(provider.policy.version, 0)
    finally:  # what was written stays (each chunk is one transaction); the file is closed
        pages.close()
    return {"pages": done, "composed": composed, "stored": stored,
            "seconds": time.perf_counter() - t0, "model_version": manifest["version"]}
