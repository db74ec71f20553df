"""Which shopper a partner app may open a session for."""

from __future__ import annotations

from contracts.shoppers import ShopperTokenRequest
from infra.db import Conn
from shoppers import account, identity, service

__all__ = ["shopper_for_session"]


async def shopper_for_session(conn: Conn, req: ShopperTokenRequest) -> int:
    """The live shopper behind the card (refused when blocked or replaced) or the QR token."""
    if req.card_number is not None:
        shopper_id = (await service.resolve_card(conn, req.card_number)).shopper_id
    else:
        assert req.qr_token is not None, "the contract requires exactly one identifier"
        shopper_id = await identity.resolve_qr_token(conn, req.qr_token)
    return await account.live_shopper_id(conn, shopper_id)
