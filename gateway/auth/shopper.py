"""Shopper authentication: a Bearer shopper JWT (minted by `POST /v1/shopper-tokens`)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from contracts.errors import ErrorCode
from gateway.errors import ApiError
from gateway.state import AppState
from gateway.tokens import ShopperClaims, TokenRejected, verify_shopper
from partners import keybox
from shoppers.identity import PhoneHasher

BEARER_PREFIX = "bearer "
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coalition-shopper"'}
_STATE_KEY = "shopper"
_HASHER_ATTR = "phone_hasher"


def _claims(connection: ASGIConnection[Any, Any, Any, Any]) -> ShopperClaims:
    cached = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(cached, ShopperClaims):
        return cached
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith(BEARER_PREFIX):
        raise ApiError(
            401, ErrorCode.UNAUTHENTICATED, "a shopper Bearer token is required", headers=CHALLENGE
        )
    app_state: AppState = connection.app.state.app
    try:
        claims = verify_shopper(header[len(BEARER_PREFIX) :].strip(), app_state.verification_keys)
    except TokenRejected as exc:
        raise ApiError(401, exc.code, str(exc), headers=CHALLENGE) from None
    connection.scope.setdefault("state", {})[_STATE_KEY] = claims
    return claims


def shopper_bearer(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every `/v1/me` route."""
    _claims(connection)


async def provide_shopper(request: Request[Any, Any, Any]) -> ShopperClaims:
    return _claims(request)


def phone_hasher(request: Request[Any, Any, Any]) -> PhoneHasher:
    """The phone hasher, keyed from the master key the partner key box uses (built once)."""
    hasher = getattr(request.app.state, _HASHER_ATTR, None)
    if isinstance(hasher, PhoneHasher):
        return hasher
    settings = request.app.state.app.settings
    if settings.master_key:
        master_key = keybox.parse_master_key(settings.master_key)
    else:
        keybox.load_or_create(settings.data_dir, None)  # the file exists from here on
        master_key = keybox.parse_master_key(
            (settings.data_dir / keybox.KEY_FILE_NAME).read_text(encoding="utf-8")
        )
    hasher = PhoneHasher(master_key)
    setattr(request.app.state, _HASHER_ATTR, hasher)
    return hasher
