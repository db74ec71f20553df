"""The statement-level triggers of migration 0190 queue and refuse exactly what the per-row
triggers they replace did.

Each scenario runs the same multi-row statements in two databases: `old`, migrated up to 0182
(the per-row triggers), and `new`, with every migration. It reads what the triggers wrote (the
aggregate, fan-out, mail and challenge queues, in queue order) or how the statement was refused
(SQLSTATE, message, detail), inside the transaction, then rolls it back, and the two must agree.
The partners and shoppers are made by the project's own functions, in the same order in both
databases, so ids match; the rows under test are written by hand, many per statement, which is
what the statement triggers change (the project's writers are covered by their own tests).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.partners import EnrollRequest, PartnerCreate
from infra import migrations
from ledger import service as ledger
from partners import onboarding, operations
from tests.support.databases import create_database, drop_database

LAST_ROW_TRIGGERS_MIGRATION = 182
SHOPPERS = 3
CARDS = ["4000000000000002", "4000000000000010", "4000000000000028"]
EARN_PARTNER_ID = 1

Scenario = Callable[[asyncpg.Connection], Awaitable[None]]

QUEUES = {
    "aggregate_delta": "SELECT shopper_id, partner_id, category, occurred_at = now(), spend_minor,"
    " visits, points_earned, points_burned FROM aggregate_delta ORDER BY delta_id",
    "fanout_queue": "SELECT o.event_type, o.partner_id, o.shopper_id FROM webhooks.fanout_queue q"
    " JOIN event_outbox o USING (event_id) ORDER BY q.event_id",
    "mail_queue": "SELECT o.event_type, o.partner_id, o.shopper_id FROM mail.queue q"
    " JOIN event_outbox o USING (event_id) ORDER BY q.event_id",
    "challenge_queue": "SELECT o.event_type, q.shopper_id, q.occurred_at = o.occurred_at"
    " FROM challenge_queue q JOIN event_outbox o USING (event_id) ORDER BY q.event_id",
    "events": "SELECT event_type, partner_id, shopper_id, payload - 'transaction_id'"
    " FROM event_outbox ORDER BY event_id",
}


async def provision(dsn: str, directory: Path) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn, directory)
        for index in range(2):
            await onboarding.create_partner(
                conn,
                PartnerCreate(
                    name=f"Triggers {index}",
                    slug=f"triggers-{index}",
                    issue_price_micros=10_000,
                    redemption_price_micros=8_000,
                    earn_points=1,
                    earn_spend_minor=100,
                ),
                operator="test",
            )
        for card in CARDS:
            async with conn.transaction():
                await operations.enroll_shopper(conn, 1, EnrollRequest(card_number=card))
        # An earn committed here: its entry belongs to an earlier transaction.
        await ledger.earn(
            conn,
            idempotency_key="triggers:committed",
            shopper_id=1,
            partner_id=EARN_PARTNER_ID,
            points=10,
            issue_price_micros=1_000,
            expires_at=None,
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def databases(
    server_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    old_migrations = tmp_path_factory.mktemp("row-trigger-migrations")
    for path in sorted(migrations.MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= LAST_ROW_TRIGGERS_MIGRATION:
            shutil.copy(path, old_migrations / path.name)
    dsns = {
        "old": await create_database(server_dsn, template=None),
        "new": await create_database(server_dsn, template=None),
    }
    try:
        await provision(dsns["old"], old_migrations)
        await provision(dsns["new"], migrations.MIGRATIONS_DIR)
        yield dsns
    finally:
        for dsn in dsns.values():
            await drop_database(server_dsn, dsn)


async def outcome(dsn: str, scenario: Scenario) -> dict[str, Any]:
    """What `scenario` left in the queues, or how it was refused; rolled back either way."""
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            try:
                async with conn.transaction():
                    await scenario(conn)
            except asyncpg.PostgresError as e:
                return {"refused": (e.sqlstate, e.message, e.detail)}
            return {name: [tuple(r) for r in await conn.fetch(q)] for name, q in QUEUES.items()}
        finally:
            await tx.rollback()
    finally:
        await conn.close()


async def both(databases: dict[str, str], scenario: Scenario) -> dict[str, Any]:
    old, new = await outcome(databases["old"], scenario), await outcome(databases["new"], scenario)
    assert new == old
    return new


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


INSERT_TRANSACTIONS = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
                                  card_number, points, amount_minor, pricing_version,
                                  original_id, idempotency_key)
SELECT t.id, t.partner_id, t.ref, t.kind, t.status, t.shopper_id, '4000000000000002', t.points,
       t.amount_minor, 1, t.original_id, 'k-' || t.ref
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::uuid[]) WITH ORDINALITY
     AS t (id, partner_id, ref, kind, status, shopper_id, points, amount_minor, original_id, n)
ORDER BY t.n
"""


