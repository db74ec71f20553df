"""verify() reads accounts, wallets and lots in keyset pages: the report does not depend on the
page size, a problem on a shopper in a later page is found, and the network-wide sums (points
conserved, deferred revenue against lots, points debt against wallets) add up across pages.

Every test tampers (triggers off), compares the report at several page sizes, restores, and
checks the books are clean again, so the tests share one module database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from infra.db import Conn
from ledger import service as ledger
from ledger.verify import ROWS_PER_PAGE, Problem, verify

SHOPPERS = 7
FIRST_SHOPPER = 70_001
# 1: every account, wallet and lot row is its own page (a shopper's two accounts and its lots
# still land in one page); 2, 3: pages that end mid-way through the shoppers.
PAGE_SIZES = (1, 2, 3, ROWS_PER_PAGE)
ISSUE_PRICE_MICROS = 5_000


@pytest.fixture(scope="module")
async def shoppers(pool: asyncpg.Pool) -> list[int]:
    """Seven shoppers, each with two earns (two lots of 100) and a burn (150; the second shopper
    burns 50 and holds 30), the third in points debt (a refunded earn it had spent). All
    sealed, verify() clean."""
    expires_at = datetime.now(UTC) + timedelta(days=30)
    ids = list(range(FIRST_SHOPPER, FIRST_SHOPPER + SHOPPERS))
    async with pool.acquire() as conn:
        for shopper_id in ids:
            earned = [
                await ledger.earn(
                    conn,
                    idempotency_key=f"pages:earn:{shopper_id}:{n}",
                    shopper_id=shopper_id,
                    partner_id=5,
                    points=100,
                    issue_price_micros=ISSUE_PRICE_MICROS,
                    expires_at=expires_at,
                )
                for n in range(2)
            ]
            await ledger.burn(
                conn,
                idempotency_key=f"pages:burn:{shopper_id}",
                shopper_id=shopper_id,
                partner_id=6,
                points=50 if shopper_id == ids[1] else 150,
                redemption_price_micros=4_000,
            )
            if shopper_id == ids[1]:
                await ledger.hold(
                    conn,
                    idempotency_key=f"pages:hold:{shopper_id}",
                    shopper_id=shopper_id,
                    partner_id=6,
                    points=30,
                    expires_at=expires_at,
                )
            if shopper_id == ids[2]:
                await ledger.refund_earn(
                    conn,
                    idempotency_key=f"pages:refund:{shopper_id}",
                    original_entry_id=earned[0].entry_id,
                    points=100,
                )
        while await ledger.seal_blocks(conn):
            pass
        while await ledger.fold_deltas(conn):  # rollup balance rows to tamper with
            pass
    return ids


@pytest.fixture
async def conn(pool: asyncpg.Pool, shoppers: list[int]) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        yield connection  # type: ignore[misc]


async def as_replica(conn: Conn, statement: str, *args: object) -> None:
    """Run a statement with every trigger off, as a superuser could."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(statement, *args)


async def same_at_every_page_size(conn: Conn) -> list[Problem]:
    """The report at the default page size, after checking every other size gives the same."""
    reports = {size: await verify(conn, rows_per_page=size) for size in PAGE_SIZES}
    for size in PAGE_SIZES:
        assert reports[size] == reports[ROWS_PER_PAGE], size
    return reports[ROWS_PER_PAGE]


async def test_clean_books_at_every_page_size(conn: Conn, shoppers: list[int]) -> None:
    """One shopper per page still conserves points, deferred revenue and debt network-wide."""
    debt_points = await conn.fetchval(
        "SELECT debt_points FROM ledger.wallet WHERE shopper_id = $1", shoppers[2]
    )
    held = await conn.fetchval("SELECT held FROM ledger.wallet WHERE shopper_id = $1", shoppers[1])
    assert (debt_points, held) == (50, 30)  # the debt and the hold the sums must carry
    assert await same_at_every_page_size(conn) == []


async def test_wallet_of_the_last_shopper_is_caught_in_a_later_page(
    conn: Conn, shoppers: list[int]
) -> None:
    last = shoppers[-1]
    await as_replica(
        conn, "UPDATE ledger.wallet SET available = available + 7 WHERE shopper_id = $1", last
    )
    problems = await same_at_every_page_size(conn)
    assert [(p.invariant, p.check, p.account, p.expected, p.actual) for p in problems] == [
        (2, "maintained_balance", f"shopper:{last}:wallet", 50, 57)
    ]
    await as_replica(
        conn, "UPDATE ledger.wallet SET available = available - 7 WHERE shopper_id = $1", last
    )
    assert await same_at_every_page_size(conn) == []


