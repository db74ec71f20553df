"""Each ledger operation against real PostgreSQL: the postings DESIGN.md prescribes, the
errors it raises, and a clean verify() after it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from infra.db import Conn
from ledger import service as ledger
from ledger.errors import (
    CaptureExceedsHold,
    EntryNotFound,
    EntryNotRefundable,
    HoldNotFound,
    HoldNotOpen,
    HoldsOpen,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidArgument,
    JournalAppendOnly,
    RefundExceedsOriginal,
)
from ledger.verify import verify

PARTNER = 7
OTHER_PARTNER = 8
IP = 5_000  # issue price: 0.005 EUR per point
RP = 4_000  # redemption price
_ids = itertools.count(1_000)
_keys = itertools.count()


def key() -> str:
    return f"test:{next(_keys)}"


def shopper() -> int:
    return next(_ids)


def later(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def lines(result: ledger.EntryResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in result.postings:
        out[p.account] = out.get(p.account, 0) + p.amount
    return out


async def assert_sound(conn: Conn) -> None:
    assert await verify(conn) == []


async def earn(conn: Conn, shopper_id: int, points: int, **kw: object) -> ledger.EntryResult:
    args: dict[str, object] = {
        "partner_id": PARTNER,
        "issue_price_micros": IP,
        "expires_at": later(30),
    }
    args.update(kw)
    return await ledger.earn(
        conn,
        idempotency_key=key(),
        shopper_id=shopper_id,
        points=points,
        **args,  # type: ignore[arg-type]
    )


async def test_earn_posts_points_and_partner_cost(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        result = await earn(conn, s, 100)
        assert result.balance_after == 100
        assert lines(result) == {
            f"shopper:{s}:wallet": 100,
            "network:points_issued": -100,
            f"partner:{PARTNER}:settlement": 100 * IP,
            "network:deferred_revenue": -100 * IP,
        }
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 100
        await assert_sound(conn)


async def test_burn_consumes_soonest_expiry_first_with_money_per_lot(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 50, expires_at=later(60), issue_price_micros=7_000)
        await earn(conn, s, 30, expires_at=later(10), issue_price_micros=2_000)
        await earn(conn, s, 20, expires_at=None, issue_price_micros=9_000)
        result = await ledger.burn(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=OTHER_PARTNER,
            points=60,
            redemption_price_micros=RP,
        )
        issue_value = 30 * 2_000 + 30 * 7_000  # the 10-day lot first, then the 60-day lot
        assert result.balance_after == 40
        assert lines(result) == {
            f"shopper:{s}:wallet": -60,
            "network:points_issued": 60,
            "network:deferred_revenue": issue_value,
            f"partner:{OTHER_PARTNER}:settlement": -60 * RP,
            "network:redemption_margin": 60 * RP - issue_value,
        }
        await assert_sound(conn)


async def test_burn_beyond_balance_raises_and_changes_nothing(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 10)
        with pytest.raises(InsufficientPoints) as caught:
            await ledger.burn(
                conn,
                idempotency_key=key(),
                shopper_id=s,
                partner_id=PARTNER,
                points=11,
                redemption_price_micros=RP,
            )
        assert (caught.value.available, caught.value.requested) == (10, 11)
        assert caught.value.code == "insufficient_points"
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 10


async def test_idempotent_replay_and_conflict(pool: asyncpg.Pool) -> None:
    s = shopper()
    k = key()
    async with pool.acquire() as conn:
        expires = later(30)
        first = await ledger.earn(
            conn,
            idempotency_key=k,
            shopper_id=s,
            partner_id=PARTNER,
            points=10,
            issue_price_micros=IP,
            expires_at=expires,
        )
        again = await ledger.earn(
            conn,
            idempotency_key=k,
            shopper_id=s,
            partner_id=PARTNER,
            points=10,
            issue_price_micros=IP,
            expires_at=expires.astimezone(timezone(timedelta(hours=2))),
        )
        assert again.replayed
        assert not first.replayed
        assert again.entry_id == first.entry_id
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 10
        with pytest.raises(IdempotencyConflict) as caught:
            await ledger.earn(
                conn,
                idempotency_key=k,
                shopper_id=s,
                partner_id=PARTNER,
                points=11,
                issue_price_micros=IP + 1,
                expires_at=expires,
            )
        assert caught.value.fields == ("issue_price_micros", "points")
        with pytest.raises(IdempotencyConflict) as other_op:
            await ledger.burn(
                conn,
                idempotency_key=k,
                shopper_id=s,
                partner_id=PARTNER,
                points=1,
                redemption_price_micros=RP,
            )
        assert "operation" in other_op.value.fields


async def test_hold_partial_capture_returns_the_rest(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 100)
        held = await ledger.hold(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=OTHER_PARTNER,
            points=40,
            expires_at=later(1),
        )
        assert (held.balance_after, held.held_after) == (60, 40)
        assert held.hold_id is not None
        with pytest.raises(CaptureExceedsHold):
            await ledger.capture(
                conn,
                idempotency_key=key(),
                hold_id=held.hold_id,
                points=41,
                redemption_price_micros=RP,
            )
        captured = await ledger.capture(
            conn,
            idempotency_key=key(),
            hold_id=held.hold_id,
            points=25,
            redemption_price_micros=RP,
        )
        assert (captured.balance_after, captured.held_after) == (75, 0)
        assert lines(captured) == {
            f"shopper:{s}:held": -40,
            f"shopper:{s}:wallet": 15,
            "network:points_issued": 25,
            "network:deferred_revenue": 25 * IP,
            f"partner:{OTHER_PARTNER}:settlement": -25 * RP,
            "network:redemption_margin": 25 * RP - 25 * IP,
        }
        with pytest.raises(HoldNotOpen) as caught:
            await ledger.void(conn, idempotency_key=key(), hold_id=held.hold_id)
        assert caught.value.state == "captured"
        with pytest.raises(HoldNotFound):
            await ledger.void(conn, idempotency_key=key(), hold_id=10**12)
        await assert_sound(conn)


async def test_void_and_expired_hold_release(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 100)
        h1 = await ledger.hold(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=PARTNER,
            points=30,
            expires_at=later(1),
        )
        h2 = await ledger.hold(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=PARTNER,
            points=20,
            expires_at=later(2),
        )
        assert h1.hold_id is not None
        assert h2.hold_id is not None
        voided = await ledger.void(conn, idempotency_key=key(), hold_id=h1.hold_id)
        assert (voided.balance_after, voided.held_after) == (80, 20)
        assert await ledger.release_expired_holds(conn, now=later(1) + timedelta(hours=1)) == 0
        assert await ledger.release_expired_holds(conn, now=later(3)) >= 1
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 100
        assert await ledger.balance(conn, ledger.held_account(s)) == 0
        with pytest.raises(HoldNotOpen) as caught:
            await ledger.capture(
                conn,
                idempotency_key=key(),
                hold_id=h2.hold_id,
                points=1,
                redemption_price_micros=RP,
            )
        assert caught.value.state == "expired"
        await assert_sound(conn)


async def test_expiry_moves_unspent_remainder_to_breakage(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 100, expires_at=later(5), issue_price_micros=3_000)
        await earn(conn, s, 10, expires_at=later(50))
        await ledger.burn(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=PARTNER,
            points=30,
            redemption_price_micros=RP,
        )
        breakage_before = await ledger.balance(conn, "network:breakage")
        await ledger.expire_lots(conn, now=later(6))
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 10
        assert await ledger.balance(conn, "network:breakage") == breakage_before - 70 * 3_000
        await assert_sound(conn)


async def test_refund_of_spent_earn_goes_into_debt_repaid_by_next_earn(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        earned = await earn(conn, s, 100, issue_price_micros=3_000)
        await ledger.burn(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=PARTNER,
            points=80,
            redemption_price_micros=RP,
        )
        refund = await ledger.refund_earn(
            conn, idempotency_key=key(), original_entry_id=earned.entry_id, points=100
        )
        # 20 unspent come off the lot, 80 already spent become points debt.
        assert refund.balance_after == -80
        assert refund.clawback_points == 80
        assert lines(refund) == {
            f"shopper:{s}:wallet": -100,
            "network:points_issued": 100,
            f"partner:{PARTNER}:settlement": -100 * 3_000,
            "network:deferred_revenue": 20 * 3_000,
            "network:points_debt": 80 * 3_000,
        }
        with pytest.raises(RefundExceedsOriginal):
            await ledger.refund_earn(
                conn, idempotency_key=key(), original_entry_id=earned.entry_id, points=1
            )
        with pytest.raises(InsufficientPoints):
            await ledger.burn(
                conn,
                idempotency_key=key(),
                shopper_id=s,
                partner_id=PARTNER,
                points=1,
                redemption_price_micros=RP,
            )
        repay = await earn(conn, s, 50, issue_price_micros=5_000)
        assert repay.balance_after == -30
        assert lines(repay) == {
            f"shopper:{s}:wallet": 50,
            "network:points_issued": -50,
            f"partner:{PARTNER}:settlement": 50 * 5_000,
            "network:points_debt": -50 * 3_000,
            "network:redemption_margin": -(50 * 5_000 - 50 * 3_000),
        }
        cleared = await earn(conn, s, 40, issue_price_micros=5_000)
        assert cleared.balance_after == 10
        assert cleared.debt_points_after == 0
        await assert_sound(conn)


async def test_refund_burn_restores_lots_and_grace_lot_after_expiry(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        # A lot that has already expired in real time, and one that has not.
        await earn(conn, s, 10, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        await earn(conn, s, 10, expires_at=later(10))
        burned = await ledger.burn(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=OTHER_PARTNER,
            points=15,
            redemption_price_micros=RP,
        )
        with pytest.raises(EntryNotRefundable):
            await ledger.refund_earn(
                conn, idempotency_key=key(), original_entry_id=burned.entry_id, points=1
            )
        with pytest.raises(EntryNotFound):
            await ledger.refund_burn(
                conn, idempotency_key=key(), original_entry_id=10**12, points=1
            )
        refund = await ledger.refund_burn(
            conn,
            idempotency_key=key(),
            original_entry_id=burned.entry_id,
            points=15,
            grace_s=3_600,
        )
        assert refund.balance_after == 20
        assert lines(refund)[f"partner:{OTHER_PARTNER}:settlement"] == 15 * RP
        summary = await ledger.wallet_summary(
            conn, shopper_id=s, now=datetime.now(UTC), expiring_within_s=2 * 3_600
        )
        # The 10 points of the expired lot came back as a grace lot expiring within the hour.
        assert [lot.points for lot in summary.expiring] == [10]
        await assert_sound(conn)


async def test_goodwill_credit_and_debit_by_operator(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        granted = await ledger.goodwill(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=None,
            points=25,
            issue_price_micros=IP,
            expires_at=None,
            reason="late delivery",
        )
        assert lines(granted)["network:marketing"] == 25 * IP
        debited = await ledger.goodwill_debit(
            conn,
            idempotency_key=key(),
            shopper_id=s,
            partner_id=None,
            points=5,
            reason="granted twice",
        )
        assert lines(debited)["network:marketing"] == -5 * IP
        with pytest.raises(InvalidArgument):
            await ledger.goodwill_debit(
                conn, idempotency_key=key(), shopper_id=s, partner_id=None, points=5, reason=" "
            )
        await assert_sound(conn)


async def test_transfer_all_keeps_expiry_and_moves_debt(pool: asyncpg.Pool) -> None:
    a, b, c = shopper(), shopper(), shopper()
    async with pool.acquire() as conn:
        expiry = later(9)
        await earn(conn, a, 40, expires_at=expiry)
        e_b = await earn(conn, b, 10)
        await ledger.burn(
            conn,
            idempotency_key=key(),
            shopper_id=b,
            partner_id=PARTNER,
            points=10,
            redemption_price_micros=RP,
        )
        await ledger.refund_earn(
            conn, idempotency_key=key(), original_entry_id=e_b.entry_id, points=10
        )
        held = (
            await ledger.hold(
                conn,
                idempotency_key=key(),
                shopper_id=c,
                partner_id=PARTNER,
                points=1,
                expires_at=later(1),
            )
            if False
            else None
        )
        assert held is None
        await earn(conn, c, 5)
        await ledger.hold(
            conn,
            idempotency_key=key(),
            shopper_id=c,
            partner_id=PARTNER,
            points=1,
            expires_at=later(1),
        )
        with pytest.raises(HoldsOpen):
            await ledger.transfer_all(
                conn, idempotency_key=key(), from_shopper_id=c, to_shopper_id=a
            )
        moved = await ledger.transfer_all(
            conn, idempotency_key=key(), from_shopper_id=b, to_shopper_id=a
        )
        # b owed 10 points; a's 40 repay them at once.
        assert moved.balance_after == 30
        assert await ledger.balance(conn, ledger.wallet_account(b)) == 0
        summary = await ledger.wallet_summary(conn, shopper_id=a, now=datetime.now(UTC))
        assert [(lot.expires_at, lot.points) for lot in summary.expiring] == [(expiry, 30)]
        await assert_sound(conn)


async def test_settlement_payment_and_rollup_reads_are_exact(pool: asyncpg.Pool) -> None:
    partner = 4242
    async with pool.acquire() as conn:
        await earn(conn, shopper(), 100, partner_id=partner)
        account = ledger.settlement_account(partner)
        assert await ledger.balance(conn, account) == 100 * IP
        paid = await ledger.settlement_payment(
            conn, idempotency_key=key(), partner_id=partner, amount_micros=100 * IP
        )
        assert lines(paid) == {account: -100 * IP, "network:bank": 100 * IP}
        assert await ledger.balance(conn, account) == 0
        while await ledger.fold_deltas(conn, batch_max=100):
            pass
        assert await conn.fetchval("SELECT count(*) FROM ledger.balance_delta") == 0
        assert await ledger.balance(conn, account) == 0
        assert await ledger.balance(conn, "network:bank") >= 100 * IP
        await assert_sound(conn)


async def test_point_in_time_balance_and_paginated_history(pool: asyncpg.Pool) -> None:
    s = shopper()
    async with pool.acquire() as conn:
        await earn(conn, s, 10)
        middle = await conn.fetchval("SELECT clock_timestamp()")
        for _ in range(4):
            await earn(conn, s, 10)
        assert await ledger.balance(conn, ledger.wallet_account(s), at=middle) == 10
        assert await ledger.balance(conn, ledger.wallet_account(s)) == 50
        page = await ledger.history(conn, ledger.wallet_account(s), limit=2)
        seen = list(page.items)
        while page.next_cursor is not None:
            page = await ledger.history(
                conn, ledger.wallet_account(s), cursor=page.next_cursor, limit=2
            )
            seen += page.items
        assert [item.amount for item in seen] == [10] * 5
        assert [item.posting_id for item in seen] == sorted(
            (item.posting_id for item in seen), reverse=True
        )
        with pytest.raises(InvalidArgument):
            await ledger.history(conn, ledger.wallet_account(s), limit=ledger.HISTORY_LIMIT_MAX + 1)
        with pytest.raises(InvalidArgument):
            await ledger.history(conn, ledger.wallet_account(s), cursor="bogus")


async def test_journal_refuses_update_and_delete(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        result = await earn(conn, shopper(), 10)
        for statement in (
            "UPDATE ledger.posting SET amount = amount + 1 WHERE entry_id = $1",
            "DELETE FROM ledger.posting WHERE entry_id = $1",
            "UPDATE ledger.entry SET kind = 'burn' WHERE entry_id = $1",
            "DELETE FROM ledger.entry WHERE entry_id = $1",
        ):
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(statement, result.entry_id)
            assert caught.value.sqlstate == "CL001"
            assert caught.value.message == JournalAppendOnly.code


async def test_unbalanced_entry_is_refused_at_commit(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        account_id = await conn.fetchval(
            "SELECT account_id FROM ledger.account WHERE name = 'network:points_issued'"
        )

        async def one_sided_entry() -> None:
            async with conn.transaction():
                entry_id = await conn.fetchval(
                    "INSERT INTO ledger.entry (kind, args) VALUES ('goodwill', '{}') "
                    "RETURNING entry_id"
                )
                await conn.execute(
                    "INSERT INTO ledger.posting (entry_id, account_id, asset, amount) "
                    "VALUES ($1, $2, 'PTS', 5)",
                    entry_id,
                    account_id,
                )

        with pytest.raises(asyncpg.PostgresError) as caught:
            await one_sided_entry()
        assert caught.value.message == "entry_unbalanced"


async def test_seal_blocks_chains_committed_entries(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await earn(conn, shopper(), 10)
        sealed = 0
        while count := await ledger.seal_blocks(conn, entries_max=50):
            sealed += count
        assert sealed > 0
        assert await conn.fetchval("SELECT count(*) FROM ledger.seal_queue") == 0
        await assert_sound(conn)
