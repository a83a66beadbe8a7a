"""The home page answer, serialised without building 200 dicts or validating a response model.

``GET /v1/homepage`` answers a :class:`~reelpick.serve.schemas.HomepageOut` document (that model
documents it in the OpenAPI schema; the tests validate answers against it). Building it as
pydantic models or dicts costs several times more than composing the page, so
:class:`PageRenderer` assembles the JSON text from fragments that do not change between
requests, without a Python loop over the slots. A slot is four fragments:

1. the page id (the start of the decision id);
2. ``-S","explored":false,"row":…,"row_index":R,"position":P,"propensity":…,"score":``: the
   same for every page with this row label, row and propensity, so it is built once per
   (label, row, first slot, propensity) for a whole row; slots that explored, or whose
   propensity is not the row's, get their own;
3. the score (one Rust call for the pages, ``pydantic_core.to_json``: the shortest text that
   reads back as the same float; Python's ``repr`` costs ~0.5 µs a float);
4. ``,"title_id":…,"name":…,"artwork_id":…,"artwork_url":…,"artwork_propensity":…},`` then the
   next slot's opening: one string per artwork (its title's id and name, and the propensity of
   a uniform choice among the title's variants), built once per model load and picked by the
   page's ``artwork_index``; the last slot of a row closes it and opens the next row.

The four columns are interleaved by slice assignment into one list, joined once and encoded.
Keys come in another order than :class:`~reelpick.serve.schemas.SlotOut` declares them (JSON
objects are unordered); the documents equal :meth:`PageRenderer._generic` (dicts + ``to_json``)
once parsed, as the tests check. Pages whose images were drawn with their own propensities (a
bandit's) split fragment 4 around the propensity, whose texts come from one ``to_json`` call
for all the pages. Pages without ``artwork_index`` (or with positions that do not count from 0
in each row, or with more than a quarter of their slots off the page's common exploration flag
and propensity) take a path with twelve
fragments a slot, looked up by id; pages whose slots are not in row-major order (rows
contiguous, every row non-empty), a per-slot path. Non-finite numbers become ``null``.

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
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
from pydantic_core import to_json

from reelpick.serve.provider import Page


class _IntStrings(dict[int, str]):
    """``str(i)`` memoised (row indices and positions)."""

    def __missing__(self, key: int) -> str:
        v = self[key] = str(int(key))
        return v


class _RowPosition(dict[int, str]):
    """``,"row_index":R,"position":P,"propensity":`` keyed by ``R << 16 | P``."""

    def __missing__(self, key: int) -> str:
        v = self[key] = f',"row_index":{key >> 16},"position":{key & 0xFFFF},"propensity":'
        return v


class _FloatText(dict[float, str]):
    """JSON text of a float, memoised (for columns with few distinct values; bounded)."""

    def __missing__(self, key: float) -> str:
        v = _float_text(key)
        if len(self) < 4096:
            self[key] = v
        return v


def _float_text(x: float) -> str:
    return "null" if not math.isfinite(x) else to_json(float(x)).decode()


_BOOL = ("false", "true")
_INTS = _IntStrings()
_SLOTS: list[str] = []  # "-S": what follows the page id in slot S's decision id
_ROWPOS = _RowPosition()
_FLOATS = _FloatText()
_EXPLORED = (',"explored":false}', ',"explored":true}')
_NEXT = ',{"decision_id":"'
_CLOSE = ("}" + _NEXT).encode()  # after a slot's artwork propensity
_SCORE = ',"score":'
_dumps = json.dumps
_K = 12  # fragments per slot (by id)


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


def _numbers_bytes(a: np.ndarray) -> list[bytes]:
    """:func:`_numbers` as bytes (no decoding)."""
    n = len(a)
    if n == 0:
        return []
    out = to_json(a.tolist(), inf_nan_mode="null")[1:-1].split(b",")
    if len(out) != n:  # pragma: no cover - numbers never contain a comma
        raise ValueError("unexpected number format")
    return out


def _slots(n: int) -> list[str]:
    """``["-0", "-1", ..., f"-{n - 1}"]`` (a slice of a list grown on demand)."""
    global _SLOTS
    cur = _SLOTS
    if len(cur) < n:  # replaced whole, never mutated: safe with several threads
        cur = _SLOTS = [f"-{s}" for s in range(max(n, 2 * len(cur), 256))]
    return cur[:n]


def _few(a: np.ndarray) -> list[str]:
    """JSON texts of a float array with few distinct values (memoised per value)."""
    return list(map(_FLOATS.__getitem__, a.tolist()))


@dataclass(frozen=True, eq=False)
class _Layout:
    """Row structure of a page's ``row_index``/``position`` arrays: where each row ends
    (exclusive), each slot's ``,"row_index":R,"position":P,"propensity":``, and whether the
    positions count 0, 1, ... in every row."""

    ends: list[int]
    rowpos: list[str]
    counting: bool
    row_of: list[int]


def _slot_head(s: int, explored: bool, label: str, r: int, p: int, prop: str) -> str:
    """Fragment 2 of slot ``s`` (see the module docstring); ``label`` is JSON already."""
    return (f'-{s}","explored":{_BOOL[explored]},"row":{label},"row_index":{r},'
            f'"position":{p},"propensity":{prop},"score":')


class PageRenderer:
    """JSON fragments of one bundle's titles and artworks (built once per model load).

    Parameters
    ----------
    names : title id -> display name.
    artwork_ids : every artwork id.
    policy, model_version : the provider's ``name`` and ``version``.
    catalog : the :class:`~reelpick.serve.catalog.Catalog` the ids come from; with it, pages
        that carry ``artwork_index`` are serialised by index (see the module docstring).
    """

    def __init__(self, names: Mapping[str, str], artwork_ids: Iterable[str], *, policy: str,
                 model_version: str, catalog: Any = None) -> None:
        self._title = {t: f'"title_id":{_dumps(t)},"name":{_dumps(n)}' for t, n in names.items()}
        self._art = {a: f'"artwork_id":{_dumps(a)},"artwork_url":{_dumps("/v1/artwork/" + a)}'
                     for a in artwork_ids}
        # the same, with the text around them in a slot (the path by id)
        self._title_frag = {t: f'",{v},"row":' for t, v in self._title.items()}
        self._art_frag = {a: f",{v},\"artwork_propensity\":" for a, v in self._art.items()}
        self._names = names
        self._str: dict[str, str] = {}
        self._head = f',"policy":{_dumps(policy)},"model_version":{_dumps(model_version)}'
        self.policy, self.model_version = policy, model_version
        self._lock = threading.Lock()
        self._layouts: dict[tuple[int, str, str, bytes, bytes], _Layout] = {}
        self._row_runs: dict[tuple[str, int, int, int, float, bool], list[bytes]] = {}
        self._turns: dict[tuple[int, str, str], bytes] = {}
        self._by_index = catalog is not None
        if catalog is not None:
            art_title = np.asarray(catalog.art_title, dtype=np.int64)
            n_variants = np.diff(np.asarray(catalog.art_offset))
            self._art_p = 1.0 / n_variants[art_title]  # uniform artwork choice
            self._art_p.flags.writeable = False
            tails = [f",{self._title[str(catalog.title_ids[t])]},{self._art[str(a)]},"
                     f'"artwork_propensity":{_float_text(float(p))}}}{_NEXT}'.encode()
                     for a, t, p in zip(catalog.artwork_ids, art_title.tolist(),
                                        self._art_p.tolist())]
            self._art_tail = np.empty(len(tails), dtype=object)
            self._art_tail[:] = tails
            # the same, cut before the artwork propensity: pages whose images were chosen with
            # other propensities (a bandit's) put their own numbers between the two halves
            cut = [t[:t.rindex(b'"artwork_propensity":') + len(b'"artwork_propensity":')]
                   for t in tails]
            self._art_head = np.empty(len(cut), dtype=object)
            self._art_head[:] = cut

    @classmethod
    def for_catalog(cls, catalog: Any, *, policy: str, model_version: str) -> PageRenderer:
        """From a :class:`~reelpick.serve.catalog.Catalog`."""
        return cls({str(t["title_id"]): str(t["name"]) for t in catalog.titles},
                   (str(a) for a in catalog.artwork_ids), policy=policy,
                   model_version=model_version, catalog=catalog)

    # ------------------------------------------------------------------ cached pieces
    def _json_str(self, s: str) -> str:
        out = self._str.get(s)
        if out is None:
            out = _dumps(s)
            if len(self._str) < 100_000:
                self._str[s] = out
        return out

    def _head_text(self, page_id: str, member: str, page: Page, c: Mapping[str, Any]) -> str:
        js = self._json_str
        return (f'{{"page_id":"{page_id}","member":{_dumps(member)},'
                f'"cold_start":{_BOOL[bool(page.cold_start)]}{self._head},'
                f'"context":{{"device":{js(c["device"])},"country":{js(c["country"])},'
                f'"hour":{int(c["hour"])},"day_of_week":{int(c["day_of_week"])},'
                f'"timestamp":{int(c["timestamp"])}}},"rows":[')

    def _row_head(self, i: int, label: str, reason: str) -> str:
        return f'{{"row_index":{i},"label":{label},"reason":{self._json_str(reason)},"items":['

    def _turn(self, i: int, label: str, reason: str) -> str:
        """What closes row ``i - 1`` and opens row ``i`` up to its first decision id."""
        return self._turn_bytes(i, label, reason).decode()

    def _turn_bytes(self, i: int, label: str, reason: str) -> bytes:
        """:meth:`_turn` as bytes, kept per (row, label, reason)."""
        key = (i, label, reason)
        out = self._turns.get(key)
        if out is None:
            out = ("]}," + self._row_head(i, self._json_str(label), reason)
                   + '{"decision_id":"').encode()
            with self._lock:
                if len(self._turns) >= 65_536:
                    self._turns.clear()
                self._turns[key] = out
        return out

    def _layout(self, ri: np.ndarray, pos: np.ndarray, R: int) -> _Layout | None:
        """The row structure (``None`` when the slots are not in row-major order), kept by
        content (pages share a few layouts)."""
        key = (R, ri.dtype.str, pos.dtype.str, ri.tobytes(), pos.tobytes())
        hit = self._layouts.get(key)
        if hit is not None:
            return hit
        S = len(ri)
        change = np.flatnonzero(ri[1:] != ri[:-1])
        # rows 0..R-1 in order, each non-empty, and positions that fit the keys
        if not (ri[0] == 0 and ri[-1] == R - 1 and len(change) == R - 1
                and (R == 1 or bool((ri[change + 1] == ri[change] + 1).all()))
                and 0 <= int(pos.min()) and int(pos.max()) < 0x10000):
            return None
        ends = [*(change + 1).tolist(), S]
        rowpos = ((ri.astype(np.int64) << 16) | pos.astype(np.int64)).tolist()
        starts = np.repeat(np.asarray([0, *ends[:-1]]), np.diff([0, *ends]))
        counting = bool((pos == np.arange(S) - starts).all())
        out = _Layout(ends, list(map(_ROWPOS.__getitem__, rowpos)), counting, ri.tolist())
        with self._lock:
            if len(self._layouts) >= 4096:
                self._layouts.clear()
            self._layouts[key] = out
        return out

    def _row_run(self, label: str, r: int, start: int, n: int, prop: float,
                 explored: bool = False) -> list[bytes]:
        """Fragment 2 of the ``n`` slots of row ``r`` (from slot ``start``, positions 0..n-1),
        all ``explored`` or not, all with propensity ``prop`` (kept: a few labels, rows and
        propensities cover the pages of a model)."""
        key = (label, r, start, n, prop, explored)
        out = self._row_runs.get(key)
        if out is None:
            text = _FLOATS[prop]
            out = [_slot_head(start + p, explored, label, r, p, text).encode()
                   for p in range(n)]
            with self._lock:
                if len(self._row_runs) >= 8192:
                    self._row_runs.clear()
                self._row_runs[key] = out
        return out

    # ------------------------------------------------------------------ render
    def render(self, page_id: str, member: str, page: Page, context: Mapping[str, Any]) -> bytes:
        """The ``HomepageOut`` JSON document of ``page`` (UTF-8 bytes)."""
        return self.render_many([(page_id, member, page, context)])[0]

    def render_many(self, items: Sequence[tuple[str, str, Page, Mapping[str, Any]]]
                    ) -> list[bytes]:
        """:meth:`render` of several ``(page_id, member, page, context)``; the pages that go
        by index share one pass over their numbers and artworks."""
        out: list[bytes | None] = [None] * len(items)
        by_index: list[tuple[int, _Layout]] = []
        for i, (page_id, member, page, context) in enumerate(items):
            ri = np.asarray(page.row_index)
            pos = np.asarray(page.position)
            S = page.n_slots
            R = len(page.row_labels)
            layout = (self._layout(ri, pos, R) if S and R and len(ri) == S and len(pos) == S
                      and len(page.row_reasons) == R else None)
            if layout is None:
                out[i] = self._render_slots(page_id, member, page, context)
            elif (self._by_index and layout.counting and page.artwork_index is not None
                  and len(page.artwork_index) == S):
                by_index.append((i, layout))
            else:
                out[i] = self._render_by_id(page_id, member, page, context, layout)
        if by_index:
            self._render_by_index(items, by_index, out)
        return out  # type: ignore[return-value]

    def _render_by_index(self, items: Sequence[tuple[str, str, Page, Mapping[str, Any]]],
                         todo: list[tuple[int, _Layout]], out: list[bytes | None]) -> None:
        """Four fragments a slot (module docstring), the numbers and artworks of all pages
        ``todo`` in one pass. A page falls back to :meth:`_render_by_id` when too many of its
        slots differ from their row's (explored, or another propensity)."""
        pages = [items[i][2] for i, _ in todo]
        bounds = [0, *accumulate(p.n_slots for p in pages)]
        N = bounds[-1]
        starts = bounds[:-1]

        def cat(name: str, dtype: Any) -> np.ndarray:
            if len(pages) == 1:
                return np.asarray(getattr(pages[0], name), dtype=dtype)
            return np.concatenate([np.asarray(getattr(p, name)) for p in pages], dtype=dtype)

        ai = cat("artwork_index", np.int64)
        prop = cat("propensity", np.float64)
        explored = cat("explored", bool)
        aprop = cat("artwork_propensity", np.float64)
        uniform = np.logical_and.reduceat(self._art_p[ai] == aprop, starts)
        # each page's common flag (whether most of its slots explored: a policy that explores
        # whole pages) and propensity (that of its first or its last slot with that flag,
        # whichever more slots share)
        sizes = np.diff(bounds)
        page_x = 2 * np.add.reduceat(explored.astype(np.int64), starts) > sizes
        x_slot = np.repeat(page_x, sizes)
        off = explored != x_slot
        at_n = np.arange(N)
        first = np.minimum.reduceat(np.where(off, N, at_n), starts)
        first = np.where(first == N, starts, first)
        last = np.maximum.reduceat(np.where(off, -1, at_n), starts)
        last = np.where(last < 0, starts, last)
        odd_first = off | (prop != np.repeat(prop[first], sizes))
        odd_last = off | (prop != np.repeat(prop[last], sizes))
        use_last = np.add.reduceat(odd_last, starts) < np.add.reduceat(odd_first, starts)
        common = np.where(use_last, prop[last], prop[first])
        odd_at = np.flatnonzero(np.where(np.repeat(use_last, sizes), odd_last, odd_first))
        odd = odd_at.tolist()
        odd_x = explored[odd_at].tolist()
        odd_p = prop[odd_at].tolist()
        scores = _numbers_bytes(cat("score", np.float64))
        ok_pages = uniform.tolist()
        tails = self._art_tail[ai].tolist()
        if all(ok_pages):
            heads_a: list[bytes] = []
            aprops: list[bytes] = []
        else:  # images drawn with their own propensities: head + number + close per slot
            heads_a = self._art_head[ai].tolist()
            aprops = _numbers_bytes(aprop)
        at = 0
        for b, ((i, layout), ok, c, px) in enumerate(zip(todo, ok_pages, common.tolist(),
                                                         page_x.tolist())):
            lo, hi = bounds[b], bounds[b + 1]
            j = bisect_left(odd, hi, at)
            page_id, member, page, context = items[i]
            if 4 * (j - at) > hi - lo:
                out[i] = self._render_by_id(page_id, member, page, context, layout)
            else:
                out[i] = self._page_by_index(
                    page_id, member, page, context, layout, c,
                    [(s - lo, x, p) for s, x, p in zip(odd[at:j], odd_x[at:j], odd_p[at:j])],
                    scores[lo:hi],
                    tails[lo:hi] if ok else None,
                    None if ok else (heads_a[lo:hi], aprops[lo:hi]), px)
            at = j

    def _page_by_index(self, page_id: str, member: str, page: Page, context: Mapping[str, Any],
                       layout: _Layout, common: float, odd: list[tuple[int, bool, float]],
                       scores: Sequence[bytes], tails: list[bytes] | None,
                       art: tuple[list[bytes], list[bytes]] | None = None,
                       explored: bool = False) -> bytes:
        """One page by index: ``tails`` (title, image, uniform artwork propensity, the next
        slot's opening) or, for images drawn with their own propensities, ``art`` = (the
        tails cut before the artwork propensity, the propensities' JSON numbers); ``common``
        and ``explored`` the propensity and flag of most slots, ``odd`` the others."""
        S = page.n_slots
        if tails is None:
            assert art is not None
            tails = [_CLOSE] * S
        js = self._json_str
        labels = [js(label) for label in page.row_labels]
        reasons = page.row_reasons
        ends = layout.ends
        heads: list[bytes] = []
        start = 0
        for r, (label, end) in enumerate(zip(labels, ends)):
            heads += self._row_run(label, r, start, end - start, common, explored)
            start = end
        if odd:
            row_of, firsts = layout.row_of, [0, *ends]
            last: tuple[int, bool, float] | None = None
            run: list[bytes] = []
            for s, x, p in odd:  # explored slots of a row mostly share (row, flag, p)
                r = row_of[s]
                if (r, x, p) != last:
                    last = (r, x, p)
                    run = self._row_run(labels[r], r, firsts[r], firsts[r + 1] - firsts[r], p, x)
                heads[s] = run[s - firsts[r]]
        cut = len(_NEXT)
        for i in range(1, len(ends)):  # the last slot of row i - 1 opens row i
            tails[ends[i - 1] - 1] = tails[ends[i - 1] - 1][:-cut] + self._turn_bytes(
                i, page.row_labels[i], reasons[i])
        tails[-1] = tails[-1][:-cut] + b"]}]}"
        k = 4 if art is None else 6
        flat: list[bytes] = [b""] * (k * S + 1)
        flat[0] = (self._head_text(page_id, member, page, context)
                   + self._row_head(0, labels[0], reasons[0]) + '{"decision_id":"').encode()
        flat[1::k] = [page_id.encode()] * S
        flat[2::k] = heads
        flat[3::k] = scores
        if art is None:
            flat[4::k] = tails
        else:
            flat[4::k] = art[0]
            flat[5::k] = art[1]
            flat[6::k] = tails
        return b"".join(flat)

    def _render_by_id(self, page_id: str, member: str, page: Page, context: Mapping[str, Any],
                      layout: _Layout) -> bytes:
        """Twelve fragments a slot, title and artwork fragments looked up by id."""
        S = page.n_slots
        js = self._json_str
        labels = [js(label) for label in page.row_labels]
        ends = layout.ends
        label_col: list[str] = []
        start = 0
        for label, end in zip(labels, ends):
            label_col += [label] * (end - start)
            start = end
        next_col = [_NEXT] * S
        for i in range(1, len(ends)):  # the slot that closes row i - 1 opens row i
            next_col[ends[i - 1] - 1] = self._turn(i, page.row_labels[i], page.row_reasons[i])
        next_col[-1] = "]}]}"
        exp_col = [_EXPLORED[0]] * S
        for s in np.flatnonzero(np.asarray(page.explored, dtype=bool)).tolist():
            exp_col[s] = _EXPLORED[1]
        flat = [""] * (_K * S)
        flat[0::_K] = [page_id] * S
        flat[1::_K] = _slots(S)
        flat[2::_K] = list(map(self._title_frag.__getitem__, page.title_ids))
        flat[3::_K] = label_col
        flat[4::_K] = layout.rowpos
        flat[5::_K] = _few(np.asarray(page.propensity, dtype=np.float64))
        flat[6::_K] = list(map(self._art_frag.__getitem__, page.artwork_ids))
        flat[7::_K] = _few(np.asarray(page.artwork_propensity, dtype=np.float64))
        flat[8::_K] = [_SCORE] * S
        flat[9::_K] = _numbers(np.asarray(page.score, dtype=np.float64))
        flat[10::_K] = exp_col
        flat[11::_K] = next_col
        head = (self._head_text(page_id, member, page, context)
                + self._row_head(0, labels[0], page.row_reasons[0]) + '{"decision_id":"')
        return (head + "".join(flat)).encode()

    def _render_slots(self, page_id: str, member: str, page: Page,
                      context: Mapping[str, Any]) -> bytes:
        """Slot by slot, rows in any order (the general case of :meth:`render`)."""
        ri = np.asarray(page.row_index).tolist()
        pos = np.asarray(page.position).tolist()
        prop = _numbers(np.asarray(page.propensity, dtype=np.float64))
        aprop = _numbers(np.asarray(page.artwork_propensity, dtype=np.float64))
        score = _numbers(np.asarray(page.score, dtype=np.float64))
        js = self._json_str
        labels = [js(label) for label in page.row_labels]
        title, art, ints = self._title, self._art, _INTS
        buckets: list[list[str]] = [[] for _ in labels]
        for s, (r, p, t, a, pr, ap, sc, x) in enumerate(zip(
                ri, pos, page.title_ids, page.artwork_ids, prop, aprop, score,
                np.asarray(page.explored, dtype=bool).tolist())):
            buckets[r].append(
                f'{{"decision_id":"{page_id}-{s}",{title[t]},"row":{labels[r]},'
                f'"row_index":{ints[r]},"position":{ints[p]},"propensity":{pr},{art[a]},'
                f'"artwork_propensity":{ap},"score":{sc},"explored":{_BOOL[x]}}}')
        rows = ",".join([f'{{"row_index":{i},"label":{labels[i]},"reason":{js(reason)},'
                         f'"items":[{",".join(b)}]}}'
                         for i, (reason, b) in enumerate(zip(page.row_reasons, buckets))])
        return (self._head_text(page_id, member, page, context) + rows + "]}").encode()

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
