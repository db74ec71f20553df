"""Onboarding a partner and adding a pricing version (admin only, as POST /v1/operator/partners
and POST .../pricing): each is a form, a confirmation page that changes nothing, then a POST
that calls the API route's own service function (partners.operations.create_partner,
add_pricing_version) and appends the audit entry in the same transaction.

Forms are read into the API's request contracts (`forms.as_request`), so a page refuses what
the JSON route refuses, in the form's words; the form is shown again with its values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template

from contracts.partners import (
    Partner,
    PartnerCreate,
    PricingVersion,
    PricingVersionCreate,
)
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.forms import FIELD_CHARS_MAX, FormInvalid, as_request, required
from gateway.console.pages_partners import in_effect_version, partner_page, partners_page
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from partners import operations

PRICING_LABELS = {
    "issue_price_micros": "Issue price (micro-units per point)",
    "redemption_price_micros": "Redemption price (micro-units per point)",
    "earn_points": "Points earned",
    "earn_spend_minor": "Per spend of (minor units)",
    "effective_at": "Takes effect at (UTC)",
}
PARTNER_LABELS = {
    "name": "Name",
    "slug": "Slug",
    "rate_limit_per_s": "Rate limit (calls per second per key)",
    **PRICING_LABELS,
}
FORMATS = {"slug": "2 to 63 lowercase letters, digits or hyphens, not starting with a hyphen"}
VERSION_CHARS_MAX = 9


def _fields(req: msgspec.Struct) -> dict[str, str]:
    """A request as the hidden fields of its confirmation form (read back by `as_request`)."""
    values = msgspec.to_builtins(req)
    return {name: "" if value is None else str(value) for name, value in values.items()}


def _form_values(query: Any, labels: dict[str, str]) -> dict[str, str]:
    """What was typed, to fill the form again (cut: the page never echoes a long text)."""
    return {name: str(query.get(name, ""))[:FIELD_CHARS_MAX] for name in labels}


# ---- onboarding ------------------------------------------------------------------------------


@get("/console/partners/onboard")
async def onboard_confirm(request: Request[Any, Any, Any]) -> Template:
    """What onboarding would create; nothing is created until it is confirmed."""
    require(request, Area.PARTNER_CREATE)
    try:
        req = as_request(request.query_params, PartnerCreate, PARTNER_LABELS, FORMATS)
    except FormInvalid as exc:
        return await partners_page(
            request,
            status_code=400,
            onboard_error=exc,
            onboard_values=_form_values(request.query_params, PARTNER_LABELS),
        )
    return page(
        request,
        "confirm_onboard.html",
        title=f"Onboard {req.name}",
        active="Partners",
        req=req,
        fields=_fields(req),
    )


@post("/console/partners/onboard", status_code=303)
async def onboard(request: Request[Any, Any, Any]) -> Redirect:
    user = require(request, Area.PARTNER_CREATE)
    req = as_request(await request.form(), PartnerCreate, PARTNER_LABELS, FORMATS)

    async def work(conn: Conn) -> Partner:
        created = await operations.create_partner(conn, req, operator=user.email)
        await audit.record(
            conn,
            user,
            "partner.create",
            f"partner:{created.id}",
            after={
                "id": created.id,
                "name": created.name,
                "slug": created.slug,
                "rate_limit_per_s": created.rate_limit_per_s,
                "pricing": msgspec.to_builtins(created.pricing),
            },
        )
        return created

    created = await in_transaction(request, work)
    return Redirect(f"/console/partners/{created.id}?created=true", status_code=303)


# ---- pricing versions ------------------------------------------------------------------------


class PricingChanged(HTTPException):
    """Another version was added since the confirmation was shown (or it was posted twice)."""

    status_code = 409


def _version(p: Partner, number: int | None) -> PricingVersion | None:
    return next((v for v in p.pricing if v.version == number), None)


@get("/console/partners/{partner_id:int}/pricing")
async def pricing_confirm(request: Request[Any, Any, Any], partner_id: PathId) -> Template:
    """The pricing in effect beside the new version; nothing changes until it is confirmed."""
    require(request, Area.PRICING)
    try:
        req = as_request(request.query_params, PricingVersionCreate, PRICING_LABELS)
    except FormInvalid as exc:
        return await partner_page(
            request,
            partner_id,
            status_code=400,
            pricing_error=exc,
            pricing_values=_form_values(request.query_params, PRICING_LABELS),
        )

    async def read(conn: Conn) -> tuple[Partner, int | None]:
        return await operations.get_partner(conn, partner_id), await in_effect_version(
            conn, partner_id
        )

    found, in_effect = await in_transaction(request, read)
    now = datetime.now(UTC)
    return page(
        request,
        "confirm_pricing.html",
        title=f"New pricing for {found.name}",
        active="Partners",
        p=found,
        current=_version(found, in_effect),
        req=req,
        next_version=found.pricing[-1].version + 1,  # as the service numbers them
        scheduled=[v for v in found.pricing if v.effective_at > now],
        fields=_fields(req),
    )


@post("/console/partners/{partner_id:int}/pricing", status_code=303)
async def add_pricing(request: Request[Any, Any, Any], partner_id: PathId) -> Redirect:
    user = require(request, Area.PRICING)
    form = await request.form()
    req = as_request(form, PricingVersionCreate, PRICING_LABELS)
    expected = required(form, "next_version", VERSION_CHARS_MAX)
    if not (expected.isascii() and expected.isdigit()):
        raise ValidationException("next_version must be a whole number")

    async def work(conn: Conn) -> int:
        before = _version(
            await operations.get_partner(conn, partner_id),
            await in_effect_version(conn, partner_id),
        )
        after = await operations.add_pricing_version(conn, partner_id, req, operator=user.email)
        added = after.pricing[-1]
        # The service locks the partner: a version added meanwhile (another admin, or this
        # confirmation posted twice) shows here, and this transaction rolls back.
        if added.version != int(expected):
            raise PricingChanged(
                detail=f"The pricing changed since this confirmation was shown: version"
                f" {added.version - 1} exists now. Open the partner again and start over."
            )
        await audit.record(
            conn,
            user,
            "partner.pricing",
            f"partner:{partner_id}",
            before=msgspec.to_builtins(before),
            after=msgspec.to_builtins(added),
        )
        return added.version

    version = await in_transaction(request, work)
    return Redirect(f"/console/partners/{partner_id}?priced={version}", status_code=303)


ROUTES = [onboard_confirm, onboard, pricing_confirm, add_pricing]
