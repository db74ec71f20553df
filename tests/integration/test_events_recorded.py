"""Events recorded in the outbox with the change they describe, on real PostgreSQL: exactly one
per change, addressed to the right partner, no card number or personal data in the payload,
and none when the change is refused or rolled back."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.partners import (
    Enrollment,
    EnrollRequest,
    PartnerCreate,
    PurchaseRequest,
    RedemptionRequest,
)
from ledger import reconciliation, settlement
from ledger.reconciliation import ReconciliationHeaderInvalid
from partners import operations
from partners.errors import LedgerRefused

_n = itertools.count(1)


class Rollback(Exception):
    """Raised inside a transaction to undo it."""


async def events(pool: asyncpg.Pool, event_type: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT partner_id, shopper_id, payload FROM event_outbox WHERE event_type = $1"
        " ORDER BY event_id",
        event_type,
    )
    return [
        {"partner_id": r["partner_id"], "shopper_id": r["shopper_id"], **json.loads(r["payload"])}
        for r in rows
    ]


async def partner(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn, conn.transaction():
        created = await operations.create_partner(
            conn,
            PartnerCreate(
                name="Shop",
                slug=f"events-shop-{next(_n)}",
                issue_price_micros=10_000,
                redemption_price_micros=8_000,
                earn_points=1,
                earn_spend_minor=100,
            ),
            operator="test",
        )
    return created.id


async def enroll(pool: asyncpg.Pool, partner_id: int) -> Enrollment:
    async with pool.acquire() as conn, conn.transaction():
        return await operations.enroll_shopper(conn, partner_id, EnrollRequest())


async def buy(pool: asyncpg.Pool, partner_id: int, card: str, ref: str, amount: int) -> str:
    async with pool.acquire() as conn, conn.transaction():
        result = await operations.purchase(
            conn,
            partner_id,
            PurchaseRequest(partner_ref=ref, card_number=card, amount_minor=amount, currency="EUR"),
            idempotency_key=ref,
        )
    return result.transaction_id


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await partner(pool)


async def test_a_purchase_records_one_purchase_recorded_event_without_personal_data(
    pool: asyncpg.Pool, shop: int
) -> None:
    holder = await enroll(pool, shop)
    transaction_id = await buy(pool, shop, holder.card_number, "ev-buy-1", 12_345)
    recorded = [
        e for e in await events(pool, "purchase.recorded") if e["partner_ref"] == "ev-buy-1"
    ]
    assert recorded == [
        {
            "partner_id": shop,
            "shopper_id": holder.shopper_id,
            "transaction_id": transaction_id,
            "partner_ref": "ev-buy-1",
            "points": 123,
            "amount_minor": 12_345,
        }
    ]
    raw = await pool.fetchval(
        "SELECT payload::text FROM event_outbox WHERE event_type = 'purchase.recorded'"
        " AND payload ->> 'partner_ref' = 'ev-buy-1'"
    )
    assert holder.card_number not in raw


async def test_a_rolled_back_purchase_leaves_no_event(pool: asyncpg.Pool, shop: int) -> None:
    holder = await enroll(pool, shop)
    before = len(await events(pool, "purchase.recorded"))

    async def purchase_then_roll_back() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await operations.purchase(
                conn,
                shop,
                PurchaseRequest(
                    partner_ref="ev-undone",
                    card_number=holder.card_number,
                    amount_minor=1_000,
                    currency="EUR",
                ),
                idempotency_key="ev-undone",
            )
            raise Rollback

    with pytest.raises(Rollback):
        await purchase_then_roll_back()
    assert len(await events(pool, "purchase.recorded")) == before


async def test_a_redemption_records_one_event_and_a_refused_one_records_none(
    pool: asyncpg.Pool, shop: int
) -> None:
    holder = await enroll(pool, shop)
    await buy(pool, shop, holder.card_number, "ev-buy-2", 10_000)  # 100 points
    async with pool.acquire() as conn, conn.transaction():
        redeemed = await operations.redeem(
            conn,
            shop,
            RedemptionRequest(partner_ref="ev-use-1", card_number=holder.card_number, points=40),
            idempotency_key="ev-use-1",
        )
    with pytest.raises(LedgerRefused):
        async with pool.acquire() as conn, conn.transaction():
            await operations.redeem(
                conn,
                shop,
                RedemptionRequest(
                    partner_ref="ev-use-2", card_number=holder.card_number, points=1_000
                ),
                idempotency_key="ev-use-2",
            )
    recorded = await events(pool, "redemption.recorded")
    assert recorded == [
        {
            "partner_id": shop,
            "shopper_id": holder.shopper_id,
            "transaction_id": redeemed.transaction_id,
            "partner_ref": "ev-use-1",
            "points": 40,
            "value_minor": redeemed.value_minor,
        }
    ]


async def test_closing_a_period_records_one_statement_ready_per_statement_once(
    pool: asyncpg.Pool, shop: int
) -> None:
    other = await partner(pool)
    holder = await enroll(pool, other)
    await buy(pool, other, holder.card_number, "ev-buy-3", 5_000)
    period_end = datetime.now(UTC)
    async with pool.acquire() as conn:
        period = await settlement.close_period(
            conn, period_end=period_end, closed_by="test", now=datetime.now(UTC)
        )
        again = await settlement.close_period(
            conn, period_end=period_end, closed_by="test", now=datetime.now(UTC)
        )
    assert period.created
    assert not again.created
    ready = await events(pool, "statement.ready")
    assert sorted((e["partner_id"], e["statement_id"]) for e in ready) == sorted(
        (s.partner_id, s.statement_id) for s in period.statements
    )
    assert {shop, other} <= {e["partner_id"] for e in ready}
    mine = next(e for e in ready if e["partner_id"] == other)
    statement = next(s for s in period.statements if s.partner_id == other)
    assert mine["payment_due_micros"] == statement.payment_due_micros == 500_000
    assert mine["period_end"] == period.period_end.isoformat()
    assert (mine["payer"], mine["payment_minor"], mine["period_id"]) == (
        "partner",
        50,
        period.period_id,
    )


async def log_of(text: str) -> AsyncIterator[bytes]:
    yield text.encode()


async def test_a_stored_reconciliation_records_one_event_and_a_refused_upload_none(
    pool: asyncpg.Pool, shop: int
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    end = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ReconciliationHeaderInvalid):
        async with pool.acquire() as conn:
            await reconciliation.reconcile(
                conn,
                partner_id=shop,
                period_start=start,
                period_end=end,
                source_format="csv",
                chunks=log_of("not,a,header\n"),
            )
    assert await events(pool, "reconciliation.completed") == []
    async with pool.acquire() as conn:
        report = await reconciliation.reconcile(
            conn,
            partner_id=shop,
            period_start=start,
            period_end=end,
            source_format="csv",
            chunks=log_of("partner_ref,type,card_number,points,amount_minor,occurred_at\n"),
        )
    completed = await events(pool, "reconciliation.completed")
    assert len(completed) == 1
    assert completed[0]["partner_id"] == shop
    assert completed[0]["reconciliation_id"] == report.reconciliation_id
    assert completed[0]["totals"]["missing_at_partner"] == report.totals.missing_at_partner > 0
