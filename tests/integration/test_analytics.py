"""Operator analytics against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ledger import service as ledger
from shoppers import analytics
from tests.support.generated_network import insert_partners, insert_shoppers

PERIOD = (datetime(2001, 3, 1, tzinfo=UTC), datetime(2001, 4, 1, tzinfo=UTC))
BEFORE = datetime(2001, 2, 10, tzinfo=UTC)
DURING = datetime(2001, 3, 10, tzinfo=UTC)
AFTER = datetime(2001, 4, 10, tzinfo=UTC)

PURCHASE = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, amount_minor, pricing_version, idempotency_key, created_at)
VALUES (gen_random_uuid(), $1, $2, 'purchase', 'completed', $3, '7900000000000000', 0, $4, 1,
        $2, $5)
"""


@pytest.fixture(scope="module")
async def partners(pool: asyncpg.Pool) -> list[int]:
    """Shoppers a..h with purchases before, during and after March 2001; NPS answers."""
    async with pool.acquire() as conn, conn.transaction():
        ids = await insert_partners(conn, "ana", 2)
        a, b, c, d, f, g, h = await insert_shoppers(conn, 7, enrolled_by=ids[0], now=DURING)
        plan = [
            (a, 700, BEFORE), (b, 700, BEFORE), (c, 700, BEFORE), (d, 700, BEFORE),
            (a, 1_000, DURING), (a, 2_000, DURING), (b, 3_000, DURING),
            (f, 1_001, DURING), (g, 500, DURING), (g, 500, DURING + timedelta(days=1)),
            (h, 900, AFTER),
        ]  # fmt: skip
        for n, (shopper, amount, at) in enumerate(plan):
            await conn.execute(PURCHASE, ids[n % 2], f"ana-{n}", shopper, amount, at)
        for score, at in [(10, DURING), (9, DURING), (9, DURING), (8, DURING), (7, DURING),
                          (6, DURING), (0, DURING), (0, AFTER)]:  # fmt: skip
            await conn.execute(
                "INSERT INTO nps_answers (shopper_id, score, answered_at) VALUES ($1, $2, $3)",
                a, score, at,
            )  # fmt: skip
    return ids


async def test_retention_is_e_minus_n_over_s(pool: asyncpg.Pool, partners: list[int]) -> None:
    async with pool.acquire() as conn:
        result = await analytics.retention(conn, PERIOD)
    # S = {a, b, c, d}; E = {a, b, f, g}; N = {f, g}: (4 - 2) / 4 x 100 = 50.00
    assert (result.shoppers_at_start, result.shoppers_at_end, result.new_shoppers) == (4, 4, 2)
    assert result.retention_rate_bps == 5_000
    assert result.retention_rate == "50.00"


async def test_repeat_purchase_rate_and_average_basket(
    pool: asyncpg.Pool, partners: list[int]
) -> None:
    async with pool.acquire() as conn:
        repeat = await analytics.repeat_purchase(conn, PERIOD)
        basket = await analytics.average_basket(conn, PERIOD)
    assert (repeat.purchasers, repeat.repeat_purchasers, repeat.repeat_purchase_rate) == (
        4, 2, "50.00",
    )  # fmt: skip
    network = basket.rows[0]
    # 1000 + 2000 + 3000 + 1001 + 500 + 500 = 8001 over 6 purchases = 1333.5 -> 1334
    assert (network.partner_id, network.purchases, network.spend_minor) == (None, 6, 8_001)
    assert network.average_basket_minor == 1_334
    assert sum(row.purchases for row in basket.rows[1:]) == 6


async def test_nps_is_promoters_minus_detractors(pool: asyncpg.Pool, partners: list[int]) -> None:
    async with pool.acquire() as conn:
        result = await analytics.nps(conn, PERIOD)
    # 3 promoters, 2 passives, 2 detractors of 7: (3 - 2) / 7 x 100 = 14.2857... -> 14.29
    assert (result.promoters, result.passives, result.detractors) == (3, 2, 2)
    assert (result.nps_bps, result.nps) == (1_429, "14.29")


def test_rates_round_half_away_from_zero_without_floats() -> None:
    assert analytics.percent_bps(1, 3) == 3_333
    assert analytics.percent_bps(2, 3) == 6_667
    assert analytics.percent_bps(-2, 3) == -6_667
    assert analytics.percent_bps(1, 0) is None
    assert analytics.as_percent(-5) == "-0.05"


