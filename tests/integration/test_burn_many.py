"""A group's redemptions and holds written together (`partners.burn_many`, migration 0098):
one read and one write for all of them, the answers the single path gives, and every call the
single path would refuse left to it with nothing of it written."""

from __future__ import annotations

import asyncpg
import pytest

from contracts.partners import (
    CaptureRequest,
    HoldRequest,
    HoldResult,
    RedemptionRequest,
    RedemptionResult,
)
from ledger import verify
from partners import burn_many, operations
from tests.integration.test_burn_writes import (
    NOTHING,
    UNKNOWN_CARD,
    funded,
    hold_request,
    left_by,
    redemption,
)
from tests.support import program
from tests.support.round_trips import RoundTrips


@pytest.fixture(scope="module")
async def partner_id(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "burns-many")  # redemption price 8,000 micros per point


def candidate(
    handle: int, partner_id: int, req: RedemptionRequest | HoldRequest
) -> burn_many.Candidate:
    return burn_many.Candidate(handle, partner_id, req, f"idem-{req.partner_ref}")


def redeemed(result: RedemptionResult | HoldResult) -> RedemptionResult:
    assert isinstance(result, RedemptionResult), result
    return result


def held(result: RedemptionResult | HoldResult) -> HoldResult:
    assert isinstance(result, HoldResult), result
    return result


async def test_a_group_of_burns_is_one_read_and_one_write(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    cards = [await funded(pool, partner_id, 500) for _ in range(3)]
    candidates = [
        candidate(10, partner_id, redemption(cards[2], "m-1", 100)),
        candidate(11, partner_id, hold_request(cards[0], "m-2", 50)),
        candidate(12, partner_id, redemption(cards[0], "m-3", 120)),  # same shopper, after
        candidate(13, partner_id, hold_request(cards[1], "m-4", 500)),  # everything
        candidate(14, partner_id, redemption(cards[2], "m-5", 400)),  # the rest
    ]
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        results = await burn_many.write_many(conn, candidates)
        assert round_trips.count - before == 2
    assert sorted(results) == [10, 11, 12, 13, 14]
    assert (redeemed(results[10]).points_redeemed, redeemed(results[10]).value_minor) == (100, 80)
    assert redeemed(results[14]).balance == 0
    assert (held(results[11]).balance, held(results[11]).held) == (450, 50)
    assert redeemed(results[12]).balance == 330
    assert (held(results[13]).balance, held(results[13]).held) == (0, 500)
    for n, card in enumerate(cards):
        rows = await pool.fetch(
            "SELECT partner_ref, kind, status, points, idempotency_key FROM partner_transactions"
            " WHERE card_number = $1 AND kind <> 'purchase' ORDER BY partner_ref",
            card,
        )
        expected = {
            0: [("m-2", "hold", "open", 50), ("m-3", "redemption", "completed", 120)],
            1: [("m-4", "hold", "open", 500)],
            2: [("m-1", "redemption", "completed", 100), ("m-5", "redemption", "completed", 400)],
        }[n]
        assert [tuple(row)[:4] for row in rows] == expected
        assert all(row["partner_ref"] in row["idempotency_key"] for row in rows)
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []


async def test_what_the_single_path_refuses_is_left_to_it_and_leaves_nothing(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    card = await funded(pool, partner_id, 100)
    other = await funded(pool, partner_id, 100)
    async with pool.acquire() as conn, conn.transaction():
        taken = await burn_many.write_many(
            conn, [candidate(0, partner_id, redemption(other, "x-taken", 10))]
        )
    assert list(taken) == [0]
    candidates = [
        candidate(1, partner_id, redemption(UNKNOWN_CARD, "x-unknown", 10)),  # refused by read
        candidate(2, partner_id, redemption(card, "x-over", 101)),  # refused by the ledger
        candidate(3, partner_id, hold_request(card, "x-taken", 10)),  # ref recorded before
        candidate(4, partner_id, redemption(card, "x-ok", 60)),
        candidate(5, partner_id, hold_request(other, "x-ok", 10)),  # the group's second x-ok
        candidate(6, partner_id, hold_request(card, "x-over-hold", 41)),  # 40 left after x-ok
        candidate(7, partner_id, hold_request(other, "x-hold", 90)),
    ]
    async with pool.acquire() as conn, conn.transaction():
        results = await burn_many.write_many(conn, candidates)
    assert sorted(results) == [4, 7]
    for ref in ("x-unknown", "x-over", "x-over-hold"):
        assert await left_by(pool, partner_id, ref) == NOTHING, ref
    assert await program.balance(pool, card) == 40
    assert await program.balance(pool, other) == 0  # 100 - 10 redeemed - 90 held
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []


def capture(handle: int, partner_id: int, hold_id: str, points: int | None) -> burn_many.Candidate:
    return burn_many.Candidate(
        handle, partner_id, CaptureRequest(points=points), f"idem-cap-{handle}", hold_id=hold_id
    )


async def test_captures_go_with_the_group_and_a_second_capture_is_left(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    card = await funded(pool, partner_id, 300)
    async with pool.acquire() as conn, conn.transaction():
        opened = await burn_many.write_many(
            conn,
            [
                candidate(0, partner_id, hold_request(card, "c-1", 100)),
                candidate(1, partner_id, hold_request(card, "c-2", 100)),
                candidate(2, partner_id, hold_request(card, "c-3", 50)),
            ],
        )
    first, second, third = (held(opened[n]).hold_id for n in range(3))
    async with pool.acquire() as conn, conn.transaction():
        await operations.void_hold(conn, partner_id, third)  # not open: refused by the read
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        results = await burn_many.write_many(
            conn,
            [
                capture(10, partner_id, first, None),  # the whole hold
                capture(11, partner_id, second, 40),  # a part of it, the rest released
                capture(12, partner_id, first, None),  # the same hold again: the single path
                capture(13, partner_id, third, None),
                capture(14, partner_id, "not-a-uuid", None),
                capture(15, partner_id, "00000000-0000-0000-0000-000000000000", None),
                candidate(16, partner_id, redemption(card, "c-4", 20)),
            ],
        )
        assert round_trips.count - before == 3  # two reads, one write
    assert sorted(results) == [10, 11, 16]
    whole, part = held(results[10]), held(results[11])
    assert (whole.status, whole.points_captured, whole.value_minor) == ("captured", 100, 80)
    assert (part.status, part.points_captured, part.value_minor) == ("captured", 40, 32)
    assert redeemed(results[16]).balance == 80  # 300 - 200 held - 20, before the captures
    assert await program.balance(pool, card) == 140  # then 60 released by the partial capture
    statuses = await pool.fetch(
        "SELECT id::text, status, points_captured FROM partner_transactions"
        " WHERE id = ANY($1::uuid[]) ORDER BY partner_ref",
        [first, second, third],
    )
    assert [tuple(row) for row in statuses] == [
        (first, "captured", 100),
        (second, "captured", 40),
        (third, "voided", 0),
    ]
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []
