"""Shopper support: find a shopper by card or phone; their balance, lots, holds, history and
cards; merge two cards, block a lost card and reissue, a goodwill credit, erasure.

Each action has a confirmation page (GET) and a POST that checks the role, calls the service
function the operator API calls (shoppers.identity, shoppers.erasure, shoppers.support over
ledger.service.goodwill) and writes the audit entry in the same transaction.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from contracts.errors import DomainError
from gateway.auth.shopper import phone_hasher
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.forms import required
from gateway.console.users import ConsoleUser
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from shoppers import erasure, identity, support

QUERY_CHARS_MAX = 32
REQUEST_ID_CHARS_MAX = 64
ACTIONS = {
    "merge": "Merge cards",
    "replace": "Block and reissue",
    "goodwill": "Goodwill credit",
    "erase": "Erase personal data",
}


def _actor(user: ConsoleUser) -> str:
    return f"{user.role.value}:{user.email}"


def _subject(shopper_id: int) -> str:
    return f"shopper:{shopper_id}"


@get("/console/shoppers")
async def shoppers(
    request: Request[Any, Any, Any],
    q: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
    card: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
    done: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
) -> Template | Redirect:
    require(request, Area.SHOPPERS)
    text = (q or card or "").replace(" ", "")
    error = None
    if text:
        hasher = phone_hasher(request)
        try:
            shopper_id = await in_transaction(
                request, lambda conn: support.find(conn, hasher, text)
            )
        except DomainError as exc:
            # Unknown, erased or a malformed phone: said on the page, next to the search box.
            error = f"No shopper found for {text} ({exc.code})."
        else:
            return Redirect(f"/console/shoppers/{shopper_id}", status_code=303)
    return page(
        request,
        "shoppers.html",
        title="Shoppers",
        active="Shoppers",
        q=text,
        error=error,
        done="The shopper's personal data is erased." if done == "erased" else None,
    )


def _done(done: str | None, new_card: str | None) -> str | None:
    messages = {
        "merge": "The cards are merged; the balance is the sum of both.",
        "replace": f"The card is blocked. New card: {new_card}." if new_card else None,
        "goodwill": "The goodwill credit is on the balance.",
    }
    return messages.get(done or "")


@get("/console/shoppers/{shopper_id:int}")
async def shopper(
    request: Request[Any, Any, Any],
    shopper_id: PathId,
    done: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
    new_card: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
) -> Template | Redirect:
    require(request, Area.SHOPPERS)
    found = await in_transaction(
        request, lambda conn: support.overview(conn, shopper_id, now=datetime.now(UTC))
    )
    if found.shopper_id != shopper_id:  # merged into another: show the survivor
        return Redirect(f"/console/shoppers/{found.shopper_id}", status_code=303)
    return page(
        request,
        "shopper.html",
        title=f"Shopper {shopper_id}",
        active="Shoppers",
        s=found,
        done=_done(done, new_card),
        new_card=new_card,
        goodwill_max=support.GOODWILL_POINTS_MAX,
    )


def _action(name: str) -> str:
    if name not in ACTIONS:
        raise NotFoundException()
    return name


@get("/console/shoppers/{shopper_id:int}/{action:str}")
async def confirm(
    request: Request[Any, Any, Any],
    shopper_id: PathId,
    action: FromPath[str],
    card: Annotated[str | None, QueryParameter(max_length=QUERY_CHARS_MAX)] = None,
    points: Annotated[int | None, QueryParameter(ge=1, le=support.GOODWILL_POINTS_MAX)] = None,
    reason: Annotated[
        str | None, QueryParameter(max_length=support.GOODWILL_REASON_CHARS_MAX)
    ] = None,
) -> Template:
    require(request, Area.SHOPPERS)
    chosen = _action(action)
    hasher = phone_hasher(request)
    now = datetime.now(UTC)

    async def read(conn: Conn) -> tuple[support.Overview, support.Overview | None]:
        this = await support.overview(conn, shopper_id, now=now)
        other = None
        if chosen == "merge":
            other_id = await support.find(conn, hasher, (card or "").replace(" ", ""))
            other = await support.overview(conn, other_id, now=now)
        return this, other

    if chosen == "goodwill":
        support.check_goodwill(points or 0, reason or "")
    if chosen in ("merge", "replace") and not card:
        raise ValidationException("card is required")
    this, other = await in_transaction(request, read)
    return page(
        request,
        "shopper_confirm.html",
        title=ACTIONS[chosen],
        active="Shoppers",
        s=this,
        other=other,
        action=chosen,
        label=ACTIONS[chosen],
        card=(card or "").replace(" ", ""),
        points=points,
        reason=(reason or "").strip(),
        request_id=secrets.token_hex(16),
    )


@post("/console/shoppers/{shopper_id:int}/{action:str}", status_code=303)
async def act(
    request: Request[Any, Any, Any], shopper_id: PathId, action: FromPath[str]
) -> Redirect:
    user = require(request, Area.SHOPPERS)
    chosen = _action(action)
    form = await request.form()
    if chosen == "merge":
        return await _merge(request, user, shopper_id, form)
    if chosen == "replace":
        return await _replace(request, user, shopper_id, form)
    if chosen == "goodwill":
        return await _goodwill(request, user, shopper_id, form)
    return await _erase(request, user, shopper_id)


async def _merge(
    request: Request[Any, Any, Any], user: ConsoleUser, shopper_id: int, form: FormMultiDict
) -> Redirect:
    card = required(form, "card", QUERY_CHARS_MAX)
    reason = required(form, "reason", support.GOODWILL_REASON_CHARS_MAX)
    hasher = phone_hasher(request)
    now = datetime.now(UTC)

    async def work(conn: Conn) -> None:
        absorbed_id = await support.find(conn, hasher, card)
        before = {
            "survivor_balance": (await support.overview(conn, shopper_id, now=now)).balance,
            "absorbed_balance": (await support.overview(conn, absorbed_id, now=now)).balance,
        }
        merge = await identity.merge_shoppers(
            conn,
            survivor_id=shopper_id,
            absorbed_id=absorbed_id,
            reason=reason,
            operator=_actor(user),
            now=now,
        )
        after = {"balance": (await support.overview(conn, shopper_id, now=now)).balance}
        await audit.record(
            conn,
            user,
            "shopper.merge",
            _subject(shopper_id),
            before=before,
            after={**after, **msgspec.to_builtins(merge)},
            detail={"absorbed_card": card, "reason": reason},
        )

    await in_transaction(request, work)
    return Redirect(f"/console/shoppers/{shopper_id}?done=merge", status_code=303)


async def _replace(
    request: Request[Any, Any, Any], user: ConsoleUser, shopper_id: int, form: FormMultiDict
) -> Redirect:
    card = required(form, "card", QUERY_CHARS_MAX)
    reason = required(form, "reason", support.GOODWILL_REASON_CHARS_MAX)
    now = datetime.now(UTC)

    async def work(conn: Conn) -> str:
        this = await support.overview(conn, shopper_id, now=now)
        status = {c.card_number: c.status for c in this.cards}.get(card)
        if status is None:
            raise NotFoundException()  # another shopper's card is not this page's to block
        blocked = await identity.block_card(conn, card, reason=reason, operator=_actor(user))
        replaced = await identity.replace_card(
            conn, card, new_card_number=None, reason=reason, operator=_actor(user)
        )
        await audit.record(
            conn,
            user,
            "card.replace",
            _subject(shopper_id),
            before={"card": card, "state": status},
            after={
                "card": card,
                "state": replaced.old_card.status,
                "new_card": replaced.new_card.card_number,
            },
            detail={"reason": reason, "blocked_at_status": blocked.status},
        )
        return replaced.new_card.card_number

    new_card = await in_transaction(request, work)
    return Redirect(
        f"/console/shoppers/{shopper_id}?done=replace&new_card={new_card}", status_code=303
    )


async def _goodwill(
    request: Request[Any, Any, Any], user: ConsoleUser, shopper_id: int, form: FormMultiDict
) -> Redirect:
    raw_points = required(form, "points", 6)
    reason = required(form, "reason", support.GOODWILL_REASON_CHARS_MAX)
    request_id = required(form, "request_id", REQUEST_ID_CHARS_MAX)
    if not raw_points.isdigit():
        raise ValidationException("points must be a whole number")
    points = int(raw_points)
    now = datetime.now(UTC)

    async def work(conn: Conn) -> None:
        before = (await support.overview(conn, shopper_id, now=now)).balance
        entry = await support.goodwill(
            conn,
            shopper_id,
            points=points,
            reason=reason,
            operator=_actor(user),
            request_id=request_id,
            now=now,
        )
        if entry.replayed:
            return  # the same confirmation posted twice: credited and audited once
        after = (await support.overview(conn, shopper_id, now=now)).balance
        await audit.record(
            conn,
            user,
            "shopper.goodwill",
            _subject(shopper_id),
            before={"balance": before},
            after={"balance": after, "entry_id": entry.entry_id},
            detail={"points": points, "reason": reason, "funded_by": "network marketing"},
        )

    await in_transaction(request, work)
    return Redirect(f"/console/shoppers/{shopper_id}?done=goodwill", status_code=303)


async def _erase(request: Request[Any, Any, Any], user: ConsoleUser, shopper_id: int) -> Redirect:
    async def work(conn: Conn) -> None:
        erased = await erasure.erase(conn, shopper_id, now=datetime.now(UTC))
        await audit.record(
            conn,
            user,
            "shopper.erase",
            _subject(erased.shopper_id),
            before={"state": "active"},
            after={"state": "erased"},
            detail={"erased_at": erased.erased_at.isoformat(), "on_behalf_of": "shopper"},
        )

    await in_transaction(request, work)
    return Redirect("/console/shoppers?done=erased", status_code=303)


ROUTES = [shoppers, shopper, confirm, act]
