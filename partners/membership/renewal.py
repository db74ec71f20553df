"""The membership workers: the renewal reminder, renewal at the end of a term and the
monthly bonus.

A week before an auto-renewing term ends, `membership.renewal_due` (internal, not a webhook)
is recorded once per period; shoppers/mail mails it to the shopper (with marketing consent and
an address, like every notice).

A term that has ended renews when the membership auto-renews and its plan version is not
retired: the next period starts where the last ended, and its fee is charged to the selling
partner (who collects it from the shopper's payment method on file), with the same
commission rate as the last period. Otherwise the membership expires. A run renews each due
membership by one period; one far behind catches up a period per run.

Rows are claimed `FOR UPDATE SKIP LOCKED`, so several processes may run these side by side,
and every ledger entry carries an idempotency key naming the membership and the period or
month: exactly once, whatever runs concurrently.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from infra import outbox
from infra.db import Conn, Pool
from partners.membership import benefit, money, queries, terms

BATCH_MAX = 200  # memberships per transaction
REMINDER_BEFORE = timedelta(days=7)  # the reminder goes this long before the term ends


async def run(pool: Pool, *, now: datetime) -> int:
    """Reminders, renewals (a renewed period's first month may be due), then bonuses."""
    reminded = await remind_due(pool, now=now)
    return reminded + await renew_due(pool, now=now) + await grant_due_bonuses(pool, now=now)


async def remind_due(pool: Pool, *, now: datetime) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(queries.DUE_FOR_REMINDER, now + REMINDER_BEFORE, now, BATCH_MAX)
        for row in rows:
            await outbox.record(
                conn,
                "membership.renewal_due",
                partner_id=row["partner_id"],
                shopper_id=row["shopper_id"],
                payload={
                    "membership_id": row["id"],
                    "shopper_id": row["shopper_id"],
                    "period_no": row["period_no"],
                    "plan_name": row["plan_name"],
                    "price_minor": row["price_minor"],
                    "currency": row["currency"],
                    "renews_at": row["period_end"].isoformat(),
                },
            )
            await conn.execute(queries.SET_REMINDED, row["id"])
    return len(rows)


async def renew_due(pool: Pool, *, now: datetime) -> int:
    async with pool.acquire() as conn, conn.transaction():
        network = await conn.fetchrow(queries.NETWORK)
        assert network is not None, "network_settings has its one row"
        rows = await conn.fetch(queries.DUE_FOR_RENEWAL, now, BATCH_MAX)
        for row in rows:
            if row["auto_renew"] and row["retired_at"] is None:
                await _renew(conn, row, currency=network["currency"])
            else:
                await conn.execute(queries.EXPIRE, row["id"])
    return len(rows)


async def _renew(conn: Conn, row: asyncpg.Record, *, currency: str) -> None:
    period_no = row["period_no"] + 1
    start, end = terms.period_bounds(row["started_at"], row["term"], period_no)
    last = await money.period_charge(conn, row["id"], row["period_no"])
    await conn.execute(queries.RENEW, row["id"], period_no, start, end)
    await money.charge(
        conn,
        membership_id=row["id"],
        partner_id=row["partner_id"],
        period_no=period_no,
        kind="renewal",
        fee_minor=row["price_minor"],
        commission_bps=last.commission_bps,
        currency=currency,
    )
    await outbox.record(
        conn,
        "membership.renewed",
        partner_id=row["partner_id"],
        shopper_id=row["shopper_id"],
        payload={
            "membership_id": row["id"],
            "plan_id": row["plan_id"],
            "shopper_id": row["shopper_id"],
            "partner_ref": row["partner_ref"],
            "status": "active",
            "period_no": period_no,
            "period_end": end.isoformat(),
            "price_minor": row["price_minor"],
        },
    )


async def grant_due_bonuses(pool: Pool, *, now: datetime) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(queries.DUE_FOR_BONUS, now, BATCH_MAX)
        for row in rows:
            await benefit.grant_month(
                conn,
                membership_id=row["id"],
                shopper_id=row["shopper_id"],
                started_at=row["started_at"],
                month_no=row["bonus_next_month"],
                points=row["monthly_bonus_points"],
                now=now,
            )
    return len(rows)
