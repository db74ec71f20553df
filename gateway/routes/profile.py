"""`GET /v1/shoppers/{card_number}/profile`: the checkout profile (signed partner call)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from contracts.analytics import ShopperProfile
from contracts.campaigns import Offer
from gateway.auth.signatures import Caller
from gateway.routes._common import in_transaction
from infra.db import Conn
from partners import campaigns
from shoppers import profile


async def _offers(conn: Conn, shopper_id: int, partner_id: int) -> Sequence[Offer]:
    return await campaigns.offers_for_shopper(conn, shopper_id, partner_id=partner_id)


@get("/v1/shoppers/{card_number:str}/profile")
async def checkout_profile(
    request: Request[Any, Any, Any], card_number: FromPath[str], caller: NamedDependency[Caller]
) -> ShopperProfile:
    return await in_transaction(
        request,
        lambda conn: profile.checkout_profile(
            conn, caller.partner_id, card_number, now=datetime.now(UTC), offers_for=_offers
        ),
    )


ROUTES = [checkout_profile]
