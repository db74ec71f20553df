"""Batch items written set-based (`partners.purchase_many`, migration 0093) leave the same books
as the same batch posted item by item through the single purchase path.

Twin databases, cloned from the migrated template, get the same history; then the same batch
runs with `set_based=False` (the reference) on one and `set_based=True` on the other. Answers
and every table a purchase writes are compared, with generated ids replaced by what they name
(an entry by its idempotency key, an account by its name, a transaction by its partner_ref)
and clock readings left out (each side reads its own clock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from contracts.partners import Line, PurchaseBatchRequest, PurchaseBatchResult, PurchaseRequest
from infra.db import Conn
from ledger import verify
from partners import batch, operations, purchase_many
from partners._common import ledger_key
from shoppers import luhn
from shoppers import service as shoppers
from tests.support import program
from tests.support.ledger_twins import twin_databases

# Rows a purchase writes, ids replaced by what they name, clock readings left out.
DUMPS = {
    "account": "SELECT name, owner_kind, owner_id, purpose, asset, floor_rule, rollup"
    " FROM ledger.account ORDER BY name",
    "entry": "SELECT kind, idempotency_key, shopper_id, partner_id, args - 'expires_at', metadata"
    " FROM ledger.entry ORDER BY idempotency_key",
    "posting": "SELECT e.idempotency_key, a.name, p.asset, p.amount FROM ledger.posting p"
    " JOIN ledger.entry e USING (entry_id) JOIN ledger.account a USING (account_id)"
    " ORDER BY e.idempotency_key, p.posting_id",
    "balance_delta": "SELECT e.idempotency_key, a.name, d.amount FROM ledger.balance_delta d"
    " JOIN ledger.entry e USING (entry_id) JOIN ledger.account a USING (account_id)"
    " ORDER BY e.idempotency_key, d.delta_id",
    "operation": "SELECT o.idempotency_key, o.operation, o.args - 'expires_at',"
    " o.result - 'entry_id' - 'lot_id', o.entry_id = e.entry_id,"
    " (o.result ->> 'entry_id')::bigint = e.entry_id,"
    " (o.result ->> 'lot_id')::bigint IS NOT DISTINCT FROM"
    " (SELECT l.lot_id FROM ledger.lot l WHERE l.entry_id = e.entry_id)"
    " FROM ledger.operation o LEFT JOIN ledger.entry e USING (idempotency_key)"
    " ORDER BY o.idempotency_key",
    "wallet": "SELECT w.shopper_id, a.name, h.name, w.available, w.held, w.debt_points,"
    " w.debt_value_micros, w.merged_into_shopper_id FROM ledger.wallet w"
    " JOIN ledger.account a ON a.account_id = w.wallet_account_id"
    " JOIN ledger.account h ON h.account_id = w.held_account_id ORDER BY w.shopper_id",
    "lot": "SELECT e.idempotency_key, l.shopper_id, l.root_lot_id = l.lot_id, l.partner_id,"
    " l.issue_price_micros, l.origin, l.points, l.remaining, l.reserved,"
    " to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " = e.args ->> 'expires_at'"
    " FROM ledger.lot l JOIN ledger.entry e USING (entry_id) ORDER BY e.idempotency_key",
    "seal_queue": "SELECT e.idempotency_key FROM ledger.seal_queue s JOIN ledger.entry e"
    " USING (entry_id) ORDER BY 1",
    "transactions": "SELECT t.partner_ref, t.kind, t.status, t.shopper_id, t.card_number,"
    " t.points, t.amount_minor, t.value_minor, t.pricing_version, e.idempotency_key,"
    " t.idempotency_key, t.network_points, t.network_entry_id IS NULL"
    " FROM partner_transactions t LEFT JOIN ledger.entry e ON e.entry_id = t.ledger_entry_id"
    " ORDER BY t.partner_id, t.partner_ref",
    "lines": "SELECT t.partner_ref, l.line_no, l.shopper_id, l.partner_id, l.category,"
    " l.amount_minor FROM purchase_lines l JOIN partner_transactions t ON t.id = l.transaction_id"
    " ORDER BY t.partner_ref, l.line_no",
    "breakdown": "SELECT t.partner_ref, b.item_no, b.shopper_id, b.kind, b.points, b.campaign_id,"
    " b.paid_by FROM purchase_breakdown b JOIN partner_transactions t ON t.id = b.transaction_id"
    " ORDER BY t.partner_ref, b.item_no",
    "tiers": "SELECT shopper_id, tier FROM shopper_tiers ORDER BY shopper_id",
    # A shopper's events in their order (across shoppers the order is not a promise).
    "events": "SELECT event_type, partner_id, shopper_id,"
    " payload - 'transaction_id' - 'changed_at' FROM event_outbox ORDER BY shopper_id, event_id",
    "aggregate_delta": "SELECT shopper_id, partner_id, category, spend_minor, visits,"
    " points_earned, points_burned FROM aggregate_delta"
    " ORDER BY shopper_id, partner_id, category NULLS FIRST, spend_minor, points_earned",
    "campaigns": "SELECT id, awarded_points FROM campaigns ORDER BY id",
}


async def dump(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    async with pool.acquire() as conn:
        return {name: [tuple(row) for row in await conn.fetch(q)] for name, q in DUMPS.items()}


def answers_of(result: PurchaseBatchResult) -> list[tuple[Any, ...]]:
    """A batch's answers, comparable across databases (a transaction id only as present)."""
    return [
        (
            r.index,
            r.partner_ref,
            r.status,
            r.transaction_id is not None,
            r.points_earned,
            r.breakdown,
            r.error,
        )
        for r in result.results
    ]


