"""A generated coalition network for personalization tests, written with set-based SQL.

Partners, shoppers (with cards, birth dates and consents), purchases in partner_transactions
(consistent with what the purchase path records: kind purchase, status completed, points from
the amount) and one basket line per purchase in its partner's category. The aggregate triggers
fire as for real purchases, so `fold_all` then brings the aggregates up to date.

Pseudo-random choices come from hashint8 of the shopper id and purchase number: the same call
gives the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from infra.db import Conn, Pool
from shoppers import aggregates

FOLD_RUNS_MAX = 1_000

INSERT_PARTNERS = """
INSERT INTO partners (slug, name, created_by)
SELECT $1 || '-' || g, 'Generated ' || g, 'generator' FROM generate_series(1, $2) AS g
RETURNING id
"""

# $1 count, $2 enrolling partner, $3 birth month (NULL: none), $4 month to avoid,
# $5 data sharing consent
INSERT_SHOPPERS = """
WITH made AS (
    INSERT INTO shoppers (enrolled_by_partner_id, birth_date)
    SELECT $2,
           CASE WHEN $3::int IS NOT NULL THEN make_date(1980 + g % 30, $3, 1 + g % 28)
                ELSE make_date(1980 + g % 30, 1 + ($4 + g % 11) % 12, 1 + g % 28) END
    FROM generate_series(1, $1) AS g
    RETURNING id
), cards AS (
    INSERT INTO shopper_cards (card_number, shopper_id, issued_by)
    SELECT '79' || lpad(id::text, 14, '0'), id, 'network' FROM made
), consents AS (
    INSERT INTO shopper_consents (shopper_id, data_sharing, marketing)
    SELECT id, $5, $5 FROM made
)
SELECT id FROM made ORDER BY id
"""

# $1 shoppers, $2 partners, $3 categories (one per partner), $4/$5 purchases per shopper
# min/max, $6/$7 days ago min/max, $8/$9 amount min/max, $10 now, $11 tag
INSERT_PURCHASES = """
WITH s AS (
    SELECT sid FROM unnest($1::bigint[]) AS u(sid)
), planned AS (
    SELECT s.sid, n, abs(hashint8(s.sid * 7919 + n * 104729 + length($11::text))) AS h
    FROM s
    CROSS JOIN LATERAL generate_series(
        1, $4::int + (abs(hashint8(s.sid)) % ($5::int - $4::int + 1))::int) AS n
), rows AS (
    SELECT sid, n,
           ($2::bigint[])[1 + (h % array_length($2::bigint[], 1))::int] AS partner_id,
           $8::bigint + (h / 7) % ($9::bigint - $8::bigint + 1) AS amount_minor,
           $10::timestamptz - make_interval(
               days => ($6::int + (h / 13) % ($7::int - $6::int + 1))::int,
               secs => ((h / 17) % 80000)::int) AS created_at
    FROM planned
), ins AS (
    INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
        card_number, points, amount_minor, pricing_version, idempotency_key, created_at)
    SELECT gen_random_uuid(), r.partner_id, 'gen-' || $11::text || '-' || r.sid || '-' || r.n,
           'purchase', 'completed', r.sid, c.card_number, r.amount_minor / 100, r.amount_minor,
           1, 'gen-' || $11::text || '-' || r.sid || '-' || r.n, r.created_at
    FROM rows r JOIN shopper_cards c ON c.shopper_id = r.sid
    RETURNING id, partner_id, shopper_id, amount_minor
)
INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, category,
                            amount_minor)
