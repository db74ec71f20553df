"""Resolving a reconciliation difference (finance only, as POST
/v1/operator/reconciliations/{id}/items/{n}/resolve): a confirmation page shows the item and
asks for the API's choices (explain with a reason, or adjust with a ledger entry), then the
POST calls the same `ledger.reconciliation.resolve_item` and appends a `reconciliation.resolve`
audit entry (the item before and after) in the same transaction."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import ValidationException
from litestar.response import Redirect, Template

from contracts.settlement import REASON_CHARS_MAX, ReconciliationItem, ResolveRequest
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.forms import required, text_field
from gateway.console.users import ConsoleUser
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from ledger import reconciliation

PATH = "/console/reconciliations/{reconciliation_id:int}/items/{item_no:int}/resolve"
ACTIONS = {"explain": "Explain", "adjust": "Adjust with a ledger entry"}
ACTION_CHARS_MAX = 16
WHOLE_CHARS_MAX = 20  # a sign and 19 digits: every int64
WHOLE = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only, not "²" or "٣"


def _actor(user: ConsoleUser) -> str:
    # As the operator API names its actors (role:subject), with the console user's email.
    return f"{user.role.value}:{user.email}"


def _whole(form: FormMultiDict, name: str) -> int | None:
    text = text_field(form, name, WHOLE_CHARS_MAX)
    if not text:
        return None
    if not WHOLE.fullmatch(text):
        raise ValidationException(f"{name} must be a whole number")
    return int(text)


def resolve_request(form: FormMultiDict) -> ResolveRequest:
    """The form as the API's body: the same contract, so the same bounds and text rule."""
    action = text_field(form, "action", ACTION_CHARS_MAX)
    if action not in ACTIONS:
        raise ValidationException("choose how to resolve: explain or adjust")
    fields: dict[str, Any] = {
        "action": action,
        "reason": required(form, "reason", REASON_CHARS_MAX),
    }
    if action == "adjust":  # explain takes no ledger entry: numbers typed anyway are dropped
        for name in ("shopper_id", "points", "issue_price_micros"):
            fields[name] = _whole(form, name)
    try:
        return msgspec.convert(fields, ResolveRequest)
    except msgspec.ValidationError as exc:
        raise ValidationException(str(exc)) from None


def _state(item: ReconciliationItem) -> dict[str, Any]:
    return {
        "item_no": item.item_no,
        "status": item.status,
        "resolution": item.resolution,
        "resolution_reason": item.resolution_reason,
        "resolved_by": item.resolved_by,
        "resolved_at": item.resolved_at,
        "adjustment_entry_id": item.adjustment_entry_id,
    }


@get(PATH)
async def resolve_confirm(
    request: Request[Any, Any, Any], reconciliation_id: PathId, item_no: PathId
) -> Template:
    """The item and the choices; nothing changes until the form is posted. An item already
    resolved answers 409 with who resolved it, and no form."""
    require(request, Area.RECONCILIATION_RESOLVE)
    item = await in_transaction(
        request,
        lambda conn: reconciliation.get_item(conn, reconciliation_id, item_no, partner_id=None),
    )
    return page(
        request,
        "confirm_resolve.html",
        title=f"Resolve item {item_no} of reconciliation {reconciliation_id}",
        active="Reconciliations",
        status_code=409 if item.resolution is not None else 200,
        reconciliation_id=reconciliation_id,
        i=item,
        actions=ACTIONS,
    )


@post(PATH, status_code=303)
async def resolve(
    request: Request[Any, Any, Any], reconciliation_id: PathId, item_no: PathId
) -> Redirect:
    user = require(request, Area.RECONCILIATION_RESOLVE)
    wanted = resolve_request(await request.form())

    async def work(conn: Conn) -> None:
        before = await reconciliation.get_item(conn, reconciliation_id, item_no, partner_id=None)
        after = await reconciliation.resolve_item(
            conn, reconciliation_id, item_no, actor=_actor(user), request=wanted
        )
        await audit.record(
            conn,
            user,
            "reconciliation.resolve",
            f"reconciliation:{reconciliation_id}",
            before=_state(before),
            after=_state(after),
            detail={"item_no": item_no, **msgspec.to_builtins(wanted)},
        )

    await in_transaction(request, work)
    return Redirect(
        f"/console/reconciliations/{reconciliation_id}?resolved={item_no}", status_code=303
    )


ROUTES = [resolve_confirm, resolve]