def _purchase(card: str, ref: str, amount_minor: int, **fields: Any) -> PurchaseRequest:
    fields.setdefault("currency", "EUR")
    return PurchaseRequest(partner_ref=ref, card_number=card, amount_minor=amount_minor, **fields)


async def _history(pool: asyncpg.Pool) -> tuple[int, list[str]]:
    """The same partner, shoppers, purchases and campaign in both databases."""
    partner_id = await program.partner(pool, "many")  # 1 point per 1.00
    cards = []
    for number in range(14):  # fixed numbers: the batch posts in card order
        payload = f"7{(number * 7_919) % 10_000:04d}{number:010d}"
        async with pool.acquire() as conn, conn.transaction():
            holder = await shoppers.enroll(
                conn, partner_id=partner_id, card_number=payload + luhn.check_digit(payload)
            )
        cards.append(holder.card_number)
    history = [(card, 2_000) for card in cards[:6]]  # wallets for some, none for the others
    history.append((cards[5], 45_000))  # 47,000 spent: silver is 50,000
    history.append((cards[0], 1_000))
    for number, (card, amount_minor) in enumerate(history):
        ref = "before" if number == len(history) - 1 else f"h-{number}"
        async with pool.acquire() as conn, conn.transaction():
            await operations.purchase(
                conn, partner_id, _purchase(card, ref, amount_minor), idempotency_key=ref
            )
    await program.campaign(pool, partner_id, category="books", multiplier_bps=20_000)
    await pool.execute("UPDATE campaigns SET name = 'books x2'")  # the helper numbers names
    return partner_id, cards


def _batch(cards: list[str]) -> PurchaseBatchRequest:
    books = [Line(sku="b", category="books", amount_minor=500)]
    food = [Line(sku="f", category="food", amount_minor=300), Line(sku="g", amount_minor=200)]
    items = [
        _purchase(cards[1], "r-01", 1_234),  # plain, wallet exists
        _purchase(cards[7], "r-02", 5_000, lines=food),  # plain, first use of the shopper
        _purchase(cards[2], "r-03", 2_000, lines=books),  # campaign bonus: one by one
        _purchase(cards[3], "r-04", 1_000),  # the same shopper twice: two rounds
        _purchase(cards[3], "r-05", 3_000),
        _purchase(cards[4], "r-31", 1_500),  # plain, then a campaign bonus: the rest of
        _purchase(cards[4], "r-32", 1_000, lines=books),  # this shopper's items go one by one
        _purchase(cards[4], "r-33", 2_500),
        _purchase(cards[5], "r-06", 60_000),  # plain, reaches silver: tier.changed first
        _purchase("0000000000000", "r-07", 1_000),  # unknown card: rejected
        _purchase(cards[8], "r-08", 50),  # no points at all: one by one, recorded with 0
        _purchase(cards[0], "before", 1_000),  # recorded before: duplicate
        _purchase(cards[9], "r-01", 1_000),  # the file's second use of a ref: conflict
        _purchase(cards[10], "r-11", 999_999),  # plain, first use, straight to gold
        _purchase(cards[11], "r-12", 700, currency="USD"),  # refused by its read
        *[_purchase(cards[12 + i % 2], f"r-2{i}", 100 + i) for i in range(2)],  # plain
    ]
    return PurchaseBatchRequest(items=items)


@pytest.fixture(scope="module")
async def twins(server_dsn: str, template_dsn: str) -> AsyncIterator[tuple[str, str]]:
    async with twin_databases(server_dsn) as dsns:
        yield dsns


async def _run(dsn: str, *, set_based: bool) -> tuple[list[Any], dict[str, Any]]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        partner_id, cards = await _history(pool)
        async with pool.acquire() as conn, conn.transaction():
            result = await batch.purchase_batch(
                conn, partner_id, _batch(cards), idempotency_key="file-1", set_based=set_based
            )
        return answers_of(result), await dump(pool)
    finally:
        await pool.close()


