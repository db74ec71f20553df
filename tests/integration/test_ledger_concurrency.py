"""The ledger under concurrency on real PostgreSQL: no overdraft, exactly-once keys, and no
lock waits on network or partner rows however many shoppers earn at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ledger import service as ledger
from ledger.errors import InsufficientPoints, LedgerError, ShopperMerged
from ledger.verify import verify

PARTNER = 31
IP = 5_000
RP = 4_000
_ids = itertools.count(50_000)

# Waiting locks seen by pg_locks in this database, with what the waiter was running.
# Relation extension locks ('extend': a backend adding a page to a table or index file) are
# left out: every insert-heavy table has them, they are held for microseconds, and they are
# not row locks. A waiter on a row shows as a 'tuple' or 'transactionid' lock.
WAITING_LOCKS = """
SELECT l.locktype, l.relation::regclass::text AS relation, l.mode, a.query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database() AND l.locktype <> 'extend'
"""


@pytest.fixture(scope="module")
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """More connections than the shared pool, so 50 calls really run at the same time."""
    created = await asyncpg.create_pool(database_url, min_size=50, max_size=50)
    assert created is not None
    yield created
    await asyncio.wait_for(created.close(), timeout=10)


class LockSampler:
    """Polls pg_locks from its own connection while a workload runs."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.samples = 0
        self.waits: list[asyncpg.Record] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LockSampler]:
        conn = await asyncpg.connect(self.dsn)
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                self.waits += await conn.fetch(WAITING_LOCKS)
                self.samples += 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(sample())
        try:
            yield self
        finally:
            stop.set()
            await task
            await conn.close()


async def funded_shopper(pool: asyncpg.Pool, points: int, lots: int = 1) -> int:
    shopper_id = next(_ids)
    async with pool.acquire() as conn:
        for n in range(lots):
            await ledger.earn(
                conn,
                idempotency_key=f"fund:{shopper_id}:{n}",
                shopper_id=shopper_id,
                partner_id=PARTNER,
                points=points // lots,
                issue_price_micros=IP + n,
                expires_at=datetime.now(UTC) + timedelta(days=10 + n),
            )
    return shopper_id


async def test_200_parallel_burns_never_overdraw(wide_pool: asyncpg.Pool) -> None:
    shopper_id = await funded_shopper(wide_pool, 1_000, lots=4)

    async def burn(n: int) -> ledger.EntryResult:
        async with wide_pool.acquire() as conn:
            return await ledger.burn(
                conn,
                idempotency_key=f"burn:{shopper_id}:{n}",
                shopper_id=shopper_id,
                partner_id=PARTNER,
                points=7,
                redemption_price_micros=RP,
            )

    results = await asyncio.gather(*(burn(n) for n in range(200)), return_exceptions=True)
    successes = [r for r in results if isinstance(r, ledger.EntryResult)]
    refusals = [r for r in results if isinstance(r, InsufficientPoints)]
    assert len(successes) + len(refusals) == 200, [r for r in results if isinstance(r, Exception)]
    assert len(successes) == 1_000 // 7
    assert sum(r.points or 0 for r in successes) == 7 * (1_000 // 7)
    # Every success saw the wallet after the previous one: balances form a strict countdown.
    assert sorted(r.balance_after or 0 for r in successes) == list(range(6, 1_000, 7))
    async with wide_pool.acquire() as conn:
        assert await ledger.balance(conn, ledger.wallet_account(shopper_id)) == 6
        assert await verify(conn) == []


async def test_same_key_fired_50_times_in_parallel_has_one_effect(
    wide_pool: asyncpg.Pool,
) -> None:
    shopper_id = next(_ids)
    expires_at = datetime.now(UTC) + timedelta(days=30)

    async def earn() -> ledger.EntryResult:
        async with wide_pool.acquire() as conn:
            return await ledger.earn(
                conn,
                idempotency_key=f"same:{shopper_id}",
                shopper_id=shopper_id,
                partner_id=PARTNER,
                points=10,
                issue_price_micros=IP,
                expires_at=expires_at,
            )

    results = await asyncio.gather(*(earn() for _ in range(50)))
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    async with wide_pool.acquire() as conn:
        assert await ledger.balance(conn, ledger.wallet_account(shopper_id)) == 10
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger.entry WHERE idempotency_key = $1", f"same:{shopper_id}"
        )
        assert entries == 1

    # The same for a burn, where a second effect would also show as a lower balance.
    async def burn() -> ledger.EntryResult:
        async with wide_pool.acquire() as conn:
            return await ledger.burn(
                conn,
                idempotency_key=f"same-burn:{shopper_id}",
                shopper_id=shopper_id,
                partner_id=PARTNER,
                points=3,
                redemption_price_micros=RP,
            )

    burns = await asyncio.gather(*(burn() for _ in range(50)))
    assert {r.balance_after for r in burns} == {7}
    async with wide_pool.acquire() as conn:
        assert await ledger.balance(conn, ledger.wallet_account(shopper_id)) == 7
        assert await verify(conn) == []


