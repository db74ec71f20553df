"""A referral purchase writes exactly the rows it wrote before the purchase had one path.

The scenario runs in this module's fresh database, so every sequence starts alike: each
purchase's effect (every row it added, changed or removed in every table of `public` and
`ledger`, and its answer) is compared with `referral_purchase_rows.json`, recorded on the code
that wrote referral purchases as separate statements (`purchase_steps`, before issue 18).
Random values are named (transaction ids by ref, card numbers and codes by shopper), hashes
dropped, times told relative to the scenario's start (months, or days). Set
`COALITION_REWRITE_PINNED_ROWS=1` to record the file again (the test then fails on purpose).
"""

from __future__ import annotations

import calendar
import json
import os
import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from contracts.partners import Line, PurchaseRequest
from infra.db import Conn
from partners import operations
from shoppers import referrals, tiers
from tests.support import program
from tests.support.round_trips import RoundTrips

PINNED = Path(__file__).with_name("referral_purchase_rows.json")
TABLES = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_schema IN ('public', 'ledger') AND table_type = 'BASE TABLE'
ORDER BY 1, 2
"""
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _plus_months(at: datetime, months: int) -> datetime:
    """`at + make_interval(months => n)` as PostgreSQL adds it (the day clipped to the month)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


class Names:
    """Stable names for the scenario's random values."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.known: dict[str, str] = {}

    def name(self, value: str, label: str) -> None:
        self.known[value] = label

    def time(self, at: datetime) -> str:
        near = timedelta(minutes=2)
        for months in range(-36, 121):
            if abs(at - _plus_months(self.start, months)) < near:
                return f"start{months:+d}mo"
        return f"start{round((at - self.start) / timedelta(days=1)):+d}d"

    def value(self, raw: Any) -> Any:
        if isinstance(raw, datetime):
            return self.time(raw.astimezone(UTC))
        if isinstance(raw, uuid.UUID):
            return self.value(str(raw))
        if isinstance(raw, (bytes, memoryview)):
            return "bytes"
        if isinstance(raw, Decimal):
            return str(raw)
        if isinstance(raw, date):
            return raw.isoformat()
        if isinstance(raw, list | tuple):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            # txid: the server's transaction counter, which other modules' tests move on
            return {k: "txid" if k == "txid" else self.value(v) for k, v in raw.items()}
        if isinstance(raw, str):
            return self._text(raw)
        return raw

    def _text(self, raw: str) -> Any:
        if raw in self.known:
            return self.known[raw]
        if _UUID.match(raw):
            return "uuid"
        if _ISO.match(raw):
            return self.time(datetime.fromisoformat(raw).astimezone(UTC))
        if raw[:1] in "{[":
            try:
                return self.value(json.loads(raw))
            except ValueError:
                return raw
        return raw


async def snapshot(conn: Conn, names: Names) -> dict[str, Counter[str]]:
    tables: dict[str, Counter[str]] = {}
    for schema, table in await conn.fetch(TABLES):
        rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
        tables[f"{schema}.{table}"] = Counter(
            json.dumps(names.value(dict(row)), sort_keys=True) for row in rows
        )
    return tables


def effect(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> dict[str, Any]:
    """Per table, the rows only after (added, or a changed row's new form) and only before."""
    changed: dict[str, Any] = {}
    for table in sorted(after):
        added = sorted((after[table] - before.get(table, Counter())).elements())
        removed = sorted((before.get(table, Counter()) - after[table]).elements())
        if added or removed:
            changed[table] = {
                "added": [json.loads(row) for row in added],
                "removed": [json.loads(row) for row in removed],
            }
    return changed


async def purchase(
    conn: Conn,
    names: Names,
    partner_id: int,
    card_number: str,
    ref: str,
    amount: int,
    lines: list[Line] | None = None,
) -> dict[str, Any]:
    before = await snapshot(conn, names)
    request = PurchaseRequest(
        partner_ref=ref, card_number=card_number, amount_minor=amount, currency="EUR", lines=lines
    )
    async with conn.transaction():
        result = await operations.purchase(conn, partner_id, request, idempotency_key=f"k-{ref}")
    names.name(result.transaction_id, f"transaction:{ref}")
    answer = names.value(msgspec.to_builtins(result))
    return {"ref": ref, "answer": answer, "rows": effect(before, await snapshot(conn, names))}


async def enrolled(pool: asyncpg.Pool, partner_id: int, names: Names, label: str) -> Any:
    holder = await program.shopper(pool, partner_id)
    names.name(holder.card_number, f"card:{label}")
    return holder


async def referred(
    pool: asyncpg.Pool, friend: Any, referrer: Any, names: Names, label: str
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        code = await referrals.code_for(conn, referrer.shopper_id)
        await referrals.register(conn, referred_shopper_id=friend.shopper_id, code=code)
    names.name(code, f"code:{label}")


async def scenario(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    names = Names(datetime.now(UTC))
    partner_id = await program.partner(pool, "pinned")  # 1 point per 1.00
    referrer = await enrolled(pool, partner_id, names, "referrer")
    friend = await enrolled(pool, partner_id, names, "friend")
    climber = await enrolled(pool, partner_id, names, "climber")
    orphan_referrer = await enrolled(pool, partner_id, names, "orphan-referrer")
    orphan = await enrolled(pool, partner_id, names, "orphan")
    await referred(pool, friend, referrer, names, "referrer")
    await referred(pool, climber, referrer, names, "referrer")
    await referred(pool, orphan, orphan_referrer, names, "orphan-referrer")
    async with pool.acquire() as conn, conn.transaction():
        await referrals.forget(conn, orphan_referrer.shopper_id)  # the referrer was erased
    silver = tiers.TIERS[1]
    effects = []
    async with pool.acquire() as conn:
        # Below the qualifying amount: the referral still waits.
        effects.append(await purchase(conn, names, partner_id, friend.card_number, "small", 1_000))
        # Qualifying, with a partner campaign and a network campaign: both bonuses.
        # Campaign names come from a counter shared with other modules: named here.
        ours = await program.campaign(pool, partner_id, bonus_points=5)
        network = await program.campaign(pool, None, bonus_points=7)
        names.name(ours.name, "campaign:partner")
        names.name(network.name, "campaign:network")
        lines = [
            Line(sku="a", category="fresh", amount_minor=2_000),
            Line(sku="b", amount_minor=1_000),
        ]
        effects.append(
            await purchase(conn, names, partner_id, friend.card_number, "first", 3_000, lines)
        )
        await program.end_all_campaigns(pool)
        # Rewarded already: nothing pending.
        effects.append(await purchase(conn, names, partner_id, friend.card_number, "next", 3_000))
        # The reward and a tier upgrade in one purchase: their events in order.
        amount = silver.spend_minor_min
        effects.append(await purchase(conn, names, partner_id, climber.card_number, "up", amount))
        # The referrer was erased: the friend's bonus only.
        effects.append(await purchase(conn, names, partner_id, orphan.card_number, "orphan", 2_500))
    return effects


async def test_referral_purchases_write_the_pinned_rows_and_answers(pool: asyncpg.Pool) -> None:
    effects = await scenario(pool)
    if os.environ.get("COALITION_REWRITE_PINNED_ROWS") == "1":
        PINNED.write_text(json.dumps(effects, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.fail(f"rewrote {PINNED.name}; unset COALITION_REWRITE_PINNED_ROWS")
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert [e["ref"] for e in effects] == [e["ref"] for e in pinned]
    for actual, expected in zip(effects, pinned, strict=True):
        assert actual["answer"] == expected["answer"], actual["ref"]
        assert sorted(actual["rows"]) == sorted(expected["rows"]), actual["ref"]
        for table, rows in expected["rows"].items():
            assert actual["rows"][table] == rows, (actual["ref"], table)
    # The pin itself shows the reward: the friend's first qualifying purchase answers 250 more.
    first = next(e for e in pinned if e["ref"] == "first")
    assert [item["kind"] for item in first["answer"]["breakdown"]][-1] == "referral"


async def test_a_referral_purchase_is_the_one_statement_and_the_rewards_own_writes(
    pool: asyncpg.Pool, round_trips: RoundTrips
) -> None:
    partner_id = await program.partner(pool, "counted")
    names = Names(datetime.now(UTC))
    referrer = await enrolled(pool, partner_id, names, "r")
    friend = await enrolled(pool, partner_id, names, "f")
    await referred(pool, friend, referrer, names, "r")

    async def counted(ref: str, amount_minor: int) -> int:
        request = PurchaseRequest(
            partner_ref=ref,
            card_number=friend.card_number,
            amount_minor=amount_minor,
            currency="EUR",
        )
        async with pool.acquire() as conn, conn.transaction():
            before = round_trips.count
            await operations.purchase(conn, partner_id, request, idempotency_key=ref)
            return round_trips.count - before

    # Below the qualifying amount no reward can be due: the read and the write.
    assert await counted("c-small", referrals.QUALIFYING_PURCHASE_MINOR - 1) == 2
    # The read, the write; the mark, both bonuses, referral.rewarded, the reward's breakdown
    # item; purchase.recorded.
    assert await counted("c-first", referrals.QUALIFYING_PURCHASE_MINOR) == 8
    assert await counted("c-next", referrals.QUALIFYING_PURCHASE_MINOR) == 2
