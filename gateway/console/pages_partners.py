"""Partners: the list, one partner with its pricing history and API keys, key creation and
revocation (admin only: the buttons are not shown to other roles and a forged POST is refused
the same way). Revocation has a confirmation page and calls the function DELETE
.../keys/{key_id} calls. Onboarding and new pricing versions are in pages_onboarding.py, over
`partners_page` and `partner_page`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from contracts.partners import (
    AMOUNT_MINOR_MAX,
    EARN_POINTS_MAX,
    PRICE_MICROS_MAX,
    RATE_LIMIT_PER_S_DEFAULT,
    RATE_LIMIT_PER_S_MAX,
    ApiKey,
    ApiKeyCreated,
    Partner,
    PricingVersion,
    RateLimitUpdate,
)
from gateway.console import audit
from gateway.console.access import Area, may
from gateway.console.forms import as_request, text_field
from gateway.console.web import page, require
from gateway.partner_state import PartnerGateway
from gateway.routes._common import PathId, in_transaction
from gateway.routes.partners import forget_keys
from infra.db import Conn
from partners import directory, operations
from partners.errors import NotFound, PricingNotEffective

# The bounds the partner forms' inputs show (the contracts enforce them again on the server).
FORM_BOUNDS = {
    "price_micros_max": PRICE_MICROS_MAX,
    "earn_points_max": EARN_POINTS_MAX,
    "amount_minor_max": AMOUNT_MINOR_MAX,
    "rate_limit_per_s_max": RATE_LIMIT_PER_S_MAX,
}
PRICING_TERMS = ("issue_price_micros", "redemption_price_micros", "earn_points", "earn_spend_minor")


@get("/console/partners")
async def partners(request: Request[Any, Any, Any]) -> Template:
    return await partners_page(request)


async def partners_page(
    request: Request[Any, Any, Any], *, status_code: int = 200, **context: Any
) -> Template:
    """The list (and, for an admin, the onboarding form, re-shown with `context` on an error)."""
    require(request, Area.PARTNERS)
    found = await in_transaction(request, directory.list_partners)
    return page(
        request,
        "partners.html",
        title="Partners",
        active="Partners",
        status_code=status_code,
        partners=found,
        bounds=FORM_BOUNDS,
        **({"onboard_values": {"rate_limit_per_s": str(RATE_LIMIT_PER_S_DEFAULT)}} | context),
    )


@get("/console/partners/{partner_id:int}")
async def partner(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    revoked: FromQuery[str | None] = None,
    created: FromQuery[bool] = False,
    priced: FromQuery[int | None] = None,
) -> Template:
    return await partner_page(
        request, partner_id, notice=Notice(revoked=revoked, created=created, priced=priced)
    )


@dataclass(frozen=True)
class Notice:
    """What the previous action did, said from the page's own records (the partner's name, a
    version it has, a key of its that is revoked): the query is never echoed blindly."""

    revoked: str | None = None
    created: bool = False
    priced: int | None = None

    def text(self, p: Partner, keys: list[ApiKey]) -> str | None:
        if self.created:
            return f"{p.name} is onboarded with pricing version 1."
        if any(v.version == self.priced for v in p.pricing):
            return f"Pricing version {self.priced} is added."
        return next(
            (
                f"Key {k.key_id} is revoked."
                for k in keys
                if k.key_id == self.revoked and k.revoked_at
            ),
            None,
        )


def pricing_states(p: Partner, in_effect: int | None, now: datetime) -> dict[int, str]:
    """Each version's place in the history: the one in effect, those still to come."""
    return {
        v.version: "in effect" if v.version == in_effect else "scheduled"
        for v in p.pricing
        if v.version == in_effect or v.effective_at > now
    }