async def test_flows_liability_and_partner_points_follow_lot_consumption(
    pool: asyncpg.Pool, partners: list[int]
) -> None:
    p1, p2 = partners
    shopper = 900_001
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await ledger.earn(
            conn, idempotency_key="ana-e1", shopper_id=shopper, partner_id=p1, points=100,
            issue_price_micros=10_000, expires_at=now + timedelta(days=30),
        )  # fmt: skip
        await ledger.earn(
            conn, idempotency_key="ana-e2", shopper_id=shopper, partner_id=p2, points=50,
            issue_price_micros=20_000, expires_at=now + timedelta(days=300),
        )  # fmt: skip
        burn = await ledger.burn(
            conn, idempotency_key="ana-b1", shopper_id=shopper, partner_id=p2, points=120,
            redemption_price_micros=8_000,
        )  # fmt: skip
        await ledger.refund_burn(
            conn, idempotency_key="ana-r1", original_entry_id=burn.entry_id, points=10
        )
        window = (now - timedelta(hours=1), now + timedelta(hours=1))
        flows = await analytics.flow_matrix(conn, window)
        points = await analytics.partner_points(conn, window)
        owed = await analytics.liability(conn, window)
    # soonest expiry first: 100 from p1's lot, 20 from p2's; the refund returns p2's first
    assert [(c.earned_partner_id, c.burned_partner_id, c.points) for c in flows.rows] == [
        (p1, p2, 100), (p2, p2, 10),
    ]  # fmt: skip
    assert flows.rows[0].issue_value_micros == 100 * 10_000
    assert [(r.partner_id, r.points_issued, r.points_redeemed, r.points_redeemed_reversed)
            for r in points.rows] == [(p1, 100, 0, 0), (p2, 50, 120, 10)]  # fmt: skip
    assert owed.points_outstanding == 40
    assert (owed.points_issued, owed.points_expired, owed.breakage_rate) == (150, 0, "0.00")


def test_a_period_must_be_ordered_and_bounded() -> None:
    now = datetime.now(UTC)
    with pytest.raises(analytics.AnalyticsPeriodInvalid):
        analytics.period(now, now - timedelta(days=1), now=now)
    with pytest.raises(analytics.AnalyticsPeriodInvalid):
        analytics.period(now - timedelta(days=5_000), now, now=now)


async def test_points_per_day_is_partner_points_summed_for_each_day(
    pool: asyncpg.Pool, partners: list[int]
) -> None:
    """The dashboard's one-query series equals one `partner_points` call per day, and a day's
    bucket is [start + n days, start + n + 1 days), whatever the hour of `start`."""
    p1, _ = partners
    shopper = 900_002
    async with pool.acquire() as conn:
        await ledger.earn(
            conn, idempotency_key="day-e1", shopper_id=shopper, partner_id=p1, points=70,
            issue_price_micros=10_000, expires_at=datetime.now(UTC) + timedelta(days=30),
        )  # fmt: skip
        burn = await ledger.burn(
            conn, idempotency_key="day-b1", shopper_id=shopper, partner_id=p1, points=30,
            redemption_price_micros=8_000,
        )  # fmt: skip
        await ledger.refund_burn(
            conn, idempotency_key="day-r1", original_entry_id=burn.entry_id, points=5
        )
        start = datetime.now(UTC) - timedelta(hours=36)  # now falls in day 1 of 0..2
        series = await analytics.points_per_day(conn, start, 3)
        expected = []
        for n in range(3):
            day = (start + timedelta(days=n), start + timedelta(days=n + 1))
            rows = (await analytics.partner_points(conn, day)).rows
            expected.append(
                (
                    day[0],
                    sum(r.points_issued - r.points_issued_reversed for r in rows),
                    sum(r.points_redeemed - r.points_redeemed_reversed for r in rows),
                )
            )
    assert [(d.start, d.issued, d.redeemed) for d in series] == expected
    assert series[0].issued == series[2].issued == 0
    assert series[1].issued >= 70  # this test's earn, plus any of the module's earlier ones
    assert series[1].redeemed >= 25  # 30 burned, 5 given back