async def test_1000_concurrent_earns_for_one_partner_never_wait_on_a_lock(
    wide_pool: asyncpg.Pool, database_url: str
) -> None:
    partner_id = 777
    shoppers = [next(_ids) for _ in range(1_000)]
    expires_at = datetime.now(UTC) + timedelta(days=30)

    async def earn(shopper_id: int) -> ledger.EntryResult:
        async with wide_pool.acquire() as conn:
            return await ledger.earn(
                conn,
                idempotency_key=f"many:{shopper_id}",
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=10,
                issue_price_micros=IP,
                expires_at=expires_at,
            )

    # Warm up: create the partner's and the network's accounts once, as in production.
    await earn(shoppers[0])
    async with LockSampler(database_url).running() as sampler:
        results = await asyncio.gather(*(earn(s) for s in shoppers[1:]))
    assert len(results) == 999
    assert sampler.samples >= 10, sampler.samples
    # Every earn posts to network:points_issued, network:deferred_revenue and the partner's
    # settlement account, yet no transaction ever waited for a lock held by another.
    assert sampler.waits == []
    async with wide_pool.acquire() as conn:
        settlement = ledger.settlement_account(partner_id)
        assert await ledger.balance(conn, settlement) == 1_000 * 10 * IP
        while await ledger.fold_deltas(conn):
            pass
        assert await ledger.balance(conn, settlement) == 1_000 * 10 * IP
        assert await verify(conn) == []


async def test_lock_sampler_sees_a_wait_on_a_busy_wallet(
    wide_pool: asyncpg.Pool, database_url: str
) -> None:
    """The control for the test above: the sampler does see a wait when there is one."""
    shopper_id = await funded_shopper(wide_pool, 10)
    async with LockSampler(database_url).running() as sampler, wide_pool.acquire() as holder:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM ledger.wallet WHERE shopper_id = $1 FOR UPDATE", shopper_id
            )
            waiting = asyncio.create_task(funded_shopper_burn(wide_pool, shopper_id))
            for _ in range(500):
                if sampler.waits:
                    break
                await asyncio.sleep(0.01)
        await waiting
    assert sampler.waits, "the sampler never saw the blocked burn"


async def funded_shopper_burn(pool: asyncpg.Pool, shopper_id: int) -> None:
    async with pool.acquire() as conn:
        await ledger.burn(
            conn,
            idempotency_key=f"blocked:{shopper_id}",
            shopper_id=shopper_id,
            partner_id=PARTNER,
            points=1,
            redemption_price_micros=RP,
        )


async def test_crossed_merges_do_not_deadlock(wide_pool: asyncpg.Pool) -> None:
    a = await funded_shopper(wide_pool, 10)
    b = await funded_shopper(wide_pool, 20)

    async def merge(source: int, target: int) -> ledger.EntryResult:
        async with wide_pool.acquire() as conn:
            return await ledger.transfer_all(
                conn,
                idempotency_key=f"merge:{source}:{target}",
                from_shopper_id=source,
                to_shopper_id=target,
            )

    results = await asyncio.gather(merge(a, b), merge(b, a), return_exceptions=True)
    assert sum(isinstance(r, ledger.EntryResult) for r in results) == 1
    assert sum(isinstance(r, ShopperMerged) for r in results) == 1
    assert not [
        r
        for r in results
        if isinstance(r, Exception | LedgerError) and not isinstance(r, ShopperMerged)
    ]
    async with wide_pool.acquire() as conn:
        total = await ledger.balance(conn, ledger.wallet_account(a)) + await ledger.balance(
            conn, ledger.wallet_account(b)
        )
        assert total == 30
        assert await verify(conn) == []


async def test_an_account_used_for_the_first_time_by_many_transactions_at_once_is_made_once(
    wide_pool: asyncpg.Pool,
) -> None:
    # Every transaction creates the account on first use; the losers of the race must find the
    # winner's row, never fail on one of the table's two unique indexes (0086).
    async def first_use(owner_id: int) -> int:
        async with wide_pool.acquire() as conn, conn.transaction():
            account_id = await conn.fetchval(
                "SELECT account_id FROM ledger._account('shopper', $1, 'held')", owner_id
            )
            await asyncio.sleep(0.01)  # hold the row uncommitted while the others insert
            assert isinstance(account_id, int)
            return account_id

    for owner_id in range(9_000_000, 9_000_030):
        made = await asyncio.gather(*(first_use(owner_id) for _ in range(16)))
        assert len(set(made)) == 1, made
