"""Twin databases for proving a rewritten ledger function does exactly what 0002's did.

Two databases cloned from the migrated template; in the reference one the functions under test
are put back to their 0002 text (`function_0002`). The same script of operations runs on both
(each through `Recorder.op`, which records the result or the error: SQLSTATE, message,
detail) and ends with the ledger tables (`DUMPS`) and, where it matters, the sequences.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from infra import migrations
from ledger import _queries as q
from tests.conftest import TEMPLATE_DB
from tests.support.databases import create_database, drop_database

DUMPS = {
    "account": "SELECT account_id, owner_kind, owner_id, purpose, asset, floor_rule, rollup, name"
    " FROM ledger.account ORDER BY 1",
    "entry": "SELECT entry_id, kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,"
    " args, metadata FROM ledger.entry ORDER BY 1",
    "posting": "SELECT posting_id, entry_id, account_id, asset, amount FROM ledger.posting"
    " ORDER BY 1",
    "operation": "SELECT idempotency_key, operation, args, entry_id, result FROM ledger.operation"
    " ORDER BY 1",
    "wallet": "SELECT * FROM ledger.wallet ORDER BY 1",
    "lot": "SELECT shopper_id, lot_id, root_lot_id, entry_id, partner_id, issue_price_micros,"
    " origin, expires_at, points, remaining, reserved FROM ledger.lot ORDER BY 1, 2",
    "hold": "SELECT * FROM ledger.hold ORDER BY 1, 2",
    "hold_lot": "SELECT * FROM ledger.hold_lot ORDER BY 1, 2, 3",
    "consumption": "SELECT * FROM ledger.consumption ORDER BY 1, 2, 3",
    "account_balance": "SELECT account_id, balance FROM ledger.account_balance ORDER BY 1",
    "balance_delta": "SELECT * FROM ledger.balance_delta ORDER BY 1",
    "seal_queue": "SELECT * FROM ledger.seal_queue ORDER BY 1",
}
SEQUENCES = (
    "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'ledger' ORDER BY 1"
)

Script = Callable[[asyncpg.Connection], Awaitable[list[Any]]]


def function_0002(name: str) -> str:
    """0002's CREATE FUNCTION ledger.<name>, as CREATE OR REPLACE."""
    text = (migrations.MIGRATIONS_DIR / "0002_ledger.sql").read_text(encoding="utf-8")
    match = re.search(rf"CREATE FUNCTION ledger\.{name}\(.*?\nEND \$\$;", text, re.DOTALL)
    assert match is not None
    return match[0].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def at(year: int, month: int = 1) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


LOT_EXPIRY = at(2030)


class Recorder:
    """Runs each operation in its own transaction and records what it answered."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.out: list[Any] = []

    async def op(self, name: str, query: str, *args: Any) -> Any:
        try:
            async with self.conn.transaction():
                raw = await self.conn.fetchval(query, *args)
        except asyncpg.PostgresError as exc:
            self.out.append([name, "error", exc.sqlstate, str(exc), exc.detail])
            return None
        value = json.loads(raw) if isinstance(raw, str) else raw
        self.out.append([name, value])
        return value

    def earn(
        self,
        key: str,
        shopper: int,
        partner: int | None,
        points: int,
        price: int,
        expires: datetime | None = LOT_EXPIRY,
        kind: str = "earn",
        metadata: str = "{}",
    ) -> Awaitable[Any]:
        """ledger.earn, recorded under its key."""
        return self.op(key, q.EARN, key, shopper, partner, points, price, expires, kind, metadata)


@asynccontextmanager
async def twin_databases(server_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """(reference, current): two fresh clones of the migrated template."""
    reference = await create_database(server_dsn, template=TEMPLATE_DB)
    current = await create_database(server_dsn, template=TEMPLATE_DB)
    try:
        yield reference, current
    finally:
        await drop_database(server_dsn, reference)
        await drop_database(server_dsn, current)


async def run_on_twins(
    twin_dsns: tuple[str, str], *, restore_0002: list[str], current_is_new: str, script: Script
) -> tuple[list[Any], list[Any]]:
    """Restore `restore_0002` in the reference database, check with the `current_is_new` query
    that the current one runs the rewritten functions, run `script` on both: (expected, actual)."""
    reference = await asyncpg.connect(twin_dsns[0])
    current = await asyncpg.connect(twin_dsns[1])
    try:
        for name in restore_0002:
            await reference.execute(function_0002(name))
        assert await current.fetchval(current_is_new)
        return await script(reference), await script(current)
    finally:
        await reference.close()
        await current.close()
