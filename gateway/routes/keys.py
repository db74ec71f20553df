"""Operator routes for partner API keys: create (secret shown once) and revoke."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from contracts.partners import ApiKey, ApiKeyCreated
from gateway.auth.operator import provide_operator, require_role
from gateway.partner_state import PartnerGateway
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from partners import operations

OPERATOR = {"operator": Provide(provide_operator)}
# The one response that carries a secret must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}


@post(
    "/v1/operator/partners/{partner_id:int}/keys",
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
    response_headers=NO_STORE,
)
async def create_key(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    operator: NamedDependency[OperatorClaims],
) -> ApiKeyCreated:
    gateway: PartnerGateway = request.app.state.partner_gateway
    return await in_transaction(
        request,
        lambda conn: operations.create_api_key(
            conn, gateway.keybox, partner_id, operator=operator.subject
        ),
    )


@delete(
    "/v1/operator/partners/{partner_id:int}/keys/{key_id:str}",
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
    status_code=200,
)
async def revoke_key(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    key_id: FromPath[str],
    operator: NamedDependency[OperatorClaims],
) -> ApiKey:
    revoked = await in_transaction(
        request,
        lambda conn: operations.revoke_api_key(conn, partner_id, key_id, operator=operator.subject),
    )
    # This process refuses the key at once; other processes within the key cache's TTL.
    gateway: PartnerGateway = request.app.state.partner_gateway
    gateway.keys.forget(key_id)
    return revoked


ROUTES = [create_key, revoke_key]