async def test_set_based_items_leave_the_books_the_single_path_leaves(
    twins: tuple[str, str],
) -> None:
    expected_answers, expected = await _run(twins[0], set_based=False)
    answers, actual = await _run(twins[1], set_based=True)

    assert answers == expected_answers
    for table, rows in expected.items():
        assert actual[table] == rows, table
    statuses = [status for _, _, status, *_ in answers]
    assert statuses.count("created") == 13, statuses
    assert statuses.count("rejected") == 3, statuses
    # The scenario reaches what it is meant to: an upgrade inside the set, lines, a first use.
    tiers = [tier for _, tier in actual["tiers"]]
    assert "gold" in tiers, tiers
    assert "silver" in tiers, tiers
    assert any(row[0] == "r-02" for row in actual["lines"])
    events = [row[0] for row in actual["events"]]
    assert events.count("tier.changed") == 2, events


async def test_the_set_based_half_writes_the_plain_items(twins: tuple[str, str]) -> None:
    """The comparison above would pass with everything posted one by one: check that the plain
    items did go through partner_purchase_write_many (their entries share one transaction
    and were made together, before the one-by-one items' entries)."""
    conn = await asyncpg.connect(twins[1])
    try:
        rows = await conn.fetch(
            "SELECT metadata ->> 'partner_ref' AS ref FROM ledger.entry"
            " WHERE txid = (SELECT txid FROM ledger.entry"
            "               WHERE metadata ->> 'partner_ref' = 'r-01' AND kind = 'earn')"
            " ORDER BY entry_id"
        )
        refs = [row["ref"] for row in rows]
        first_round = {"r-01", "r-02", "r-04", "r-06", "r-11", "r-20", "r-21", "r-31"}
        assert set(refs[: len(first_round)]) == first_round, refs
        assert refs[len(first_round)] == "r-05", refs  # the second round
        assert refs.index("r-32") < refs.index("r-33"), refs  # one by one, in order
        payloads = await conn.fetch(
            "SELECT payload FROM event_outbox WHERE event_type = 'purchase.recorded'"
        )
        assert all("partner_ref" in json.loads(row["payload"]) for row in payloads)
    finally:
        await conn.close()


async def test_a_set_based_write_that_deadlocks_posts_its_items_one_by_one(
    pool: asyncpg.Pool,
) -> None:
    """Another transaction holds the second wallet and then wants the first, which the batch's
    set-based write took: the write is the deadlock's victim, rolls back to its savepoint and
    the items are posted one by one; every item is created once."""
    partner_id = await program.partner(pool, "deadlock")
    holders = [await program.shopper(pool, partner_id) for _ in range(2)]
    for holder in holders:  # wallets exist, so the write locks both
        await program.buy(pool, partner_id, holder.card_number, 1_000)
    first, second = sorted(holders, key=lambda holder: holder.shopper_id)
    other = await pool.acquire()
    try:
        await other.execute("BEGIN")
        # The batch must be the one to detect the cycle (and so be its victim): on a loaded
        # machine `other`'s own check could otherwise run first and make it the victim.
        await other.execute("SET LOCAL deadlock_timeout = '30s'")
        await other.execute(LOCK_WALLET, second.shopper_id)
        batch_pid: list[int] = []

        async def post() -> Any:
            async with pool.acquire() as conn, conn.transaction():
                batch_pid.append(conn.get_server_pid())
                return await batch.purchase_batch(
                    conn,
                    partner_id,
                    PurchaseBatchRequest(
                        items=[
                            _purchase(h.card_number, f"dl-{n}", 2_000)
                            for n, h in enumerate(holders)
                        ]
                    ),
                    idempotency_key="dl-file",
                    set_based=True,
                )

        posting = asyncio.create_task(post())
        await _until_waiting_on_a_lock(other, batch_pid)
        # Now the batch holds the first wallet and waits for the second: close the cycle.
        await other.execute(LOCK_WALLET, first.shopper_id)  # returns once the victim rolled back
        await other.execute("COMMIT")
        result = await asyncio.wait_for(posting, timeout=10)
    finally:
        await pool.release(other)
    assert [r.status for r in result.results] == ["created", "created"]
    wallets = await pool.fetch(
        "SELECT available FROM ledger.wallet WHERE shopper_id = ANY($1::bigint[])",
        [h.shopper_id for h in holders],
    )
    assert sorted(w["available"] for w in wallets) == [30, 30]  # 10 before, 20 now, once
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []


