"""Partner route: a short-lived shopper session for a shopper the partner app authenticated.

Not replayed through the idempotency store: minting changes nothing, and a stored bearer token
would be a credential at rest. A retry simply gets a fresh token.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.shoppers import ShopperToken, ShopperTokenRequest
from gateway.auth.signatures import Caller
from gateway.routes._common import in_transaction
from gateway.state import AppState
from gateway.tokens import mint_shopper
from shoppers import sessions


@post("/v1/shopper-tokens", status_code=201)
async def create_shopper_token(
    request: Request[Any, Any, Any],
    data: JSONBody[ShopperTokenRequest],
    caller: NamedDependency[Caller],
) -> ShopperToken:
    shopper_id = await in_transaction(
        request, lambda conn: sessions.shopper_for_session(conn, data)
    )
    app_state: AppState = request.app.state.app
    token = mint_shopper(
        app_state.signing_key, shopper_id=shopper_id, partner_id=caller.partner_id, ttl_s=data.ttl_s
    )
    return ShopperToken(
        access_token=token,
        token_type="Bearer",  # noqa: S106 (the scheme, not a secret)
        expires_in_s=data.ttl_s,
        shopper_id=shopper_id,
    )


ROUTES = [create_shopper_token]