async def test_lot_of_a_later_shopper_breaks_the_cross_page_sums(
    conn: Conn, shoppers: list[int]
) -> None:
    """A lot's remainder edited on the sixth shopper: its own check, and deferred revenue against
    the lots of every page, which is off by exactly that lot's value."""
    target = shoppers[5]
    lot_id = await conn.fetchval(
        "SELECT min(lot_id) FROM ledger.lot WHERE shopper_id = $1 AND remaining > 0", target
    )
    await as_replica(
        conn,
        "UPDATE ledger.lot SET remaining = remaining + 3 WHERE shopper_id = $1 AND lot_id = $2",
        target,
        lot_id,
    )
    problems = await same_at_every_page_size(conn)
    assert [(p.check, p.shopper_id) for p in problems] == [
        ("lots_cover_wallet", target),
        ("deferred_revenue_matches_lots", None),
    ]
    deferred = problems[1]
    assert isinstance(deferred.expected, int)
    assert isinstance(deferred.actual, int)
    assert deferred.actual - deferred.expected == 3 * ISSUE_PRICE_MICROS
    await as_replica(
        conn,
        "UPDATE ledger.lot SET remaining = remaining - 3 WHERE shopper_id = $1 AND lot_id = $2",
        target,
        lot_id,
    )
    assert await same_at_every_page_size(conn) == []


async def test_debt_recorded_on_a_wallet_is_summed_across_pages(
    conn: Conn, shoppers: list[int]
) -> None:
    """points_debt against the debt of every wallet: only the network-wide sum can see this."""
    debtor = shoppers[2]
    await as_replica(
        conn,
        "UPDATE ledger.wallet SET debt_value_micros = debt_value_micros + 11 WHERE shopper_id = $1",
        debtor,
    )
    problems = await same_at_every_page_size(conn)
    assert len(problems) == 1
    assert problems[0].check == "points_debt_matches_wallets"
    assert isinstance(problems[0].expected, int)
    assert problems[0].expected - 11 == problems[0].actual
    await as_replica(
        conn,
        "UPDATE ledger.wallet SET debt_value_micros = debt_value_micros - 11 WHERE shopper_id = $1",
        debtor,
    )
    assert await same_at_every_page_size(conn) == []


async def test_held_points_split_from_their_lots_across_a_page_boundary(
    conn: Conn, shoppers: list[int]
) -> None:
    """The holding shopper's wallet and held accounts and its lots are more rows than a page of
    1 or 2; moving its reservation onto its other lot must still be seen as per lot, and its
    held account must still be checked against its lots (the same page), not against zero."""
    holder = shoppers[1]
    lots = await conn.fetch(
        "SELECT remaining, reserved FROM ledger.lot WHERE shopper_id = $1 ORDER BY lot_id", holder
    )
    assert [(r["remaining"], r["reserved"]) for r in lots] == [(50, 30), (100, 0)]
    await as_replica(
        conn,
        "UPDATE ledger.lot SET reserved = 30 - reserved WHERE shopper_id = $1",
        holder,
    )
    problems = await same_at_every_page_size(conn)
    # The shopper's sums still match (30 reserved, 30 held); only the per-lot check sees it.
    assert {(p.check, p.shopper_id) for p in problems} == {("lot_reservations", holder)}
    await as_replica(
        conn, "UPDATE ledger.lot SET reserved = 30 - reserved WHERE shopper_id = $1", holder
    )
    assert await same_at_every_page_size(conn) == []


async def test_maintained_balances_of_two_pages_listed_in_account_order(
    conn: Conn, shoppers: list[int]
) -> None:
    """Shopper accounts and the network's come from different pages; the report keeps the
    account order of the whole book."""
    first, last = shoppers[0], shoppers[-1]
    for shopper_id in (last, first):
        await as_replica(
            conn, "UPDATE ledger.wallet SET held = held + 1 WHERE shopper_id = $1", shopper_id
        )
    await as_replica(conn, "UPDATE ledger.account_balance SET balance = balance + 1")
    problems = await same_at_every_page_size(conn)
    maintained = [p for p in problems if p.check == "maintained_balance"]
    ids = await conn.fetch(
        "SELECT name FROM ledger.account WHERE name = ANY($1::text[]) OR account_id IN "
        "(SELECT account_id FROM ledger.account_balance) ORDER BY account_id",
        [f"shopper:{first}:held", f"shopper:{last}:held"],
    )
    names = [r["name"] for r in ids]
    assert [p.account for p in maintained] == names
    # The network's and partners' accounts sit between the two shoppers' (opened by the first
    # earn), so the two streams of pages really interleave.
    assert names[0] == f"shopper:{first}:held"
    assert names[-1] == f"shopper:{last}:held"
    assert len(names) >= 3
    await as_replica(conn, "UPDATE ledger.account_balance SET balance = balance - 1")
    for shopper_id in (first, last):
        await as_replica(
            conn, "UPDATE ledger.wallet SET held = held - 1 WHERE shopper_id = $1", shopper_id
        )
    assert await same_at_every_page_size(conn) == []
