"""Retention figures (issue 19) against a small crafted network computed by hand: CRR for the
network and per partner, CLV per segment, the ABC x XYZ matrix; and a partner's view
suppressed below k."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from shoppers import retention
from tests.support.generated_network import insert_partners, insert_shoppers

PERIOD = (datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 4, 1, tzinfo=UTC))  # 3 months
DEC, JAN, FEB, MAR = (
    datetime(y, m, 10, tzinfo=UTC) for y, m in ((2000, 12), (2001, 1), (2001, 2), (2001, 3))
)

PURCHASE = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, amount_minor, pricing_version, idempotency_key, created_at)
VALUES (gen_random_uuid(), $1, $2, 'purchase', 'completed', $3, '7900000000000000', 0, $4, 1,
        $2, $5)
RETURNING id
"""

REFUND = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, amount_minor, pricing_version, idempotency_key, created_at, original_id)
VALUES (gen_random_uuid(), $1, $2, 'refund', 'completed', $3, '7900000000000000', 0, $4, 1,
        $2, $5, $6)
"""


@pytest.fixture(scope="module")
async def network(pool: asyncpg.Pool) -> dict[str, int]:
    """a, b, c bought before the period; d, e first buy in it. b buys nothing in it."""
    async with pool.acquire() as conn, conn.transaction():
        p0, p1 = await insert_partners(conn, "ret", 2)
        a, b, c, d, e = await insert_shoppers(conn, 5, enrolled_by=p0, now=JAN)
        plan = [
            (p0, a, 700, DEC), (p0, b, 700, DEC), (p1, c, 700, DEC),
            (p0, a, 1_000, JAN), (p0, a, 1_000, FEB), (p0, a, 1_000, MAR),
            (p1, c, 3_000, JAN), (p1, c, 3_000, MAR),
            (p0, d, 500, FEB), (p1, d, 500, FEB),
            (p1, e, 400, JAN), (p1, e, 400, FEB), (p1, e, 500, MAR),
        ]  # fmt: skip
        ids = [
            await conn.fetchval(PURCHASE, partner, f"ret-{n}", shopper, amount, at)
            for n, (partner, shopper, amount, at) in enumerate(plan)
        ]
        # e's March purchase refunded by 100: March's net spend is 400, like January's.
        await conn.execute(REFUND, p1, "ret-refund", e, 100, MAR, ids[-1])
        for shopper, segment in ((a, "vip"), (c, "vip"), (d, "newcomer")):
            await conn.execute(
                "INSERT INTO shopper_segments (shopper_id, segment) VALUES ($1, $2)",
                shopper,
                segment,
            )
    return {"p0": p0, "p1": p1}


async def test_crr_for_the_network_and_each_partner(
    pool: asyncpg.Pool, network: dict[str, int]
) -> None:
    async with pool.acquire() as conn:
        rates = await retention.retention_rates(conn, PERIOD, partner_id=None)
    got = {r.partner_id: (r.shoppers_at_start, r.shoppers_at_end, r.new_shoppers,
                          r.retention_rate_bps) for r in rates.rows}  # fmt: skip
    # network: S {a,b,c}, E {a,c,d,e}, N {d,e}: (4-2)/3 = 66.67 %
    # p0: S {a,b}, E {a,d}, N {d}: (2-1)/2 = 50 %; p1: S {c}, E {c,d,e}, N {d,e}: 1/1 = 100 %
    assert got == {
        None: (3, 4, 2, 6_667),
        network["p0"]: (2, 2, 1, 5_000),
        network["p1"]: (1, 3, 2, 10_000),
    }
    assert rates.rows[0].retention_rate == "66.67"


async def test_lifetime_value_per_segment(pool: asyncpg.Pool, network: dict[str, int]) -> None:
    async with pool.acquire() as conn:
        values = await retention.lifetime_value(conn, PERIOD, partner_id=None, margin_bps=2_500)
    rows = {r.segment: r for r in values.rows}
    assert [r.segment for r in values.rows] == ["all", "newcomer", "vip"]
    everyone = rows["all"]
    # 10 purchases, 11,300 spent (gross), E = 4, CRR 2/3 -> lifetime 3 periods;
    # margin 11,300 x 25 % / 10 = 282.5; frequency 10 / 4 = 2.5; CLV 282.5 x 2.5 x 3 = 2,118.75
    assert (everyone.purchases, everyone.spend_minor) == (10, 11_300)
    assert (everyone.margin_per_purchase_minor, everyone.purchases_per_shopper_centi) == (283, 250)
    assert (everyone.expected_lifetime_periods_centi, everyone.lifetime_capped) == (300, False)
    assert everyone.lifetime_value_minor == 2_119
    vip = rows["vip"]  # a and c: nobody lost, lifetime capped at 20; 9,000 x 25 % / 5 = 450
    assert (vip.retention_rate_bps, vip.lifetime_capped) == (10_000, True)
    assert vip.lifetime_value_minor == 450 * 5 // 2 * retention.LIFETIME_PERIODS_MAX
    newcomer = rows["newcomer"]  # d: no S, so no churn observed; 125 x 2 x 20
    assert (newcomer.retention_rate_bps, newcomer.lifetime_capped) == (None, True)
    assert newcomer.lifetime_value_minor == 125 * 2 * retention.LIFETIME_PERIODS_MAX


async def test_abc_xyz_matrix(pool: asyncpg.Pool, network: dict[str, int]) -> None:
    async with pool.acquire() as conn:
        matrix = await retention.abc_xyz(conn, PERIOD, partner_id=None)
    assert matrix.months == 3
    cells = {(c.abc, c.xyz): (c.shoppers, c.spend_minor) for c in matrix.rows if c.shoppers}
    # net spend: c 6,000 (3,000, 0, 3,000: CV 71 %, Z), a 3,000 (flat: X), e 1,200 (400 each
    # month after the refund: X), d 1,000 (Feb only: Z); total 11,200. Ranked before each:
    # c 0, a 6,000 (< 80 %: A), e 9,000 (80.4 %: B), d 10,200 (91.1 %: B).
    assert cells == {
        ("A", "Z"): (1, 6_000),
        ("A", "X"): (1, 3_000),
        ("B", "X"): (1, 1_200),
        ("B", "Z"): (1, 1_000),
    }
    assert len(matrix.rows) == 9


async def test_a_partners_view_is_its_own_and_suppressed_below_k(
    pool: asyncpg.Pool, network: dict[str, int]
) -> None:
    async with pool.acquire() as conn:
        rates = await retention.retention_rates(conn, PERIOD, partner_id=network["p1"])
        values = await retention.lifetime_value(
            conn, PERIOD, partner_id=network["p1"], margin_bps=10_000
        )
        matrix = await retention.abc_xyz(conn, PERIOD, partner_id=network["p1"])
    assert rates.k_min == 10
    assert [r.partner_id for r in rates.rows] == [network["p1"]]  # no network row, no p0
    assert rates.rows[0].retention_rate_bps is None  # 1 and 3 shoppers: below k
    assert all(r.lifetime_value_minor is None and r.purchases is None for r in values.rows)
    assert all(c.shoppers is None for c in matrix.rows)