SELECT ins.id, 0, ins.shopper_id, ins.partner_id, cat.category, ins.amount_minor
FROM ins JOIN unnest($2::bigint[], $3::text[]) AS cat(partner_id, category) USING (partner_id)
"""

CATEGORIES = ("grocery", "fuel", "pharmacy", "fashion", "books", "travel")


@dataclass(frozen=True)
class GeneratedNetwork:
    now: datetime
    partner_ids: list[int]
    categories: list[str]
    ordinary: list[int]
    champions: list[int]  # consenting: must be in 'champions'
    champions_private: list[int]  # same behaviour, no data sharing consent
    churned: list[int]  # two purchases 200+ days ago: churn_90, churn_180, lost
    lapsed_loyal: list[int]  # many purchases, all 200+ days ago: at_risk
    newcomers: list[int]  # one purchase 5-10 days ago: new
    birthday: list[int]  # born in the month of `now`, no purchases


async def insert_partners(conn: Conn, prefix: str, count: int) -> list[int]:
    return [row["id"] for row in await conn.fetch(INSERT_PARTNERS, prefix, count)]


async def insert_shoppers(
    conn: Conn,
    count: int,
    *,
    enrolled_by: int,
    now: datetime,
    birthday_this_month: bool = False,
    data_sharing: bool = True,
) -> list[int]:
    month = now.month
    rows = await conn.fetch(
        INSERT_SHOPPERS,
        count,
        enrolled_by,
        month if birthday_this_month else None,
        month,
        data_sharing,
    )
    return [row["id"] for row in rows]


async def insert_purchases(
    conn: Conn,
    shoppers: Sequence[int],
    *,
    partners: Sequence[int],
    categories: Sequence[str],
    purchases: tuple[int, int],
    days_ago: tuple[int, int],
    amount_minor: tuple[int, int],
    now: datetime,
    tag: str,
) -> None:
    assert len(partners) == len(categories), (partners, categories)
    await conn.execute(
        INSERT_PURCHASES,
        list(shoppers),
        list(partners),
        list(categories),
        *purchases,
        *days_ago,
        *amount_minor,
        now,
        tag,
    )


async def fold_all(pool: Pool) -> int:
    """Fold the aggregate queue until it is empty; returns the deltas folded."""
    total = 0
    for _ in range(FOLD_RUNS_MAX):
        folded = await aggregates.refresh_aggregates(pool)
        total += folded
        if folded == 0:
            return total
    raise AssertionError("the aggregate queue did not drain")


async def generate(pool: Pool, *, now: datetime, ordinary: int = 3_000) -> GeneratedNetwork:
    """Several partners, thousands of shoppers, a year of purchases, planted behaviour."""
    async with pool.acquire() as conn, conn.transaction():
        partners = await insert_partners(conn, f"gen{now.timestamp():.0f}", 4)
        categories = list(CATEGORIES[: len(partners)])
        home = partners[0]

        async def shoppers(count: int, **options: bool) -> list[int]:
            return await insert_shoppers(conn, count, enrolled_by=home, now=now, **options)

        ordinary_ids = await shoppers(ordinary)
        champions = await shoppers(40)
        champions_private = await shoppers(10, data_sharing=False)
        churned = await shoppers(40)
        lapsed_loyal = await shoppers(40)
        newcomers = await shoppers(20)
        birthday = await shoppers(30, birthday_this_month=True)

        async def buy(ids: list[int], tag: str, **plan: tuple[int, int]) -> None:
            await insert_purchases(
                conn, ids, partners=partners, categories=categories, now=now, tag=tag, **plan
            )

        await buy(
            ordinary_ids, "o", purchases=(1, 12), days_ago=(0, 364), amount_minor=(500, 5_000)
        )
        await buy(
            champions + champions_private,
            "c",
            purchases=(50, 60),
            days_ago=(0, 30),
            amount_minor=(20_000, 40_000),
        )
        await buy(churned, "x", purchases=(1, 2), days_ago=(200, 360), amount_minor=(500, 3_000))
        await buy(
            lapsed_loyal, "l", purchases=(30, 40), days_ago=(200, 360), amount_minor=(2_000, 6_000)
        )
        await buy(newcomers, "n", purchases=(1, 1), days_ago=(5, 10), amount_minor=(500, 2_000))
    await fold_all(pool)
    return GeneratedNetwork(
        now=now,
        partner_ids=partners,
        categories=categories,
        ordinary=ordinary_ids,
        champions=champions,
        champions_private=champions_private,
        churned=churned,
        lapsed_loyal=lapsed_loyal,
        newcomers=newcomers,
        birthday=birthday,
    )


def month_start(day: date) -> date:
    return day.replace(day=1)
