"""A schemathesis fuzzer for the service: generated requests from its OpenAPI document, sent to
a running server (ASGI in process or uvicorn on 127.0.0.1), every answer checked.

Needs the ``dev`` extra (schemathesis, hypothesis). Used by ``tests/serve/test_fuzz.py`` (a few
hundred cases in the default suite, >= 10k in the slow test) and by
``benchmarks/bench_serve.py --fuzz N``. Checks per answer:

* never a 5xx (except 503 from ``/healthz`` when the log is degraded: it never is here);
* every 4xx has a JSON body ``{"detail": [{"field", "loc", "msg", "type"}, ...]}`` and, for 422,
  each item names a field (``field`` not null);
* a 2xx answer of a JSON operation conforms to its response schema (schemathesis' check).

Each operation is fuzzed in both of schemathesis' modes: *positive* (inputs the schema allows)
and *negative* (inputs it forbids: wrong types, out-of-range numbers, unknown enum values,
malformed ids). Half of the write/admin requests carry the valid API key so that body validation,
not the key check, answers them.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance

#: Operations whose 2xx bodies are checked against their response schema.
_JSON_OPS = ("GET /v1/homepage", "POST /v1/events", "GET /v1/titles/{title_id}",
             "GET /v1/options", "GET /healthz", "POST /v1/admin/reload")


@dataclass
class FuzzReport:
    """What a run did: requests sent, status codes, problems (first few kept in full)."""

    requests: int = 0
    unsendable: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)
    n_problems: int = 0
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def add_problem(self, text: str) -> None:
        self.n_problems += 1
        if len(self.problems) < 20:
            self.problems.append(text)

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "unsendable": self.unsendable,
                "server_errors": self.server_errors, "problems": self.n_problems,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "by_operation": dict(self.by_operation), "seconds": round(self.seconds, 1)}


def load_schema(openapi: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(openapi)


def _check(report: FuzzReport, label: str, case: Any, resp: httpx.Response) -> None:
    status = resp.status_code
    report.statuses[status] += 1
    where = f"{label} {resp.request.method} {resp.request.url} -> {status}"
    if status >= 500 and not (label == "GET /healthz" and status == 503):
        report.add_problem(f"{where}: server error {resp.text[:300]}")
        return
    if 400 <= status < 500:
        try:
            body = resp.json()
            items = body["detail"]
            assert isinstance(items, list) and items
            for it in items:
                assert {"field", "loc", "msg", "type"} <= set(it)
                assert it["field"], "no field named"
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            report.add_problem(f"{where}: 4xx body not in the error shape ({exc!r}): "
                               f"{resp.text[:300]}")
    elif 200 <= status < 300 and label in _JSON_OPS:
        try:
            case.validate_response(resp, checks=[response_schema_conformance])
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            report.add_problem(f"{where}: answer does not match the response schema: "
                               f"{str(exc)[:300]}")


def _send(client: httpx.Client, case: Any, key: str | None) -> httpx.Response | None:
    kw = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    headers = dict(kw.get("headers") or {})
    if key is not None:
        headers["X-API-Key"] = key
    # schemathesis builds ``requests`` kwargs; httpx wants ``content`` instead of ``data``
    req: dict[str, Any] = {"method": kw["method"], "url": kw["url"], "headers": headers,
                           "params": kw.get("params"), "cookies": kw.get("cookies")}
    if "json" in kw:
        req["content"] = json.dumps(kw["json"], allow_nan=True).encode()
        headers.setdefault("Content-Type", "application/json")
    elif kw.get("data") is not None:
        data = kw["data"]
        req["content"] = data.encode() if isinstance(data, str) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return client.request(**req)
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, TypeError,
            ValueError):
        return None  # headers/URLs no HTTP client can send (e.g. non-latin-1 header values)


def fuzz(client: httpx.Client, openapi: dict[str, Any], *, per_operation: int, api_key: str,
         seed: int = 0, modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE,
                                                              GenerationMode.NEGATIVE),
         limits: dict[str, int] | None = None) -> FuzzReport:
    """Send up to ``per_operation`` generated requests per operation and mode through
    ``client`` (its ``base_url`` is the server), checking each answer (module docstring).
    ``limits`` lowers the count for some operations (``{"POST /v1/admin/reload": 20}``);
    operations without parameters yield only the few distinct requests they have."""
    schema = load_schema(openapi)
    report = FuzzReport()
    t0 = time.perf_counter()
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        n = (limits or {}).get(label, per_operation)
        for mode in modes:
            strategy = op.as_strategy(generation_mode=mode)

            @settings(max_examples=n, deadline=None, database=None,
                      derandomize=False, phases=[Phase.generate], print_blob=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy, with_key=st.booleans())
            def run(case: Any, with_key: bool) -> None:
                resp = _send(client, case, api_key if with_key else None)
                if resp is None:
                    report.unsendable += 1
                    return
                report.requests += 1
                report.by_operation[label] += 1
                _check(report, label, case, resp)

            try:
                hseed(seed)(run)()
            except Unsatisfiable:  # nothing to break (no parameters): negative mode is empty
                report.unsatisfiable.append(f"{label} {mode.value}")
    report.seconds = time.perf_counter() - t0
    return report