async def insert_transactions(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute(INSERT_TRANSACTIONS, *(list(column) for column in zip(*rows, strict=True)))


async def test_many_partner_transactions_queue_the_same_aggregate_deltas(
    databases: dict[str, str],
) -> None:
    purchase, no_amount, redemption, hold, other_hold = ids(5)

    async def scenario(conn: asyncpg.Connection) -> None:
        # One statement: every kind, and refunds of rows of the same statement.
        refund_purchase, refund_redemption, refund_hold = ids(3)
        await insert_transactions(
            conn,
            [
                (purchase, 1, "p1", "purchase", "completed", 1, 10, 1_000, None),
                (no_amount, 2, "p2", "purchase", "completed", 2, 7, None, None),
                (redemption, 1, "r1", "redemption", "completed", 3, 5, None, None),
                (hold, 1, "h1", "hold", "open", 1, 8, None, None),
                (other_hold, 2, "h2", "hold", "open", 2, 9, None, None),
                (refund_purchase, 1, "f1", "refund", "completed", 1, 4, 400, purchase),
                (refund_redemption, 1, "f2", "refund", "completed", 3, 5, None, redemption),
                (refund_hold, 1, "f3", "refund", "completed", 1, 2, None, hold),
            ],
        )
        # A second statement: refunds of rows of an earlier statement, and of nothing.
        await insert_transactions(
            conn,
            [
                (uuid.uuid4(), 2, "f4", "refund", "completed", 2, 1, 100, no_amount),
                (uuid.uuid4(), 2, "p3", "purchase", "completed", 3, 3, 300, None),
            ],
        )
        await conn.execute(INSERT_TRANSACTIONS, *([[]] * 9))  # no row: nothing queued
        # Captures (the row trigger with its WHEN), a void, and a purchase's status untouched.
        await conn.execute(
            "UPDATE partner_transactions SET status = 'captured', points_captured = 6 "
            "WHERE id = $1",
            hold,
        )
        await conn.execute(
            "UPDATE partner_transactions SET status = 'voided' WHERE id = $1", other_hold
        )
        await conn.execute(
            "UPDATE partner_transactions SET status = 'captured', points_captured = 6 "
            "WHERE id = $1",
            hold,
        )
        await conn.execute(
            "UPDATE partner_transactions SET status = 'completed' WHERE id = $1", purchase
        )

    queued = await both(databases, scenario)
    deltas = queued["aggregate_delta"]
    assert len(deltas) == 9  # 3 purchases, 1 redemption, 4 refunds with an original, 1 capture
    assert deltas[0] == (1, 1, None, True, 1_000, 1, 10, 0)
    assert deltas[-1] == (1, 1, None, True, 0, 0, 0, 6)
    # 4 refunds, a capture and a void: the row triggers with a WHEN, kept as they were
    assert [e[0] for e in queued["events"]].count("hold.captured") == 1
    assert len(queued["events"]) == 6


async def test_many_basket_lines_queue_one_delta_each_in_order(
    databases: dict[str, str],
) -> None:
    first, second = ids(2)

    async def scenario(conn: asyncpg.Connection) -> None:
        await insert_transactions(
            conn,
            [
                (first, 1, "l1", "purchase", "completed", 1, 10, 1_000, None),
                (second, 2, "l2", "purchase", "completed", 2, 5, 500, None),
            ],
        )
        await conn.execute("DELETE FROM aggregate_delta")
        await conn.execute(
            "INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, "
            "category, amount_minor) VALUES ($1, 0, 1, 1, 'food', 600), "
            "($1, 1, 1, 1, 'drink', 400), ($2, 0, 2, 2, 'food', 500)",
            first,
            second,
        )
        await conn.execute("INSERT INTO purchase_lines SELECT * FROM purchase_lines WHERE false")

    queued = await both(databases, scenario)
    assert queued["aggregate_delta"] == [
        (1, 1, "food", True, 600, 0, 0, 0),
        (1, 1, "drink", True, 400, 0, 0, 0),
        (2, 2, "food", True, 500, 0, 0, 0),
    ]


EVENTS = [  # (event_type, partner_id, shopper_id)
    ("purchase.recorded", 1, 1),
    ("purchase.recorded", 2, 2),
    ("purchase.recorded", 1, None),
    ("redemption.recorded", 1, 3),
    ("purchase.refunded", 2, 3),
    ("points.expiring", None, 1),
    ("tier.changed", 1, 2),
    ("challenge.budget_freed", None, 3),
    ("statement.ready", 2, None),
    ("shopper.erased", None, None),
]
INSERT_EVENTS = """
INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
SELECT t.event_type, t.partner_id, t.shopper_id, jsonb_build_object('n', t.n)
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY
     AS t (event_type, partner_id, shopper_id, n)
ORDER BY t.n
"""


async def insert_events(conn: asyncpg.Connection) -> None:
    await conn.execute(INSERT_EVENTS, *(list(column) for column in zip(*EVENTS, strict=True)))


async def test_many_events_with_no_endpoint_and_no_challenge_queue_mail_only(
    databases: dict[str, str],
) -> None:
    queued = await both(databases, insert_events)
    assert queued["fanout_queue"] == queued["challenge_queue"] == []
    assert [r[0] for r in queued["mail_queue"]] == [
        "points.expiring",
        "tier.changed",
        "statement.ready",
    ]


ENDPOINT = """
INSERT INTO webhooks.endpoint (public_id, partner_id, url, event_types, enabled)
VALUES ($1, $2, 'https://example.test/hook', ARRAY['purchase.created'], $3)
"""
CHALLENGE = """
INSERT INTO challenges (name, kind, goal, reward_points, budget_points, starts_at, ends_at,
                        created_by)
VALUES ('Triggers', 'distinct_partners', 2, 10, 1000, now() - interval '1 day',
        now() + interval '1 day', 'test')
"""


async def test_many_events_queue_what_each_rows_filter_chose(
    databases: dict[str, str],
) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        await conn.execute(ENDPOINT, "ep_" + "a" * 16, 1, True)
        await conn.execute(ENDPOINT, "ep_" + "b" * 16, 2, False)  # disabled: not partner 2's
        await conn.execute(CHALLENGE)
        await insert_events(conn)
        await conn.execute(INSERT_EVENTS, [], [], [])

    queued = await both(databases, scenario)
    # Partner 1's events and the network-wide ones; partner 2's endpoint is disabled.
    assert queued["fanout_queue"] == [e for e in EVENTS if e[1] in (1, None)]
    assert queued["challenge_queue"] == [
        ("purchase.recorded", 1, True),
        ("purchase.recorded", 2, True),
        ("purchase.refunded", 3, True),
        ("challenge.budget_freed", 3, True),
    ]
    assert len(queued["mail_queue"]) == 3


INSERT_POSTINGS = """
INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
SELECT t.entry_id, t.account_id, 'PTS', t.amount
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY
     AS t (entry_id, account_id, amount, n)
ORDER BY t.n
"""


async def earn_here(conn: asyncpg.Connection, key: str) -> int:
    result = await ledger.earn(
        conn,
        idempotency_key=key,
        shopper_id=2,
        partner_id=EARN_PARTNER_ID,
        points=3,
        issue_price_micros=1_000,
        expires_at=None,
    )
    return result.entry_id


async def committed_posting(conn: asyncpg.Connection) -> tuple[int, int]:
    """(entry_id, wallet account_id) of the earn committed in provisioning."""
    row = await conn.fetchrow(
        "SELECT p.entry_id, p.account_id FROM ledger.operation o JOIN ledger.posting p "
        "USING (entry_id) WHERE o.idempotency_key = 'triggers:committed' AND p.asset = 'PTS' "
        "AND p.amount > 0"
    )
    assert row is not None
    return row["entry_id"], row["account_id"]


@pytest.mark.parametrize("bad_at", [0, 1, 2])
async def test_many_postings_with_one_outside_its_entrys_transaction_are_refused(
    databases: dict[str, str], bad_at: int
) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        committed, account_id = await committed_posting(conn)
        here = await earn_here(conn, f"triggers:here:{bad_at}")
        entries = [here, here, here]
        entries[bad_at] = committed
        await conn.execute(INSERT_POSTINGS, entries, [account_id] * 3, [1, -1, 1])

    refused = await both(databases, scenario)
    committed = await committed_entry_id(databases["new"])
    assert refused == {
        "refused": ("CL001", "posting_outside_entry_transaction", f'{{"entry_id": {committed}}}')
    }


async def test_many_postings_name_the_first_bad_one_a_missing_entry_too(
    databases: dict[str, str],
) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        committed, account_id = await committed_posting(conn)
        here = await earn_here(conn, "triggers:missing")
        missing = committed + 1_000_000
        entries = [here, missing, committed, here]
        await conn.execute(INSERT_POSTINGS, entries, [account_id] * 4, [1, 1, -1, -1])

    refused = await both(databases, scenario)
    missing = await committed_entry_id(databases["new"]) + 1_000_000
    assert refused == {
        "refused": ("CL001", "posting_outside_entry_transaction", f'{{"entry_id": {missing}}}')
    }


async def test_many_postings_to_entries_of_this_transaction_are_taken(
    databases: dict[str, str],
) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        _, account_id = await committed_posting(conn)
        first = await earn_here(conn, "triggers:ok:1")
        async with conn.transaction():  # a savepoint is the same transaction
            second = await earn_here(conn, "triggers:ok:2")
        await conn.execute(
            INSERT_POSTINGS, [first, second, first, second], [account_id] * 4, [1, 1, -1, -1]
        )
        await conn.execute(INSERT_POSTINGS, [], [], [])

    taken = await both(databases, scenario)
    assert "refused" not in taken


async def committed_entry_id(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        entry_id, _ = await committed_posting(conn)
        return entry_id
    finally:
        await conn.close()
