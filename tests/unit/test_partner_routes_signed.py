"""The partner router authenticates in its `before_request`, and the app will not start if a
partner route would resolve to another hook (a closer layer's hook replaces the router's)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, Request, Router, get

from gateway.app import PARTNER_TAG, _require_partner_routes_signed
from gateway.auth.signatures import signed_partner


async def _own_hook(request: Request[Any, Any, Any]) -> None:
    return None


@get("/v1/plain", sync_to_thread=False)
def plain() -> str:
    return "plain"


@get("/v1/own-hook", before_request=_own_hook, sync_to_thread=False)
def own_hook() -> str:
    return "own"


def _app(*handlers: Any) -> Litestar:
    router = Router(
        path="/", route_handlers=list(handlers), before_request=signed_partner, tags=[PARTNER_TAG]
    )
    return Litestar(route_handlers=[router])


def test_partner_routes_on_the_routers_hook_start() -> None:
    _require_partner_routes_signed(_app(plain))


def test_a_partner_route_with_a_hook_of_its_own_stops_the_start() -> None:
    with pytest.raises(RuntimeError, match="/v1/own-hook"):
        _require_partner_routes_signed(_app(plain, own_hook))
