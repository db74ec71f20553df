"""Burns: redemptions, and holds with their capture or void.

A redemption, a hold and a capture are each one read (`BURN_CONTEXT`, or `CAPTURE_CONTEXT` for
a capture) and one write statement (migration 0094); a void reads the hold, voids it in the
ledger and settles the record. The read's check (`burn_context_of`, `capture_of`) and the
write's arguments (`redemption_of`, `hold_of`, `capture_of`) are public so that `burn_many`
writes a group commit's burns set-based with exactly the same checks and arguments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from contracts.money import minor_unit_micros
from contracts.partners import (
    CaptureRequest,
    HoldRequest,
    HoldResult,
    RedemptionRequest,
    RedemptionResult,
)
from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from partners import queries
from partners._common import (
    Pricing,
    atomic,
    entry_of,
    event_payload_of,
    fresh,
    known,
    ledger_call,
    ledger_fetchrow,
    ledger_key,
    metadata_json,
    parse_uuid,
    pricing_of,
)
from partners.errors import HoldNotOpen, NotFound, PartnerRefConflict
from shoppers import service as shoppers


@atomic
async def redeem(
    conn: Conn, partner_id: int, req: RedemptionRequest, *, idempotency_key: str
) -> RedemptionResult:
    """One read (`BURN_CONTEXT`: card, pricing, ref, currency, checked in that order), then
    every write in one statement (`partner_redeem_write`, 0094): the burn, the record, the
    event. (A group commit's redemptions: partners.burn_many, the same steps for many.)"""
    ctx = await _burn_context(conn, partner_id, req.card_number, req.partner_ref)
    redemption = redemption_of(ctx, partner_id, req, idempotency_key=idempotency_key)
    with ledger_call("burn", req.partner_ref):
        row = await ledger_fetchrow(conn, queries.REDEEM_WRITE, *redemption.arguments)
    return redemption.result(_written(row["burn"], row["recorded"], req.partner_ref))


@dataclass(frozen=True)
class Redemption:
    """A redemption whose read passed: REDEEM_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    transaction_id: uuid.UUID
    points: int
    value_minor: int

    def result(self, entry: ledger.EntryResult) -> RedemptionResult:
        return RedemptionResult(
            transaction_id=str(self.transaction_id),
            points_redeemed=self.points,
            value_minor=self.value_minor,
            balance=known(entry.balance_after),
        )


def redemption_of(
    ctx: BurnContext, partner_id: int, req: RedemptionRequest, *, idempotency_key: str
) -> Redemption:
    holder, pricing = ctx.holder, ctx.pricing
    value_minor = _value_minor(req.points, pricing, ctx.currency)
    transaction_id = uuid.uuid4()
    payload = event_payload_of(
        holder.shopper_id,
        str(transaction_id),
        req.partner_ref,
        req.points,
        value_minor=value_minor,
    )
    arguments = (
        transaction_id,
        partner_id,
        req.partner_ref,
        holder.shopper_id,
        holder.card_number,
        req.points,
        value_minor,
        pricing.version,
        idempotency_key,
        ledger_key(partner_id, req.partner_ref),
        pricing.redemption_price_micros,
        metadata_json({"partner_ref": req.partner_ref}),
        outbox.payload_text("redemption.recorded", payload),
    )
    return Redemption(arguments, transaction_id, req.points, value_minor)


async def hold(
    conn: Conn, partner_id: int, req: HoldRequest, *, idempotency_key: str
) -> HoldResult:
    """One read (`BURN_CONTEXT`), then the hold and its record in one statement
    (`partner_hold_write`, 0094). (A group commit's holds: partners.burn_many.)"""
    ctx = await _burn_context(conn, partner_id, req.card_number, req.partner_ref)
    opened = hold_of(ctx, partner_id, req, idempotency_key=idempotency_key)
    with ledger_call("hold", req.partner_ref):
        row = await ledger_fetchrow(conn, queries.HOLD_WRITE, *opened.arguments)
    return opened.result(_written(row["hold"], row["recorded"], req.partner_ref))


@dataclass(frozen=True)
class Hold:
    """A hold whose read passed: HOLD_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    transaction_id: uuid.UUID
    points: int
    expires_at: datetime

    def result(self, entry: ledger.EntryResult) -> HoldResult:
        assert entry.hold_id is not None, entry
        return HoldResult(
            hold_id=str(self.transaction_id),
            status="open",
            points=self.points,
            points_captured=0,
            value_minor=0,
            expires_at=self.expires_at,
            balance=known(entry.balance_after),
            held=known(entry.held_after),
        )


def hold_of(ctx: BurnContext, partner_id: int, req: HoldRequest, *, idempotency_key: str) -> Hold:
    holder, pricing = ctx.holder, ctx.pricing
    expires_at = datetime.now(UTC) + timedelta(seconds=req.expires_in_s)
    transaction_id = uuid.uuid4()
    arguments = (
        transaction_id,
        partner_id,
        req.partner_ref,
        holder.shopper_id,
        holder.card_number,
        req.points,
        pricing.version,
        idempotency_key,
        ledger_key(partner_id, req.partner_ref),
        expires_at,
        metadata_json({"partner_ref": req.partner_ref}),
    )
    return Hold(arguments, transaction_id, req.points, expires_at)


async def capture_hold(
    conn: Conn, partner_id: int, hold_id: str, req: CaptureRequest
) -> HoldResult:
    """One read (`CAPTURE_CONTEXT`: the hold, locked, then the pricing), then the capture and
    the hold's settlement in one statement (`partner_capture_write`, 0094). (A group commit's
    captures: partners.burn_many.)"""
    row = await conn.fetchrow(queries.CAPTURE_CONTEXT, parse_uuid(hold_id), partner_id)
    capture = capture_of(row, partner_id, req)
    with ledger_call("capture"):
        written = await ledger_fetchrow(conn, queries.CAPTURE_WRITE, *capture.arguments)
    return capture.result(entry_of(written["capture"]))


@dataclass(frozen=True)
class Capture:
    """A capture whose read passed: CAPTURE_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    hold: asyncpg.Record  # the hold's CAPTURE_CONTEXT row
    points: int
    value_minor: int

    def result(self, entry: ledger.EntryResult) -> HoldResult:
        return _hold_result(self.hold, "captured", self.points, self.value_minor, entry)


def capture_of(row: asyncpg.Record | None, partner_id: int, req: CaptureRequest) -> Capture:
    """The capture of the hold read by CAPTURE_CONTEXT (or CAPTURE_CONTEXT_MANY); refused as
    the single path refuses it: no such hold (404), not open (409), no pricing."""
    row = _open(row)
    points = row["points"] if req.points is None else req.points
    pricing = pricing_of(row, version_column="pricing_in_effect")
    value_minor = _value_minor(points, pricing, row["currency"])
    arguments = (
        row["id"],
        partner_id,
        ledger_key(partner_id, str(row["id"]), part="hold-settle"),
        row["ledger_hold_id"],
        points,
        value_minor,
        pricing.redemption_price_micros,
        metadata_json({"partner_ref": row["partner_ref"]}),
    )
    return Capture(arguments, row, points, value_minor)


async def void_hold(conn: Conn, partner_id: int, hold_id: str) -> HoldResult:
    row = await _open_hold(conn, partner_id, hold_id)
    with ledger_call("void"):
        entry = await ledger.void(
            conn,
            idempotency_key=ledger_key(partner_id, str(row["id"]), part="hold-settle"),
            hold_id=row["ledger_hold_id"],
            metadata={"partner_ref": row["partner_ref"]},
        )
    await conn.execute(queries.SETTLE_HOLD, row["id"], partner_id, "voided", 0, 0, entry.entry_id)
    return _hold_result(row, "voided", 0, 0, entry)


async def _open_hold(conn: Conn, partner_id: int, hold_id: str) -> asyncpg.Record:
    return _open(
        await conn.fetchrow(queries.TRANSACTION_FOR_UPDATE, parse_uuid(hold_id), partner_id)
    )


def _open(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of an open hold, or the refusal: no such hold (404), or not open (409)."""
    if row is None or row["kind"] != "hold":
        raise NotFound("hold")
    if row["status"] != "open":
        raise HoldNotOpen(row["status"])
    return row


def _value_minor(points: int, pricing: Pricing, currency: str) -> int:
    """What burned points are worth to the partner, in minor units, rounded down."""
    return points * pricing.redemption_price_micros // minor_unit_micros(currency)


def _written(raw: str, recorded: bool, partner_ref: str) -> ledger.EntryResult:
    """The ledger result of a redemption's or a hold's write (0094), checked as the separate
    statements were: a replayed key, or a ref recorded concurrently, is a ref conflict."""
    entry = entry_of(raw)
    fresh(entry, partner_ref)
    if not recorded:  # a concurrent request with the same ref committed first
        raise PartnerRefConflict(partner_ref)
    return entry


@dataclass(frozen=True)
class BurnContext:
    holder: shoppers.CardHolder
    pricing: Pricing
    currency: str


async def _burn_context(
    conn: Conn, partner_id: int, card_number: str, partner_ref: str
) -> BurnContext:
    row = await conn.fetchrow(queries.BURN_CONTEXT, partner_id, card_number, partner_ref)
    assert row is not None, "network_settings has its one row"
    return burn_context_of(row, card_number, partner_ref)


def burn_context_of(row: asyncpg.Record, card_number: str, partner_ref: str) -> BurnContext:
    """A row of BURN_CONTEXT (or BURN_CONTEXT_MANY), checked in the order these operations
    always had: card (CardUnknown, CardBlocked), pricing (PricingNotEffective), partner_ref
    (taken)."""
    holder = shoppers.holder_of(card_number, row["shopper_id"], row["card_status"])
    pricing = pricing_of(row, version_column="pricing_version")
    if row["ref_taken"]:
        raise PartnerRefConflict(partner_ref)
    return BurnContext(holder, pricing, row["currency"])


def _hold_result(
    row: asyncpg.Record, status: str, points_captured: int, value_minor: int, entry: Any
) -> HoldResult:
    return HoldResult(
        hold_id=str(row["id"]),
        status=status,  # type: ignore[arg-type]
        points=row["points"],
        points_captured=points_captured,
        value_minor=value_minor,
        expires_at=row["expires_at"],
        balance=known(entry.balance_after),
        held=known(entry.held_after),
    )
