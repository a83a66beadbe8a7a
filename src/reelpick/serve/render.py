"""The home page answer, serialised without building 200 dicts or validating a response model.

``GET /v1/homepage`` answers a :class:`~reelpick.serve.schemas.HomepageOut` document (that model
documents it in the OpenAPI schema; the tests validate answers against it). Building it as
pydantic models or dicts costs more than composing the page, so :class:`PageRenderer` keeps the
JSON of what does not change between requests, per model bundle: each title's
``"title_id":…,"name":…`` and each artwork's ``"artwork_id":…,"artwork_url":…``, and row
labels/reasons once seen. A slot is then one f-string of precomputed strings; the float columns
are serialised by one Rust call each (``pydantic_core.to_json``: the shortest text that reads
back as the same float; Python's ``repr`` of a 17-digit float costs ~1 µs, a third of a page's
render time). The output equals :meth:`PageRenderer._generic` (dicts + ``to_json``), as the
tests check.

>>> import numpy as np
>>> from reelpick.serve.provider import Page
>>> r = PageRenderer({"t1": "One"}, {"t1-a0"}, policy="p", model_version="v")
>>> page = Page.single_row(["t1"], ["t1-a0"], label="Top")
>>> body = r.render("ab12", "m1", page, {"device": "tv", "country": "US", "hour": 1,
...                                        "day_of_week": 2, "timestamp": 3})
>>> import json; json.loads(body)["rows"][0]["items"][0]["decision_id"]
'ab12-0'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import to_json

from reelpick.serve.provider import Page


class _IntStrings(dict[int, str]):
    """``str(i)`` memoised (row indices and positions)."""

    def __missing__(self, key: int) -> str:
        v = self[key] = str(int(key))
        return v


_BOOL = ("false", "true")
_INTS = _IntStrings()
_dumps = json.dumps


def _numbers(a: Any) -> list[str]:
    """JSON texts of a float array's elements (``to_json`` of the list, split)."""
    n = len(a)
    if n == 0:
        return []
    text = to_json(a.tolist() if hasattr(a, "tolist") else list(a), inf_nan_mode="null").decode()
    out = text[1:-1].split(",")
    if len(out) != n:  # pragma: no cover - numbers never contain a comma
        raise ValueError("unexpected number format")
    return out


class PageRenderer:
    """JSON fragments of one bundle's titles and artworks (built once per model load).

    Parameters
    ----------
    names : title id -> display name.
    artwork_ids : every artwork id.
    policy, model_version : the provider's ``name`` and ``version``.
    """

    def __init__(self, names: Mapping[str, str], artwork_ids: Iterable[str], *, policy: str,
                 model_version: str) -> None:
        self._title = {t: f'"title_id":{_dumps(t)},"name":{_dumps(n)}' for t, n in names.items()}
        self._art = {a: f'"artwork_id":{_dumps(a)},"artwork_url":{_dumps("/v1/artwork/" + a)}'
                     for a in artwork_ids}
        self._names = names
        self._str: dict[str, str] = {}
        self._head = f',"policy":{_dumps(policy)},"model_version":{_dumps(model_version)}'
        self.policy, self.model_version = policy, model_version

    @classmethod
    def for_catalog(cls, catalog: Any, *, policy: str, model_version: str) -> PageRenderer:
        """From a :class:`~reelpick.serve.catalog.Catalog`."""
        return cls({str(t["title_id"]): str(t["name"]) for t in catalog.titles},
                   (str(a) for a in catalog.artwork_ids), policy=policy,
                   model_version=model_version)

    def _json_str(self, s: str) -> str:
        out = self._str.get(s)
        if out is None:
            out = _dumps(s)
            if len(self._str) < 100_000:
                self._str[s] = out
        return out

    def render(self, page_id: str, member: str, page: Page, context: Mapping[str, Any]) -> bytes:
        """The ``HomepageOut`` JSON document of ``page`` (UTF-8 bytes)."""
        ri = page.row_index.tolist()
        pos = page.position.tolist()
        # float columns in one Rust call each (shortest round-trip repr; non-finite -> null)
        prop = _numbers(page.propensity)
        aprop = _numbers(page.artwork_propensity)
        score = _numbers(page.score)
        js = self._json_str
        labels = [js(label) for label in page.row_labels]
        title, art, ints = self._title, self._art, _INTS
        buckets: list[list[str]] = [[] for _ in labels]
        for s, (r, p, t, a, pr, ap, sc, x) in enumerate(zip(
                ri, pos, page.title_ids, page.artwork_ids, prop, aprop, score,
                page.explored.tolist())):
            buckets[r].append(
                f'{{"decision_id":"{page_id}-{s}",{title[t]},"row":{labels[r]},'
                f'"row_index":{ints[r]},"position":{ints[p]},"propensity":{pr},{art[a]},'
                f'"artwork_propensity":{ap},"score":{sc},"explored":{_BOOL[x]}}}')
        rows = ",".join([f'{{"row_index":{i},"label":{labels[i]},"reason":{js(reason)},'
                         f'"items":[{",".join(b)}]}}'
                         for i, (reason, b) in enumerate(zip(page.row_reasons, buckets))])
        c = context
        head = (f'{{"page_id":"{page_id}","member":{_dumps(member)},'
                f'"cold_start":{_BOOL[bool(page.cold_start)]}{self._head},'
                f'"context":{{"device":{js(c["device"])},"country":{js(c["country"])},'
                f'"hour":{int(c["hour"])},"day_of_week":{int(c["day_of_week"])},'
                f'"timestamp":{int(c["timestamp"])}}},"rows":[')
        return (head + rows + "]}").encode()

    def _generic(self, page_id: str, member: str, page: Page, context: Mapping[str, Any]
                 ) -> bytes:
        """Dict-by-dict (slow path; non-finite numbers become ``null``)."""
        rows: list[dict[str, Any]] = [
            {"row_index": i, "label": label, "reason": reason, "items": []}
            for i, (label, reason) in enumerate(zip(page.row_labels, page.row_reasons))]
        for s, (tid, aid) in enumerate(zip(page.title_ids, page.artwork_ids)):
            r = int(page.row_index[s])
            rows[r]["items"].append({
                "decision_id": f"{page_id}-{s}", "title_id": tid, "name": self._names[tid],
                "row": page.row_labels[r], "row_index": r, "position": int(page.position[s]),
                "propensity": float(page.propensity[s]), "artwork_id": aid,
                "artwork_url": f"/v1/artwork/{aid}",
                "artwork_propensity": float(page.artwork_propensity[s]),
                "score": float(page.score[s]), "explored": bool(page.explored[s])})
        return to_json({"page_id": page_id, "member": member, "cold_start": page.cold_start,
                        "policy": self.policy, "model_version": self.model_version,
                        "context": dict(context), "rows": rows}, inf_nan_mode="null")
