"""Operator authentication: a Bearer JWT with a role, checked per route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from contracts.errors import ErrorCode
from gateway.errors import ApiError
from gateway.state import AppState
from gateway.tokens import OperatorClaims, Role, TokenRejected, verify_operator

BEARER_PREFIX = "bearer "
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coalition-operator"'}


def _claims(connection: ASGIConnection[Any, Any, Any, Any]) -> OperatorClaims:
    cached = connection.scope.get("state", {}).get("operator")
    if isinstance(cached, OperatorClaims):
        return cached
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith(BEARER_PREFIX):
        raise ApiError(
            401,
            ErrorCode.UNAUTHENTICATED,
            "an operator Bearer token is required",
            headers=CHALLENGE,
        )
    app_state: AppState = connection.app.state.app
    try:
        claims = verify_operator(header[len(BEARER_PREFIX) :].strip(), app_state.verification_keys)
    except TokenRejected as exc:
        raise ApiError(401, exc.code, str(exc), headers=CHALLENGE) from None
    connection.scope.setdefault("state", {})["operator"] = claims
    return claims


def require_role(
    *roles: Role,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard admitting operators whose role is one of `roles`."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        claims = _claims(connection)
        if claims.role not in allowed:
            wanted = ", ".join(sorted(r.value for r in allowed))
            raise ApiError(
                403,
                ErrorCode.ROLE_REQUIRED,
                f"this call needs the role {wanted}",
                extra={"role": claims.role.value},
            )

    return guard


async def provide_operator(request: Request[Any, Any, Any]) -> OperatorClaims:
    return _claims(request)
