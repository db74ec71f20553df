"""Settlement: closing periods, one immutable statement per partner, the statement lifecycle,
and the operator's finance views. The room's door for settlement; SQL lives in
`_settlement_queries.py`, the schema in `infra/migrations/0020_settlement.sql`.

A period is [period_start, period_end). Closing it, under one advisory lock, stamps every
committed journal entry created before period_end and not stamped yet with the period's id:
an entry lands in exactly one period. An entry that commits after a close started lands in the
next period even when it was created before this one's end (its statement line then appears a
period later, never twice, never lost). See the migration for why no watermark is used.

Each statement: opening balance, the period's movements on the partner's settlement account
by kind, closing balance, and the payment instruction. The instruction settles what the
period added plus the remainder carried in, rounded toward zero to the currency's minor unit;
what rounding leaves is carried out to the next statement. Payments posted in a period appear
as its `payments_micros`, so closing - carried_out = instructions not yet paid.

The cycle (`settlement.cycle`: daily, weekly on Mondays or monthly on the 1st, at local
midnight in its time zone, by default the network's) is the operator's to change
(`set_cycle`). A change applies to periods not yet closed only: the cycle is read and the next
boundary computed under the close lock, from the last closed period_end, so closed periods keep
their bounds and the next period starts where the last one ended.

Closing a period records one `statement.ready` event per statement (to its partner) in the
close's transaction.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import asyncpg

from contracts import csv_cells
from contracts.errors import DomainError, ErrorCode
from contracts.money import minor_unit_micros
from contracts.settlement import (
    FinanceOverview,
    NetworkLine,
    PartnerFlow,
    PartnerFlows,
    Period,
    PeriodPage,
    PeriodSummary,
    SettlementCycle,
    SettlementCycleUpdate,
    SettlementErrorCode,
    Statement,
    StatementPage,
)
from infra import outbox
from infra.db import Conn
from ledger import _settlement_queries as q
from ledger import service as ledger
from ledger.errors import LedgerError

__all__ = [
    "CADENCES",
    "PERIODS_PER_RUN_MAX",
    "VERIFY_PROBLEMS_MAX",
    "AdjustmentRefused",
    "CursorInvalid",
    "InvalidInput",
    "PeriodEndBeforeLast",
    "PeriodEndInFuture",
    "SettleSummary",
    "SettlementImbalance",
    "StatementNotFound",
    "StatementStateInvalid",
    "TimeZoneUnknown",
    "close_due_periods",
    "close_period",
    "dispute_statement",
    "finalize_statement",
    "finance_overview",
    "get_cycle",
    "get_period",
    "get_statement",
    "latest_boundary",
    "list_periods",
    "list_statements",
    "mark_paid",
    "minor_unit_micros",
    "next_boundary",
    "partner_flows",
    "set_cycle",
    "settle_until",
    "statements_csv",
    "verify_settlements",
]

CADENCES = ("daily", "weekly", "monthly")
PERIODS_PER_RUN_MAX = 400  # a worker run closes at most this many overdue periods
PARTNER_FLOWS_MAX = 10_000
VERIFY_PROBLEMS_MAX = 100
SYSTEM_ACTOR = "settlement-worker"
_CURSOR_PREFIX = "s1:"
_NO_CURSOR = 2**63 - 1
CSV_COLUMNS = (
    "statement_id",
    "period_id",
    "partner_id",
    "currency",
    "period_start",
    "period_end",
    "state",
    "opening_balance_micros",
    "issued_count",
    "issued_points",
    "issued_micros",
    "redeemed_count",
    "redeemed_points",
    "redeemed_micros",
    "refunds_count",
    "refunds_micros",
    "adjustments_count",
    "adjustments_micros",
    "payments_micros",
    "closing_balance_micros",
    "carried_in_micros",
    "payment_due_micros",
    "carried_out_micros",
    "payer",
    "payment_minor",
    "membership_count",
    "membership_micros",
)


# ---- errors ----------------------------------------------------------------------------------


class StatementNotFound(DomainError):
    """No such statement for this caller (another partner's answers the same)."""

    code = SettlementErrorCode.STATEMENT_NOT_FOUND

    def __init__(self, what: str = "statement") -> None:
        super().__init__(f"{what} not found")


class PeriodEndInFuture(DomainError):
    code = SettlementErrorCode.PERIOD_END_IN_FUTURE

    def __init__(self, period_end: datetime) -> None:
        super().__init__(f"period_end {period_end.isoformat()} is in the future")


class PeriodEndBeforeLast(DomainError):
    code = SettlementErrorCode.PERIOD_END_BEFORE_LAST

    def __init__(self, period_end: datetime, last_end: datetime) -> None:
        super().__init__(
            f"period_end {period_end.isoformat()} falls inside the closed period ending "
            f"{last_end.isoformat()}; closed periods are never reopened"
        )


class StatementStateInvalid(DomainError):
    code = SettlementErrorCode.STATEMENT_STATE_INVALID

    def __init__(self, statement_id: int, state: str, wanted: str) -> None:
        super().__init__(f"statement {statement_id} is {state}; it cannot become {wanted}")


class AdjustmentRefused(DomainError):
    """The ledger refused an adjusting entry; `detail` carries the ledger's reason."""

    code = SettlementErrorCode.ADJUSTMENT_REFUSED

    def __init__(self, ledger_code: str, message: str) -> None:
        super().__init__(f"the ledger refused the adjustment ({ledger_code}): {message}")


class InvalidInput(DomainError):
    """A caller's argument is unusable; `field` names it."""

    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")


class CursorInvalid(DomainError):
    code = ErrorCode.CURSOR_INVALID

    def __init__(self) -> None:
        super().__init__("not a cursor from this API")


class TimeZoneUnknown(DomainError):
    code = SettlementErrorCode.TIME_ZONE_UNKNOWN

    def __init__(self, time_zone: str) -> None:
        super().__init__(f"time_zone {time_zone!r} is not an IANA time zone name")


class SettlementImbalance(Exception):
    """A closed period does not sum to zero: a bug, never a normal outcome."""


# ---- closing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettleSummary:
    """What a settle run did: the periods it closed (ids) and the last period end after it."""

    closed_period_ids: tuple[int, ...]
    last_period_end: datetime | None


async def close_period(
    conn: Conn, *, period_end: datetime, closed_by: str, now: datetime
) -> Period:
    """Close [last period_end, period_end): stamp its entries, write one statement per partner
    and the network lines, check they sum to zero. Closing an already closed period_end is a
    no-op that returns it (`created` false). Runs in its own transaction (a savepoint when the
    caller has one open; the close lock is then held until the caller commits)."""
    _aware(period_end, "period_end")
    if period_end > _aware(now, "now"):
        raise PeriodEndInFuture(period_end)
    async with conn.transaction():
        await conn.execute(q.CLOSE_LOCK)
        existing = await conn.fetchrow(q.PERIOD_BY_END, period_end)
        if existing is not None:
            return await _period(conn, existing, created=False)
        last = await conn.fetchrow(q.LAST_PERIOD)
        if last is not None and period_end < last["period_end"]:
            raise PeriodEndBeforeLast(period_end, last["period_end"])
        network = await conn.fetchrow(q.NETWORK)
        assert network is not None, "network_settings has its row from the first migration"
        unit = minor_unit_micros(network["currency"])
        period_id: int = await conn.fetchval(
            q.INSERT_PERIOD,
            None if last is None else last["period_end"],
            period_end,
            network["currency"],
            unit,
            closed_by,
        )
        prev_id = None if last is None else last["period_id"]
        await conn.fetchval(q.STAMP_ENTRIES, period_id, period_end, prev_id)
        await conn.execute(q.INSERT_NETWORK_LINES, period_id)
        await conn.execute(q.INSERT_STATEMENTS, period_id, prev_id, unit)
        sums = await conn.fetchrow(q.PERIOD_SUMS, period_id)
        assert sums is not None
        if sums["statements_micros"] + sums["network_micros"] != 0 or (
            sums["statements_micros"] != sums["partner_postings_micros"]
        ):
            raise SettlementImbalance(
                f"period {period_id}: statements {sums['statements_micros']} + network "
                f"{sums['network_micros']} != 0 (partner postings "
                f"{sums['partner_postings_micros']})"
            )
        row = await conn.fetchrow(q.PERIOD_BY_ID, period_id)
        assert row is not None
        period = await _period(conn, row, created=True)
        for statement in period.statements:
            await _record_statement_event(conn, "statement.ready", statement)
        return period


async def close_due_periods(pool: asyncpg.Pool, *, now: datetime) -> int:
    """Worker job: close every cycle boundary that is due at `now` (at most
    PERIODS_PER_RUN_MAX per run); returns how many periods were closed."""
    summary = await _close_boundaries(pool, until=now, now=now, closed_by=SYSTEM_ACTOR)
    return len(summary.closed_period_ids)


async def settle_until(
    pool: asyncpg.Pool, until: datetime | None, *, now: datetime, closed_by: str = "cli"
) -> SettleSummary:
    """`coalition settle [--until TIME]`: without `until`, close the due cycle periods (as the
    worker does); with it, close one period ending exactly at `until` (a no-op if closed)."""
    if until is None:
        return await _close_boundaries(pool, until=now, now=now, closed_by=closed_by)
    async with pool.acquire() as conn:
        period = await close_period(conn, period_end=until, closed_by=closed_by, now=now)
    return SettleSummary(
        closed_period_ids=(period.period_id,) if period.created else (),
        last_period_end=period.period_end,
    )


async def _close_boundaries(
    pool: asyncpg.Pool, *, until: datetime, now: datetime, closed_by: str
) -> SettleSummary:
    closed: list[int] = []
    last_end: datetime | None = None
    async with pool.acquire() as conn:
        for _ in range(PERIODS_PER_RUN_MAX):
            period, last_end = await _close_next_boundary(
                conn, until=until, now=now, closed_by=closed_by
            )
            if period is None:
                break
            if period.created:
                closed.append(period.period_id)
    return SettleSummary(closed_period_ids=tuple(closed), last_period_end=last_end)


async def _close_next_boundary(
    conn: Conn, *, until: datetime, now: datetime, closed_by: str
) -> tuple[Period | None, datetime | None]:
    """Close the first period not yet closed if its cycle boundary is at or before `until`.
    The cycle is read and the boundary computed under the close lock, so a cycle change
    (which takes the same lock) applies to every period closed after it and to none before:
    a period is cut by exactly one configuration, and always starts at the last closed end."""
    async with conn.transaction():
        await conn.execute(q.CLOSE_LOCK)
        cycle = await conn.fetchrow(q.CYCLE)
        assert cycle is not None, "settlement.cycle has its row from its migration"
        last = await conn.fetchrow(q.LAST_PERIOD)
        last_end: datetime | None = None if last is None else last["period_end"]
        boundary = _first_open_boundary(last_end, cycle["cadence"], cycle["time_zone"], until)
        if boundary > until:
            return None, last_end
        period = await close_period(conn, period_end=boundary, closed_by=closed_by, now=now)
        return period, period.period_end


def _first_open_boundary(
    last_end: datetime | None, cadence: str, time_zone: str, now: datetime
) -> datetime:
    """The end of the first period not yet closed: the next boundary after the last closed
    end, or (nothing closed yet) the latest boundary at or before `now`."""
    assert cadence in CADENCES, cadence
    zone = ZoneInfo(time_zone)
    if last_end is None:
        return latest_boundary(now, cadence, zone)
    return next_boundary(last_end, cadence, zone)


# ---- cycle configuration ---------------------------------------------------------------------


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


async def get_cycle(conn: Conn, *, now: datetime) -> SettlementCycle:
    """The settlement cycle in force, and the open period it will close next."""
    cycle = await conn.fetchrow(q.CYCLE)
    assert cycle is not None, "settlement.cycle has its row from its migration"
    last = await conn.fetchrow(q.LAST_PERIOD)
    last_end: datetime | None = None if last is None else last["period_end"]
    return SettlementCycle(
        frequency=cycle["cadence"],
        time_zone=cycle["time_zone"],
        updated_at=cycle["updated_at"],
        updated_by=cycle["updated_by"],
        next_period_start=last_end,
        next_period_end=_first_open_boundary(
            last_end, cycle["cadence"], cycle["time_zone"], _aware(now, "now")
        ),
    )


async def set_cycle(
    conn: Conn, req: SettlementCycleUpdate, *, actor: str, now: datetime
) -> SettlementCycle:
    """Change when periods end. Takes effect for periods not yet closed only: closed periods
    keep their bounds, and the next period starts at the last closed end (its first boundary
    under the new cycle may therefore come sooner or later than a whole cycle). Serialized
    with closes on the close lock; every change is kept in `settlement.cycle_change`."""
    if req.time_zone not in _iana_names():
        raise TimeZoneUnknown(req.time_zone)
    assert req.frequency in CADENCES, req.frequency
    async with conn.transaction():
        await conn.execute(q.CLOSE_LOCK)
        previous = await conn.fetchrow(q.CYCLE)
        assert previous is not None
        last_end = await conn.fetchval(q.LAST_PERIOD_END)
        await conn.execute(q.SET_CYCLE, req.frequency, req.time_zone, actor)
        await conn.execute(
            q.INSERT_CYCLE_CHANGE,
            req.frequency,
            req.time_zone,
            previous["cadence"],
            previous["time_zone"],
            last_end,
            actor,
        )
        return await get_cycle(conn, now=now)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _cycle_start(day: date, cadence: str) -> date:
    if cadence == "weekly":
        return day - timedelta(days=day.weekday())
    if cadence == "monthly":
        return day.replace(day=1)
    return day


def latest_boundary(moment: datetime, cadence: str, zone: ZoneInfo) -> datetime:
    """The last cycle boundary (local midnight) at or before `moment`."""
    local = _aware(moment, "moment").astimezone(zone)
    boundary = _midnight(_cycle_start(local.date(), cadence), zone)
    if boundary > moment:  # a DST gap can push local midnight past the moment
        boundary = _midnight(_cycle_start(local.date() - timedelta(days=1), cadence), zone)
    return boundary


def next_boundary(after: datetime, cadence: str, zone: ZoneInfo) -> datetime:
    """The first cycle boundary strictly after `after`."""
    local = _aware(after, "after").astimezone(zone).date()
    day = _cycle_start(local, cadence)
    for _ in range(64):  # at most 32 days ahead, checked twice over
        if cadence == "monthly":
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        elif cadence == "weekly":
            day = day + timedelta(days=7)
        else:
            day = day + timedelta(days=1)
        candidate = _midnight(day, zone)
        if candidate > after:
            return candidate
    raise AssertionError(f"no boundary after {after}")


# ---- statements ------------------------------------------------------------------------------


async def get_statement(conn: Conn, statement_id: int, *, partner_id: int | None) -> Statement:
    """One statement; `partner_id` scopes it to that partner (None: the operator sees all)."""
    row = await conn.fetchrow(q.STATEMENT, statement_id, partner_id)
    if row is None:
        raise StatementNotFound()
    return _statement(row)


async def list_statements(
    conn: Conn, partner_id: int, *, cursor: str | None, limit: int
) -> StatementPage:
    """A partner's statements, newest first, one page at a time."""
    assert 1 <= limit <= 1_000, limit
    before = _NO_CURSOR if cursor is None else _decode_cursor(cursor)
    rows = await conn.fetch(q.STATEMENTS_PAGE, partner_id, before, limit + 1)
    items = [_statement(r) for r in rows[:limit]]
    more = len(rows) > limit
    return StatementPage(
        items=items, next_cursor=_encode_cursor(items[-1].statement_id) if more else None
    )


def statements_csv(statements: list[Statement]) -> str:
    """The statements as CSV, one row each, amounts as integers (micros) like the JSON."""
    return csv_cells.write_rows(
        CSV_COLUMNS,
        (
            [
                ""
                if (v := getattr(s, name)) is None
                else v.isoformat()
                if isinstance(v, datetime)
                else v
                for name in CSV_COLUMNS
            ]
            for s in statements
        ),
    )


async def finalize_statement(conn: Conn, statement_id: int, *, actor: str) -> Statement:
    """draft (or disputed) -> final."""
    return await _transition(conn, statement_id, "final", actor=actor, reason=None)


async def dispute_statement(conn: Conn, statement_id: int, *, actor: str, reason: str) -> Statement:
    """draft or final -> disputed, with the reason."""
    return await _transition(conn, statement_id, "disputed", actor=actor, reason=reason)


async def mark_paid(conn: Conn, statement_id: int, *, actor: str) -> Statement:
    """final -> paid: posts the instruction through the ledger (partner settlement <-> network
    bank) once; marking a paid statement paid again returns it unchanged."""
    async with conn.transaction():
        row = await conn.fetchrow(q.STATEMENT_FOR_UPDATE, statement_id, None)
        if row is None:
            raise StatementNotFound()
        if row["state"] == "paid":
            return _statement(row)
        if row["state"] != "final":
            raise StatementStateInvalid(statement_id, row["state"], "paid")
        entry_id: int | None = None
        if row["payment_due_micros"] != 0:
            try:
                entry = await ledger.settlement_payment(
                    _raw(conn),
                    idempotency_key=f"settlement:statement:{statement_id}",
                    partner_id=row["partner_id"],
                    amount_micros=row["payment_due_micros"],
                    metadata={"statement_id": statement_id, "period_id": row["period_id"]},
                )
            except LedgerError as exc:
                raise AdjustmentRefused(exc.code, str(exc)) from exc
            entry_id = entry.entry_id
        await conn.execute(q.SET_STATE, statement_id, "paid", actor, None, entry_id)
        updated = await conn.fetchrow(q.STATEMENT, statement_id, None)
        assert updated is not None
        paid = _statement(updated)
        await _record_statement_event(conn, "statement.paid", paid)
        return paid


_ALLOWED_FROM = {"final": ("draft", "disputed"), "disputed": ("draft", "final")}
_EVENT_BY_STATE = {"final": "statement.finalized", "disputed": "statement.disputed"}


async def _transition(
    conn: Conn, statement_id: int, target: str, *, actor: str, reason: str | None
) -> Statement:
    async with conn.transaction():
        row = await conn.fetchrow(q.STATEMENT_FOR_UPDATE, statement_id, None)
        if row is None:
            raise StatementNotFound()
        if row["state"] == target and target != "disputed":
            return _statement(row)  # a repeated call changes nothing
        if row["state"] not in _ALLOWED_FROM[target]:
            raise StatementStateInvalid(statement_id, row["state"], target)
        await conn.execute(q.SET_STATE, statement_id, target, actor, reason, None)
        updated = await conn.fetchrow(q.STATEMENT, statement_id, None)
        assert updated is not None
        moved = _statement(updated)
        await _record_statement_event(conn, _EVENT_BY_STATE[target], moved)
        return moved


# ---- periods ---------------------------------------------------------------------------------


async def get_period(conn: Conn, period_id: int) -> Period:
    row = await conn.fetchrow(q.PERIOD_BY_ID, period_id)
    if row is None:
        raise StatementNotFound("period")
    return await _period(conn, row, created=False)


async def list_periods(conn: Conn, *, cursor: str | None, limit: int) -> PeriodPage:
    """Closed periods, newest first."""
    assert 1 <= limit <= 1_000, limit
    before = _NO_CURSOR if cursor is None else _decode_cursor(cursor)
    rows = await conn.fetch(q.PERIODS_PAGE, before, limit + 1)
    items = [
        PeriodSummary(
            period_id=r["period_id"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            closed_by=r["closed_by"],
            closed_at=r["closed_at"],
            statements=r["statements"],
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return PeriodPage(
        items=items, next_cursor=_encode_cursor(items[-1].period_id) if more else None
    )


async def _period(conn: Conn, row: asyncpg.Record, *, created: bool) -> Period:
    statements = await conn.fetch(q.STATEMENTS_OF_PERIOD, row["period_id"])
    lines = await conn.fetch(q.NETWORK_LINES, row["period_id"])
    return Period(
        period_id=row["period_id"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        currency=row["currency"],
        minor_unit_micros=row["minor_unit_micros"],
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
        created=created,
        statements=[_statement(s) for s in statements],
        network_lines=[
            NetworkLine(account=r["account"], amount_micros=r["amount_micros"]) for r in lines
        ],
    )


# ---- finance views ---------------------------------------------------------------------------


async def finance_overview(conn: Conn) -> FinanceOverview:
    """Liability (points outstanding and their deferred value) and revenue to date."""
    network = await conn.fetchrow(q.NETWORK)
    assert network is not None
    points_issued = await ledger.balance(conn, ledger.network_account("points_issued"))
    deferred = await ledger.balance(conn, ledger.network_account("deferred_revenue"))
    breakage = await ledger.balance(conn, ledger.network_account("breakage"))
    margin = await ledger.balance(conn, ledger.network_account("redemption_margin"))
    # Network accounts carry revenue and liability as credits (negative balances).
    return FinanceOverview(
        currency=network["currency"],
        outstanding_points=-points_issued,
        deferred_value_micros=-deferred,
        breakage_micros=-breakage,
        redemption_margin_micros=-margin,
    )


async def partner_flows(conn: Conn, *, start: datetime, end: datetime) -> PartnerFlows:
    """Per partner, points issued and redeemed (and their money) for entries created in
    [start, end)."""
    if not _aware(start, "start") < _aware(end, "end"):
        raise InvalidInput("period_end", "must be after period_start")
    network = await conn.fetchrow(q.NETWORK)
    assert network is not None
    rows = await conn.fetch(q.PARTNER_FLOWS, start, end, PARTNER_FLOWS_MAX)
    return PartnerFlows(
        period_start=start,
        period_end=end,
        currency=network["currency"],
        partners=[
            PartnerFlow(
                partner_id=r["partner_id"],
                issued_points=r["issued_points"],
                issued_micros=r["issued_micros"],
                redeemed_points=r["redeemed_points"],
                redeemed_micros=r["redeemed_micros"],
                net_micros=r["issued_micros"] - r["redeemed_micros"],
            )
            for r in rows
        ],
    )


# ---- verification ----------------------------------------------------------------------------


async def verify_settlements(conn: Conn) -> list[str]:
    """`coalition verify`: every closed period's statements plus network lines sum to zero,
    each statement matches the journal postings stamped in its period, openings chain to the
    previous closings, and paid statements were paid exactly. Empty when all is well."""
    problems: list[str] = []
    for r in await conn.fetch(q.VERIFY_PERIOD_SUMS, VERIFY_PROBLEMS_MAX):
        problems.append(
            f"settlement period {r['period_id']}: statements {r['statements_micros']} + "
            f"network lines {r['network_micros']} do not sum to zero"
        )
    for r in await conn.fetch(q.VERIFY_STATEMENTS_MATCH_JOURNAL, VERIFY_PROBLEMS_MAX):
        problems.append(
            f"settlement period {r['period_id']} partner {r['partner_id']}: statement moves "
            f"{r['statement_micros']}, the journal {r['journal_micros']}"
        )
    for r in await conn.fetch(q.VERIFY_CHAIN, VERIFY_PROBLEMS_MAX):
        problems.append(
            f"statement {r['statement_id']} (partner {r['partner_id']}): opening "
            f"{r['opening_balance_micros']} / carried in {r['carried_in_micros']} differ from "
            f"the previous closing {r['prev_closing']} / carried out {r['prev_carried']}"
        )
    for r in await conn.fetch(q.VERIFY_PAYMENTS, VERIFY_PROBLEMS_MAX):
        problems.append(
            f"statement {r['statement_id']}: paid, but payment entry {r['payment_entry_id']} "
            f"does not move {r['payment_due_micros']} micros for its partner"
        )
    return problems[:VERIFY_PROBLEMS_MAX]


async def _record_statement_event(conn: Conn, event_type: str, statement: Statement) -> None:
    """`statement.ready|finalized|paid|disputed`, to the statement's partner, in the
    transition's transaction: the statement as it now stands."""
    await outbox.record(
        conn,
        event_type,
        partner_id=statement.partner_id,
        payload={
            "statement_id": statement.statement_id,
            "period_id": statement.period_id,
            "period_start": None
            if statement.period_start is None
            else statement.period_start.isoformat(),
            "period_end": statement.period_end.isoformat(),
            "currency": statement.currency,
            "state": statement.state,
            "closing_balance_micros": statement.closing_balance_micros,
            "payment_due_micros": statement.payment_due_micros,
            "payer": statement.payer,
            "payment_minor": statement.payment_minor,
            "state_reason": statement.state_reason,
        },
    )


# ---- plumbing --------------------------------------------------------------------------------


def _statement(row: asyncpg.Record) -> Statement:
    due: int = row["payment_due_micros"]
    unit: int = row["minor_unit_micros"]
    return Statement(
        statement_id=row["statement_id"],
        period_id=row["period_id"],
        partner_id=row["partner_id"],
        currency=row["currency"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        state=row["state"],
        opening_balance_micros=row["opening_balance_micros"],
        issued_count=row["issued_count"],
        issued_points=row["issued_points"],
        issued_micros=row["issued_micros"],
        redeemed_count=row["redeemed_count"],
        redeemed_points=row["redeemed_points"],
        redeemed_micros=row["redeemed_micros"],
        refunds_count=row["refunds_count"],
        refunds_micros=row["refunds_micros"],
        adjustments_count=row["adjustments_count"],
        adjustments_micros=row["adjustments_micros"],
        payments_micros=row["payments_micros"],
        closing_balance_micros=row["closing_balance_micros"],
        carried_in_micros=row["carried_in_micros"],
        payment_due_micros=due,
        carried_out_micros=row["carried_out_micros"],
        payer="partner" if due > 0 else "network" if due < 0 else "none",
        payment_minor=abs(due) // unit,
        minor_unit_micros=unit,
        payment_entry_id=row["payment_entry_id"],
        state_changed_by=row["state_changed_by"],
        state_changed_at=row["state_changed_at"],
        state_reason=row["state_reason"],
        created_at=row["created_at"],
        membership_count=row["membership_count"],
        membership_micros=row["membership_micros"],
    )


def _raw(conn: Conn) -> asyncpg.Connection:
    return conn  # type: ignore[return-value]  # a pool proxy forwards every call


def _aware(value: datetime, field: str) -> datetime:
    if value.utcoffset() is None:
        raise InvalidInput(field, "must be timezone-aware")
    return value


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        return int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error) as exc:
        raise CursorInvalid() from exc
