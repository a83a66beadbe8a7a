"""FastAPI dependencies as ``Annotated`` aliases (the full-stack template's ``deps.py``)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import SecretStr

from reelpick.serve.bundle import ModelBundle
from reelpick.serve.errors import ApiError
from reelpick.serve.settings import Settings
from reelpick.serve.state import ServiceState
from reelpick.serve.store import EventStore


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_store(state: StateDep) -> EventStore:
    return state.store


async def get_bundle(state: StateDep) -> ModelBundle:
    return state.bundle


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[EventStore, Depends(get_store)]
BundleDep = Annotated[ModelBundle, Depends(get_bundle)]

_KEY_HEADER = Header(alias="X-API-Key", description="API key (settings: REELPICK_API_KEY).")


def _check(expected: SecretStr | None, given: str | None, what: str) -> None:
    if expected is None:
        raise ApiError(403, ["header", "X-API-Key"],
                       f"{what} are disabled: the server has no API key configured", "forbidden")
    if given is None:
        raise ApiError(401, ["header", "X-API-Key"], "missing API key", "missing",
                       {"WWW-Authenticate": "ApiKey"})
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(403, ["header", "X-API-Key"], "wrong API key", "forbidden")


async def require_api_key(state: StateDep,
                    x_api_key: Annotated[str | None, _KEY_HEADER] = None) -> None:
    _check(state.settings.api_key, x_api_key, "writes")


async def require_admin_key(state: StateDep,
                      x_api_key: Annotated[str | None, _KEY_HEADER] = None) -> None:
    _check(state.settings.admin_secret(), x_api_key, "admin endpoints")


ApiKeyDep = Annotated[None, Depends(require_api_key)]
AdminKeyDep = Annotated[None, Depends(require_admin_key)]
