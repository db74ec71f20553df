"""A redemption, a hold and a capture: one read and one write each (migration 0094), the rows
the separate statements wrote, and the refusals in their old order, each leaving nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.partners import CaptureRequest, HoldRequest, RedemptionRequest
from ledger.errors import LedgerError
from partners import operations
from partners.errors import HoldNotOpen, LedgerRefused, NotFound, PartnerRefConflict
from shoppers.errors import CardUnknown
from tests.support import program
from tests.support.round_trips import RoundTrips

UNKNOWN_CARD = "0000000000000"


@pytest.fixture(scope="module")
async def partner_id(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "burns")  # redemption price 8,000 micros per point


async def funded(pool: asyncpg.Pool, partner_id: int, points: int) -> str:
    """A new shopper's card with `points` earned (1 point per 1.00)."""
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, partner_id, holder.card_number, points * 100)
    return holder.card_number


async def run(pool: asyncpg.Pool, operation: Any) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await operation(conn)


def redemption(card: str, ref: str, points: int) -> RedemptionRequest:
    return RedemptionRequest(partner_ref=ref, card_number=card, points=points)


def hold_request(card: str, ref: str, points: int) -> HoldRequest:
    return HoldRequest(partner_ref=ref, card_number=card, points=points, expires_in_s=600)


async def left_by(pool: asyncpg.Pool, partner_id: int, ref: str) -> dict[str, int]:
    return {
        "transactions": await pool.fetchval(
            "SELECT count(*) FROM partner_transactions WHERE partner_id = $1 AND partner_ref = $2",
            partner_id,
            ref,
        ),
        "events": await pool.fetchval(
            "SELECT count(*) FROM event_outbox WHERE payload ->> 'partner_ref' = $1", ref
        ),
        "operations": await pool.fetchval(
            "SELECT count(*) FROM ledger.operation WHERE idempotency_key = $1",
            f"partner:{partner_id}:ref:{ref}",
        ),
    }


NOTHING = {"transactions": 0, "events": 0, "operations": 0}


async def test_a_redemption_is_one_read_and_one_write_with_the_rows_of_before(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    card = await funded(pool, partner_id, 500)
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        result = await operations.redeem(
            conn, partner_id, redemption(card, "rd-1", 120), idempotency_key="idem-rd-1"
        )
        assert round_trips.count - before == 2
    assert result.points_redeemed == 120
    assert result.value_minor == 120 * 8_000 // 10_000  # EUR: 10,000 micros per cent
    assert result.balance == 380
    row = await pool.fetchrow(
        "SELECT * FROM partner_transactions WHERE id = $1::uuid", result.transaction_id
    )
    assert row is not None
    assert (row["kind"], row["status"], row["points"], row["value_minor"]) == (
        "redemption",
        "completed",
        120,
        96,
    )
    assert row["card_number"] == card
    assert row["idempotency_key"] == "idem-rd-1"
    assert row["amount_minor"] is None
    assert row["network_points"] == 0
    entry = await pool.fetchrow(
        "SELECT kind, metadata FROM ledger.entry WHERE entry_id = $1", row["ledger_entry_id"]
    )
    assert entry is not None
    assert entry["kind"] == "burn"
    assert json.loads(entry["metadata"]) == {"partner_ref": "rd-1"}
    payload = await pool.fetchval(
        "SELECT payload FROM event_outbox WHERE event_type = 'redemption.recorded'"
        " AND payload ->> 'partner_ref' = 'rd-1'"
    )
    assert json.loads(payload) == {
        "transaction_id": result.transaction_id,
        "partner_ref": "rd-1",
        "points": 120,
        "shopper_id": row["shopper_id"],
        "value_minor": 96,
    }


async def test_a_hold_and_its_capture_are_one_read_and_one_write_each(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    card = await funded(pool, partner_id, 300)
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        opened = await operations.hold(
            conn, partner_id, hold_request(card, "hd-1", 200), idempotency_key="idem-hd-1"
        )
        assert round_trips.count - before == 2
    assert (opened.status, opened.points, opened.balance, opened.held) == ("open", 200, 100, 200)
    row = await pool.fetchrow(
        "SELECT * FROM partner_transactions WHERE id = $1::uuid", opened.hold_id
    )
    assert row is not None
    assert (row["kind"], row["status"], row["points"]) == ("hold", "open", 200)
    assert row["ledger_hold_id"] is not None
    assert row["expires_at"] == opened.expires_at
    assert row["expires_at"] - datetime.now(UTC) < timedelta(seconds=601)

    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        captured = await operations.capture_hold(
            conn, partner_id, opened.hold_id, CaptureRequest(points=150)
        )
        assert round_trips.count - before == 2
    assert (captured.status, captured.points_captured, captured.value_minor) == (
        "captured",
        150,
        150 * 8_000 // 10_000,
    )
    assert (captured.balance, captured.held) == (150, 0)  # the 50 not captured came back
    settled = await pool.fetchrow(
        "SELECT status, points_captured, value_minor, ledger_entry_id"
        " FROM partner_transactions WHERE id = $1::uuid",
        opened.hold_id,
    )
    assert settled is not None
    assert (settled["status"], settled["points_captured"], settled["value_minor"]) == (
        "captured",
        150,
        120,
    )
    kind = await pool.fetchval(
        "SELECT kind FROM ledger.entry WHERE entry_id = $1", settled["ledger_entry_id"]
    )
    assert kind == "capture"

    with pytest.raises(HoldNotOpen):
        await run(
            pool,
            lambda conn: operations.capture_hold(
                conn, partner_id, opened.hold_id, CaptureRequest()
            ),
        )


async def test_refusals_keep_their_order_and_leave_nothing(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    card = await funded(pool, partner_id, 50)
    # The card is checked before anything else, then the ref, then the ledger.
    with pytest.raises(CardUnknown):
        await run(
            pool,
            lambda conn: operations.redeem(
                conn, partner_id, redemption(UNKNOWN_CARD, "rf-1", 10), idempotency_key="k"
            ),
        )
    await run(
        pool,
        lambda conn: operations.redeem(
            conn, partner_id, redemption(card, "rf-2", 10), idempotency_key="k2"
        ),
    )
    with pytest.raises(PartnerRefConflict):  # taken, and more points than the shopper has
        await run(
            pool,
            lambda conn: operations.redeem(
                conn, partner_id, redemption(card, "rf-2", 1_000), idempotency_key="k3"
            ),
        )
    with pytest.raises(LedgerRefused) as refused:
        await run(
            pool,
            lambda conn: operations.redeem(
                conn, partner_id, redemption(card, "rf-3", 1_000), idempotency_key="k4"
            ),
        )
    assert refused.value.code == "insufficient_points"
    assert isinstance(refused.value.__cause__, LedgerError)
    with pytest.raises(LedgerRefused):
        await run(
            pool,
            lambda conn: operations.hold(
                conn, partner_id, hold_request(card, "rf-4", 1_000), idempotency_key="k5"
            ),
        )
    for ref in ("rf-1", "rf-3", "rf-4"):
        assert await left_by(pool, partner_id, ref) == NOTHING, ref
    with pytest.raises(NotFound):
        await run(
            pool,
            lambda conn: operations.capture_hold(
                conn, partner_id, "00000000-0000-0000-0000-000000000000", CaptureRequest()
            ),
        )
