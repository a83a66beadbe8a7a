"""The simulated members as clients of a real reelpick service, over HTTP.

:class:`ServicePolicy` is a :class:`~reelpick.decision.Policy` whose pages come from a running
service: for each simulated visit it asks ``GET /v1/homepage`` for member ``m<i>`` in the
visit's context at the visit's time (``at``), and returns what the service answered, with the
propensities the service logged. :meth:`World.simulate <reelpick.world.World.simulate>` then
draws the members' plays on those pages, and :meth:`ServicePolicy.send_plays` posts them back
as events, so the service's own log (exported with ``reelpick logs export``) is what the next
version trains on: the closed loop through the real service, not a copy of it.

Only the standard library speaks HTTP here (one keep-alive connection).

Example (needs a running service, so not run here)::

    policy = ServicePolicy("http://127.0.0.1:8000", world.titles(), world.artworks(),
                           api_key="secret")
    log = world.simulate(policy, 2_000)
    policy.send_plays(log)
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import numpy as np
import pandas as pd

from reelpick.data.schema import DEVICES
from reelpick.decision import PageBatch, VisitBatch


class ServicePolicy:
    """Pages from a running service for simulated visits (module docstring).

    ``titles`` / ``artworks`` are the world's tables (title and artwork IDs to indices);
    ``countries`` the world's country codes (``WorldConfig.countries``). Every answered slot's
    ``decision_id`` is kept, in visit order, for :meth:`send_plays`."""

    def __init__(self, base_url: str, titles: pd.DataFrame, artworks: pd.DataFrame,
                 countries: tuple[str, ...], *, api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        url = urllib.parse.urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._title = {str(t): i for i, t in enumerate(titles["title_id"])}
        art = artworks.reset_index(drop=True)
        self._variant: dict[str, int] = {}
        counts: dict[str, int] = {}
        for a, t in zip(art["artwork_id"].astype(str), art["title_id"].astype(str)):
            self._variant[a] = counts.get(t, 0)
            counts[t] = counts.get(t, 0) + 1
        self.countries = tuple(countries)
        self.name, self.version = "service", ""
        self.decisions: list[np.ndarray] = []  # per visit, (S,) decision ids ('' = empty)
        self.versions: list[str] = []

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, body: bytes | None = None) -> Any:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
            headers = dict(self._headers)
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                self._conn.request(method, path, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:300]!r}")
            return json.loads(data)
        raise RuntimeError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ the Policy
    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        del rng  # the service draws its own exploration
        n, S, P = len(visits), visits.n_slots, visits.n_positions
        titles = np.full((n, S), -1, np.int64)
        arts = np.zeros((n, S), np.int64)
        prop = np.ones((n, S))
        aprop = np.ones((n, S))
        labels = np.full((n, S), "", dtype=object)
        for i in range(n):
            q = urllib.parse.urlencode({
                "member": f"m{int(visits.member[i])}", "device": DEVICES[int(visits.device[i])],
                "country": self.countries[int(visits.country[i])],
                "hour": int(visits.hour[i]), "day_of_week": int(visits.day_of_week[i]),
                "at": int(visits.timestamp[i])})
            page = self._request("GET", f"/v1/homepage?{q}")
            self.versions.append(str(page["model_version"]))
            dec = np.full(S, "", dtype=object)
            for row in page["rows"]:
                for it in row["items"]:
                    s = int(it["row_index"]) * P + int(it["position"])
                    if s >= S:
                        raise ValueError(f"the service's page has slot {s}, the world's "
                                         f"page {S}: set the service's page size to the "
                                         "world's")
                    titles[i, s] = self._title[str(it["title_id"])]
                    arts[i, s] = self._variant[str(it["artwork_id"])]
                    prop[i, s] = float(it["propensity"])
                    aprop[i, s] = float(it["artwork_propensity"])
                    labels[i, s] = str(row["label"])
                    dec[s] = str(it["decision_id"])
            self.decisions.append(dec)
            self.name = str(page["policy"])
        slots = np.arange(S)
        return PageBatch(titles=titles, artworks=arts,
                         row_index=np.broadcast_to(slots // P, (n, S)),
                         position=np.broadcast_to(slots % P, (n, S)), propensity=prop,
                         artwork_propensity=aprop,
                         row_labels=tuple(f"row {r}" for r in range(visits.n_rows)),
                         slot_label=labels)

    def send_plays(self, log: Any, *, batch: int = 500) -> int:
        """Post a ``play`` event (with its watch time) for every page play of ``log`` (the
        log of a simulation of this policy, visits in the order they were asked). Returns
        the number of events accepted."""
        s = log.shown
        dec = np.stack(self.decisions) if self.decisions else np.zeros((0, 0), object)
        if dec.shape[0] != log.n_visits:
            raise ValueError(f"{dec.shape[0]} pages asked, the log has {log.n_visits} visits")
        hit = np.flatnonzero(s.play > 0)
        events = [{"event_id": f"play-{dec[s.visit[j], s.slot[j]]}",
                   "decision_id": str(dec[s.visit[j], s.slot[j]]), "kind": "play",
                   "timestamp": int(log.visits.timestamp[s.visit[j]]) + 60,
                   "watch_seconds": float(s.watch_seconds[j])} for j in hit]
        accepted = 0
        for lo in range(0, len(events), batch):
            body = json.dumps({"events": events[lo:lo + batch]}).encode()
            accepted += int(self._request("POST", "/v1/events", body)["accepted"])
        return accepted