async def partner_page(
    request: Request[Any, Any, Any],
    partner_id: int,
    *,
    notice: Notice | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """One partner: pricing history, rate limit, keys (and forms re-shown with `context`)."""
    user = require(request, Area.PARTNERS)
    shows_keys = may(user.role, Area.KEYS)

    async def read(conn: Conn) -> tuple[Partner, int | None, list[ApiKey]]:
        found = await operations.get_partner(conn, partner_id)
        keys = await directory.list_keys(conn, partner_id) if shows_keys else []
        return found, await in_effect_version(conn, partner_id), keys

    found, in_effect, keys = await in_transaction(request, read)
    current = next((v for v in found.pricing if v.version == in_effect), None)
    return page(
        request,
        "partner.html",
        title=found.name,
        active="Partners",
        status_code=status_code,
        p=found,
        pricing_state=pricing_states(found, in_effect, datetime.now(UTC)),
        keys=keys,
        shows_keys=shows_keys,
        done=notice.text(found, keys) if notice else None,
        bounds=FORM_BOUNDS,
        **({"pricing_values": _terms(current)} | context),
    )


def _terms(version: PricingVersion | None) -> dict[str, str]:
    """The new-version form starts from the pricing in effect: change what changes."""
    if version is None:
        return {}
    return {name: str(getattr(version, name)) for name in PRICING_TERMS}


async def in_effect_version(conn: Conn, partner_id: int) -> int | None:
    """The version purchases are priced with now (the ledger's own choice of version)."""
    try:
        return (await operations.pricing_in_effect(conn, partner_id)).version
    except PricingNotEffective:
        return None


@post("/console/partners/{partner_id:int}/keys", status_code=201)
async def create_key(request: Request[Any, Any, Any], partner_id: PathId) -> Template:
    user = require(request, Area.KEYS_CREATE)
    gateway: PartnerGateway = request.app.state.partner_gateway

    async def work(conn: Conn) -> tuple[Partner, ApiKeyCreated]:
        found = await operations.get_partner(conn, partner_id)
        created = await operations.create_api_key(
            conn, gateway.keybox, partner_id, operator=user.email
        )
        # The secret is shown once, on this page, and never written to the audit log.
        await audit.record(
            conn,
            user,
            "api_key.create",
            f"partner:{partner_id}",
            after={"key_id": created.key_id},
        )
        return found, created

    found, created = await in_transaction(request, work)
    return page(
        request,
        "key_created.html",
        title="API key created",
        active="Partners",
        status_code=201,
        p=found,
        created=created,
    )


async def _key_of(conn: Conn, partner_id: int, key_id: str) -> tuple[Partner, ApiKey]:
    """The partner and one of its keys; another partner's key id answers 404."""
    found = await operations.get_partner(conn, partner_id)
    for key in await directory.list_keys(conn, partner_id):
        if key.key_id == key_id:
            return found, key
    raise NotFound("key")


def _key_state(key: ApiKey) -> dict[str, Any]:
    return {"key_id": key.key_id, "revoked_at": key.revoked_at}


@get("/console/partners/{partner_id:int}/keys/{key_id:str}/revoke")
async def revoke_key_confirm(
    request: Request[Any, Any, Any], partner_id: PathId, key_id: FromPath[str]
) -> Template:
    require(request, Area.KEYS_REVOKE)
    found, key = await in_transaction(request, lambda conn: _key_of(conn, partner_id, key_id))
    return page(
        request,
        "confirm_revoke_key.html",
        title=f"Revoke key {key_id}",
        active="Partners",
        p=found,
        key=key,
    )


@post("/console/partners/{partner_id:int}/keys/{key_id:str}/revoke", status_code=303)
async def revoke_key(
    request: Request[Any, Any, Any], partner_id: PathId, key_id: FromPath[str]
) -> Redirect:
    user = require(request, Area.KEYS_REVOKE)
    gateway: PartnerGateway = request.app.state.partner_gateway

    async def work(conn: Conn) -> None:
        _, before = await _key_of(conn, partner_id, key_id)
        after = await operations.revoke_api_key(conn, partner_id, key_id, operator=user.email)
        await audit.record(
            conn,
            user,
            "api_key.revoke",
            f"partner:{partner_id}",
            before=_key_state(before),
            after=_key_state(after),
        )

    await in_transaction(request, work)
    # As the API route does: this process refuses the key at once, others within the cache TTL.
    gateway.keys.forget(key_id)
    return Redirect(f"/console/partners/{partner_id}?revoked={key_id}", status_code=303)


def _per_s(value: str) -> int:
    """A rate limit typed into the form, read as the PUT route's own contract, else 400."""
    update = as_request({"rate_limit_per_s": value}, RateLimitUpdate, RATE_LIMIT_LABEL)
    return update.rate_limit_per_s


RATE_LIMIT_LABEL = {"rate_limit_per_s": "The rate limit"}


RATE_LIMIT_CHARS_MAX = 9


@get("/console/partners/{partner_id:int}/rate-limit")
async def rate_limit_confirm(
    request: Request[Any, Any, Any], partner_id: PathId, per_s: FromQuery[str] = ""
) -> Template:
    """What the change would do; nothing changes until it is confirmed."""
    require(request, Area.RATE_LIMIT)
    wanted = _per_s(per_s[:RATE_LIMIT_CHARS_MAX])
    found = await in_transaction(request, lambda conn: operations.get_partner(conn, partner_id))
    return page(
        request,
        "confirm_rate_limit.html",
        title=f"Rate limit of {found.name}",
        active="Partners",
        p=found,
        per_s=wanted,
    )


@post("/console/partners/{partner_id:int}/rate-limit", status_code=303)
async def set_rate_limit(request: Request[Any, Any, Any], partner_id: PathId) -> Redirect:
    user = require(request, Area.RATE_LIMIT)
    wanted = _per_s(text_field(await request.form(), "per_s", RATE_LIMIT_CHARS_MAX))

    async def work(conn: Conn) -> list[str]:
        before = await operations.set_rate_limit(conn, partner_id, wanted)
        await audit.record(
            conn,
            user,
            "partner.rate_limit",
            f"partner:{partner_id}",
            before={"rate_limit_per_s": before},
            after={"rate_limit_per_s": wanted},
        )
        return [k.key_id for k in await directory.list_keys(conn, partner_id)]

    key_ids = await in_transaction(request, work)
    forget_keys(request, key_ids)  # as the API route does
    return Redirect(f"/console/partners/{partner_id}", status_code=303)


ROUTES = [
    partners,
    partner,
    create_key,
    revoke_key_confirm,
    revoke_key,
    rate_limit_confirm,
    set_rate_limit,
]
