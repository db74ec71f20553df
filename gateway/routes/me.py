"""Shopper routes under `/v1/me`, authenticated by a shopper Bearer token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Router, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.shoppers import (
    HISTORY_LIMIT_DEFAULT,
    HISTORY_LIMIT_MAX,
    Balance,
    Consent,
    ConsentUpdate,
    Erasure,
    Expiring,
    HistoryPage,
    NpsAnswer,
    NpsRecorded,
    Offers,
    PhoneLink,
    Profile,
    ProfileUpdate,
    QrTokenIssued,
    Referral,
    TierProgress,
)
from gateway.auth.shopper import phone_hasher, provide_shopper, shopper_bearer
from gateway.routes._common import in_transaction, read_only
from gateway.tokens import ShopperClaims
from infra.db import Conn
from partners import campaigns
from shoppers import account, erasure, identity, referrals

CURSOR_CHARS_MAX = 512
Shopper = NamedDependency[ShopperClaims]


@get("/me")
async def get_profile(request: Request[Any, Any, Any], shopper: Shopper) -> Profile:
    return await in_transaction(request, lambda conn: account.profile(conn, shopper.shopper_id))


@patch("/me")
async def update_profile(
    request: Request[Any, Any, Any], data: JSONBody[ProfileUpdate], shopper: Shopper
) -> Profile:
    return await in_transaction(
        request, lambda conn: account.update_profile(conn, shopper.shopper_id, data)
    )


@put("/me/phone")
async def link_phone(
    request: Request[Any, Any, Any], data: JSONBody[PhoneLink], shopper: Shopper
) -> Profile:
    hasher = phone_hasher(request)

    async def link(conn: Conn) -> Profile:
        await identity.link_phone(conn, hasher, shopper.shopper_id, data.phone)
        return await account.profile(conn, shopper.shopper_id)

    return await in_transaction(request, link)


@post("/me/qr-token", status_code=201)
async def issue_qr_token(request: Request[Any, Any, Any], shopper: Shopper) -> QrTokenIssued:
    token = await in_transaction(
        request,
        lambda conn: identity.issue_qr_token(conn, shopper.shopper_id),
    )
    return QrTokenIssued(qr_token=token)


@get("/me/balance")
async def get_balance(request: Request[Any, Any, Any], shopper: Shopper) -> Balance:
    return await read_only(
        request, lambda conn: account.balance(conn, shopper.shopper_id, now=datetime.now(UTC))
    )


@get("/me/history")
async def get_history(
    request: Request[Any, Any, Any],
    shopper: Shopper,
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=HISTORY_LIMIT_MAX)] = HISTORY_LIMIT_DEFAULT,
) -> HistoryPage:
    return await read_only(
        request,
        lambda conn: account.history(conn, shopper.shopper_id, cursor=cursor, limit=limit),
    )


@get("/me/expiring")
async def get_expiring(request: Request[Any, Any, Any], shopper: Shopper) -> Expiring:
    return await in_transaction(
        request, lambda conn: account.expiring(conn, shopper.shopper_id, now=datetime.now(UTC))
    )


@get("/me/tier")
async def get_tier(request: Request[Any, Any, Any], shopper: Shopper) -> TierProgress:
    return await in_transaction(
        request, lambda conn: account.tier(conn, shopper.shopper_id, now=datetime.now(UTC))
    )


@get("/me/offers")
async def get_offers(request: Request[Any, Any, Any], shopper: Shopper) -> Offers:
    async def offers(conn: Conn) -> Offers:
        shopper_id = await account.live_shopper_id(conn, shopper.shopper_id)
        return Offers(items=await campaigns.offers_for_shopper(conn, shopper_id))

    return await in_transaction(request, offers)


@get("/me/consent")
async def get_consent(request: Request[Any, Any, Any], shopper: Shopper) -> Consent:
    return await in_transaction(request, lambda conn: account.consent(conn, shopper.shopper_id))


@put("/me/consent")
async def update_consent(
    request: Request[Any, Any, Any], data: JSONBody[ConsentUpdate], shopper: Shopper
) -> Consent:
    return await in_transaction(
        request, lambda conn: account.update_consent(conn, shopper.shopper_id, data)
    )


@get("/me/referral-code")
async def get_referral_code(request: Request[Any, Any, Any], shopper: Shopper) -> Referral:
    async def code(conn: Conn) -> Referral:
        shopper_id = await account.live_shopper_id(conn, shopper.shopper_id)
        return Referral(code=await referrals.code_for(conn, shopper_id))

    return await in_transaction(request, code)


@post("/me/nps", status_code=201)
async def answer_nps(
    request: Request[Any, Any, Any], data: JSONBody[NpsAnswer], shopper: Shopper
) -> NpsRecorded:
    return await in_transaction(
        request, lambda conn: account.answer_nps(conn, shopper.shopper_id, data)
    )


@post("/me/erasure", status_code=200)
async def erase(request: Request[Any, Any, Any], shopper: Shopper) -> Erasure:
    return await in_transaction(
        request, lambda conn: erasure.erase(conn, shopper.shopper_id, now=datetime.now(UTC))
    )


ME = Router(
    path="/v1",
    route_handlers=[
        get_profile,
        update_profile,
        link_phone,
        issue_qr_token,
        get_balance,
        get_history,
        get_expiring,
        get_tier,
        get_offers,
        get_consent,
        update_consent,
        get_referral_code,
        answer_nps,
        erase,
    ],
    guards=[shopper_bearer],
    dependencies={"shopper": Provide(provide_shopper)},
    tags=["shopper"],
)
ROUTES = [ME]
