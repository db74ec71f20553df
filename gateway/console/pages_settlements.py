"""Settlements: periods, statements, and close / finalize / mark paid / dispute.

Each action has a confirmation page, calls the ledger.settlement function the operator API
calls, and writes an audit entry (before, after) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from contracts.settlement import REASON_CHARS_MAX, Statement
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.forms import required
from gateway.console.users import ConsoleUser
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from ledger import settlement
from partners import directory

CSV = "text/csv; charset=utf-8"
PAYMENT_REFERENCE_CHARS_MAX = 200
PERIODS_SHOWN = 50
Action = Literal["finalize", "pay", "dispute"]
ACTIONS: dict[str, str] = {"finalize": "Finalize", "pay": "Mark paid", "dispute": "Dispute"}
DONE = {
    "finalize": "The statement is final.",
    "pay": "The statement is marked paid.",
    "dispute": "The statement is disputed.",
    "closed": "The period is closed.",
}


def _actor(user: ConsoleUser) -> str:
    # As the operator API names its actors (role:subject), with the console user's email.
    return f"{user.role.value}:{user.email}"


async def _partner_names(conn: Conn) -> dict[int, str]:
    return {p.id: p.name for p in await directory.list_partners(conn)}


@get("/console/settlements")
async def periods(request: Request[Any, Any, Any], done: FromQuery[str | None] = None) -> Template:
    require(request, Area.SETTLEMENTS)
    now = datetime.now(UTC)

    async def read(conn: Conn) -> tuple[Any, Any]:
        listing = await settlement.list_periods(conn, cursor=None, limit=PERIODS_SHOWN)
        return listing, await settlement.get_cycle(conn, now=now)

    listing, cycle = await in_transaction(request, read)
    return page(
        request,
        "settlements.html",
        title="Settlements",
        active="Settlements",
        periods=listing.items,
        cycle=cycle,
        now_value=now.strftime("%Y-%m-%dT%H:%M"),
        done=DONE.get(done or ""),
    )


@get("/console/settlements/{period_id:int}")
async def period(request: Request[Any, Any, Any], period_id: PathId) -> Template:
    require(request, Area.SETTLEMENTS)

    async def read(conn: Conn) -> tuple[Any, dict[int, str]]:
        return await settlement.get_period(conn, period_id), await _partner_names(conn)

    found, names = await in_transaction(request, read)
    return page(
        request,
        "period.html",
        title=f"Period {period_id}",
        active="Settlements",
        period=found,
        names=names,
    )


@get("/console/settlements/{period_id:int}/csv")
async def period_csv(request: Request[Any, Any, Any], period_id: PathId) -> Response[bytes]:
    require(request, Area.SETTLEMENTS)
    found = await in_transaction(request, lambda conn: settlement.get_period(conn, period_id))
    return _csv(settlement.statements_csv(found.statements), f"period-{period_id}.csv")


def _csv(text: str, filename: str) -> Response[bytes]:
    return Response(
        text.encode(),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _parse_end(text: str) -> datetime:
    """A `datetime-local` value (read as UTC) or an ISO 8601 time with its offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationException("period end is not a date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@get("/console/settlements/close")
async def close_confirm(request: Request[Any, Any, Any], period_end: FromQuery[str]) -> Template:
    require(request, Area.PERIOD_CLOSE)
    end = _parse_end(period_end)
    return page(
        request,
        "confirm_close.html",
        title="Close a period",
        active="Settlements",
        period_end=end,
        period_end_value=end.isoformat(),
    )


@post("/console/settlements/close", status_code=303)
async def close(request: Request[Any, Any, Any]) -> Redirect:
    user = require(request, Area.PERIOD_CLOSE)
    form = await request.form()
    end = _parse_end(required(form, "period_end", 64))

    async def work(conn: Conn) -> int:
        closed = await settlement.close_period(
            conn, period_end=end, closed_by=_actor(user), now=datetime.now(UTC)
        )
        await audit.record(
            conn,
            user,
            "period.close",
            f"period:{closed.period_id}",
            after={"period_end": closed.period_end, "statements": len(closed.statements)},
            detail={"created": closed.created},
        )
        return closed.period_id

    period_id = await in_transaction(request, work)
    return Redirect(f"/console/settlements/{period_id}", status_code=303)


@get("/console/statements/{statement_id:int}")
async def statement(
    request: Request[Any, Any, Any], statement_id: PathId, done: FromQuery[str | None] = None
) -> Template:
    require(request, Area.SETTLEMENTS)

    async def read(conn: Conn) -> tuple[Statement, dict[int, str], list[audit.Entry]]:
        found = await settlement.get_statement(conn, statement_id, partner_id=None)
        history = await audit.of_subject(conn, f"statement:{statement_id}")
        return found, await _partner_names(conn), history

    found, names, history = await in_transaction(request, read)
    return page(
        request,
        "statement.html",
        title=f"Statement {statement_id}",
        active="Settlements",
        s=found,
        partner_name=names.get(found.partner_id, f"partner {found.partner_id}"),
        history=history,
        actions=_actions_for(found),
        done=DONE.get(done or ""),
    )


def _actions_for(found: Statement) -> list[tuple[str, str]]:
    """The lifecycle's next steps: draft -> final -> paid | disputed (disputed -> final)."""
    nexts = {
        "draft": ["finalize", "dispute"],
        "final": ["pay", "dispute"],
        "disputed": ["finalize"],
    }
    return [(action, ACTIONS[action]) for action in nexts.get(found.state, [])]


@get("/console/statements/{statement_id:int}/csv")
async def statement_csv(request: Request[Any, Any, Any], statement_id: PathId) -> Response[bytes]:
    require(request, Area.SETTLEMENTS)
    found = await in_transaction(
        request, lambda conn: settlement.get_statement(conn, statement_id, partner_id=None)
    )
    return _csv(settlement.statements_csv([found]), f"statement-{statement_id}.csv")


def _action(name: str) -> Action:
    if name not in ACTIONS:
        raise NotFoundException()
    return name  # type: ignore[return-value]


@get("/console/statements/{statement_id:int}/{action:str}")
async def confirm(
    request: Request[Any, Any, Any], statement_id: PathId, action: FromPath[str]
) -> Template | Redirect:
    require(request, Area.STATEMENT_ACT)
    chosen = _action(action)
    found = await in_transaction(
        request, lambda conn: settlement.get_statement(conn, statement_id, partner_id=None)
    )
    if chosen not in dict(_actions_for(found)):
        # Only the lifecycle's next steps are offered; the service would refuse the rest.
        return Redirect(f"/console/statements/{statement_id}", status_code=303)
    return page(
        request,
        "confirm_statement.html",
        title=f"{ACTIONS[chosen]} statement {statement_id}",
        active="Settlements",
        s=found,
        action=chosen,
        label=ACTIONS[chosen],
    )


@post("/console/statements/{statement_id:int}/{action:str}", status_code=303)
async def act(
    request: Request[Any, Any, Any], statement_id: PathId, action: FromPath[str]
) -> Redirect:
    user = require(request, Area.STATEMENT_ACT)
    chosen = _action(action)
    form = await request.form()
    detail: dict[str, str] = {}
    call: Callable[[Conn], Awaitable[Statement]]
    if chosen == "finalize":
        call = lambda conn: settlement.finalize_statement(conn, statement_id, actor=_actor(user))  # noqa: E731
    elif chosen == "pay":
        # The ledger records the payment entry; the bank's reference is kept in the audit log.
        detail["payment_reference"] = required(
            form, "payment_reference", PAYMENT_REFERENCE_CHARS_MAX
        )
        call = lambda conn: settlement.mark_paid(conn, statement_id, actor=_actor(user))  # noqa: E731
    else:
        reason = required(form, "reason", REASON_CHARS_MAX)
        detail["reason"] = reason
        call = lambda conn: settlement.dispute_statement(  # noqa: E731
            conn, statement_id, actor=_actor(user), reason=reason
        )

    async def work(conn: Conn) -> None:
        before = await settlement.get_statement(conn, statement_id, partner_id=None)
        after = await call(conn)
        await audit.record(
            conn,
            user,
            f"statement.{chosen}",
            f"statement:{statement_id}",
            before=_state_of(before),
            after=_state_of(after),
            detail=detail,
        )

    await in_transaction(request, work)
    return Redirect(f"/console/statements/{statement_id}?done={chosen}", status_code=303)


def _state_of(found: Statement) -> dict[str, Any]:
    return {
        "state": found.state,
        "payment_due_micros": found.payment_due_micros,
        "payment_entry_id": found.payment_entry_id,
        "state_reason": found.state_reason,
    }


ROUTES = [
    periods,
    close_confirm,
    close,
    period,
    period_csv,
    statement,
    statement_csv,
    confirm,
    act,
]
