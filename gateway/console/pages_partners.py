"""Partners: the list, one partner with its pricing and API keys, key creation (admin only:
the button is not shown to other roles and a forged POST is refused the same way)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Template

from contracts.partners import ApiKey, ApiKeyCreated, Partner
from gateway.console import audit
from gateway.console.access import Area, may
from gateway.console.web import page, require
from gateway.partner_state import PartnerGateway
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from partners import directory, operations


@get("/console/partners")
async def partners(request: Request[Any, Any, Any]) -> Template:
    require(request, Area.PARTNERS)
    found = await in_transaction(request, directory.list_partners)
    return page(request, "partners.html", title="Partners", active="Partners", partners=found)


@get("/console/partners/{partner_id:int}")
async def partner(request: Request[Any, Any, Any], partner_id: PathId) -> Template:
    user = require(request, Area.PARTNERS)
    shows_keys = may(user.role, Area.KEYS)

    async def read(conn: Conn) -> tuple[Partner, list[ApiKey]]:
        found = await operations.get_partner(conn, partner_id)
        return found, (await directory.list_keys(conn, partner_id) if shows_keys else [])

    found, keys = await in_transaction(request, read)
    return page(
        request,
        "partner.html",
        title=found.name,
        active="Partners",
        p=found,
        keys=keys,
        shows_keys=shows_keys,
    )


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


ROUTES = [partners, partner, create_key]