async def test_a_partner_ref_recorded_since_the_read_writes_nothing_and_keeps_the_locks(
    pool: asyncpg.Pool,
) -> None:
    """Another transaction records the same partner_ref after the set-based side read it as
    new: the write refuses (CLB01, answered as a row by 0096's subtransaction), leaves nothing
    of its own, takes the wallet locks again and answers no purchase, for the single path.
    The other purchase earns nothing (0.50 at 1 point per 1.00), so it claims no ledger key
    the write would see first."""
    partner_id = await program.partner(pool, "recorded")
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, partner_id, holder.card_number, 1_000)  # the wallet exists
    request = _purchase(holder.card_number, "recorded-since", 2_000)
    other = await pool.acquire()
    try:
        await other.execute("BEGIN")
        small = _purchase(holder.card_number, "recorded-since", 50)
        await operations.purchase(other, partner_id, small, idempotency_key="other-call")
        writer_pid: list[int] = []

        async def post() -> tuple[dict[int, Any], bool]:
            async with pool.acquire() as conn, conn.transaction():
                writer_pid.append(conn.get_server_pid())
                written = await purchase_many.post_plain(
                    conn, [purchase_many.Candidate(0, partner_id, request, "this-call")]
                )
                return written, await _locked_elsewhere(pool, holder.shopper_id)

        posting = asyncio.create_task(post())
        await _until_waiting_on_a_lock(other, writer_pid)  # read done, waits for the ref
        await other.execute("COMMIT")
        written, still_locked = await asyncio.wait_for(posting, timeout=10)
    finally:
        await pool.release(other)
    assert written == {}
    assert still_locked
    rows = await pool.fetch(
        "SELECT idempotency_key FROM partner_transactions WHERE partner_ref = $1",
        "recorded-since",
    )
    assert [row["idempotency_key"] for row in rows] == ["other-call"]
    assert await program.balance(pool, holder.card_number) == 10  # the first purchase's only
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []


async def _locked_elsewhere(pool: asyncpg.Pool, shopper_id: int) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute(LOCK_WALLET + " NOWAIT", shopper_id)
        except asyncpg.LockNotAvailableError:
            return True
        return False


async def _until_waiting_on_a_lock(conn: Conn, pids: list[int]) -> None:
    for _ in range(200):  # 10 s
        if pids and await conn.fetchval(WAITING_ON_A_LOCK, pids[0]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the batch never waited for the second wallet")


LOCK_WALLET = "SELECT 1 FROM ledger.wallet WHERE shopper_id = $1 FOR UPDATE"
WAITING_ON_A_LOCK = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"


async def test_a_ledger_key_claimed_elsewhere_waits_and_is_posted_once(
    pool: asyncpg.Pool,
) -> None:
    """Another transaction has claimed the ledger key of the write's purchase (the same
    partner_ref, another shopper) and not committed: the write waits on the claim (0194 stores
    the claim with its result, still as its first write), then leaves the purchase out for the
    single path. The key is posted once, by the other transaction, whose stored result stays."""
    partner_id = await program.partner(pool, "claimed")
    holders = [await program.shopper(pool, partner_id) for _ in range(2)]
    for holder in holders:  # wallets exist, locked by the write before its claims
        await program.buy(pool, partner_id, holder.card_number, 1_000)
    request = _purchase(holders[1].card_number, "claimed-first", 2_000)
    other = await pool.acquire()
    try:
        await other.execute("BEGIN")
        first = _purchase(holders[0].card_number, "claimed-first", 3_000)
        await operations.purchase(other, partner_id, first, idempotency_key="other-call")
        writer_pid: list[int] = []

        async def post() -> dict[int, Any]:
            async with pool.acquire() as conn, conn.transaction():
                writer_pid.append(conn.get_server_pid())
                return await purchase_many.post_plain(
                    conn, [purchase_many.Candidate(0, partner_id, request, "this-call")]
                )

        posting = asyncio.create_task(post())
        await _until_waiting_on_a_lock(other, writer_pid)  # at the claim of the same key
        await other.execute("COMMIT")
        written = await asyncio.wait_for(posting, timeout=10)
    finally:
        await pool.release(other)
    assert written == {}
    operation = await pool.fetchrow(
        "SELECT o.result, o.entry_id, (SELECT count(*) FROM ledger.entry e"
        " WHERE e.idempotency_key = o.idempotency_key) AS entries"
        " FROM ledger.operation o WHERE o.idempotency_key = $1",
        ledger_key(partner_id, "claimed-first"),
    )
    assert operation is not None
    assert operation["entries"] == 1
    assert json.loads(operation["result"])["shopper_id"] == holders[0].shopper_id
    assert json.loads(operation["result"])["entry_id"] == operation["entry_id"]
    assert await program.balance(pool, holders[0].card_number) == 40  # 10 before, 30 now
    assert await program.balance(pool, holders[1].card_number) == 10  # the write posted none
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []
