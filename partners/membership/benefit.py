"""A member's points: the monthly bonus (granted exactly once per benefit month) and its
reversal at cancellation. Both are paid by `network:marketing`, never by a partner.

Month k of a membership falls due at started_at + k months. Each grant is a ledger goodwill
entry whose idempotency key names the membership and the month, and a row keyed by both, so a
retried or concurrent grant cannot post twice. Valued at the network's default issue price
(a grant has no purchase whose partner's price would apply; DESIGN.md, "Money and points").
"""

from __future__ import annotations

from datetime import datetime

from infra.db import Conn
from ledger import service as ledger
from partners._common import ledger_call
from partners.membership import queries, terms

BONUS_REASON = "membership_bonus"


def bonus_key(membership_id: int, month_no: int) -> str:
    return f"membership:{membership_id}:bonus:{month_no}"


def reversal_key(membership_id: int, month_no: int) -> str:
    return f"membership:{membership_id}:bonus-reversal:{month_no}"


async def grant_month(
    conn: Conn,
    *,
    membership_id: int,
    shopper_id: int,
    started_at: datetime,
    month_no: int,
    points: int,
    now: datetime,
) -> None:
    """Grant month `month_no`'s bonus (if the plan has one) and move the due date on."""
    if points > 0:
        network = await conn.fetchrow(queries.NETWORK)
        assert network is not None, "network_settings has its one row"
        expires_at = terms.add_months(now, network["points_lifetime_months"])
        with ledger_call("goodwill"):
            entry = await ledger.goodwill(
                conn,
                idempotency_key=bonus_key(membership_id, month_no),
                shopper_id=shopper_id,
                partner_id=None,  # network marketing pays
                points=points,
                issue_price_micros=network["default_issue_price_micros"],
                expires_at=expires_at,
                reason=BONUS_REASON,
                metadata={"membership_id": membership_id, "month_no": month_no},
            )
        await conn.execute(
            queries.INSERT_BONUS_GRANT, membership_id, month_no, points, entry.entry_id
        )
    next_month = month_no + 1
    await conn.execute(
        queries.SET_BONUS_NEXT,
        membership_id,
        next_month,
        terms.add_months(started_at, next_month) if points > 0 else None,
    )


async def reverse_current_month(
    conn: Conn, *, membership_id: int, started_at: datetime, now: datetime
) -> tuple[int, int]:
    """At cancellation: take back the bonus of the benefit month in progress (a month already
    over was used). Points the shopper spent become points debt (ledger.refund_earn).
    Returns (points reversed, of which clawed back into debt)."""
    row = await conn.fetchrow(queries.CURRENT_BONUS_GRANT, membership_id)
    if row is None or terms.add_months(started_at, row["month_no"] + 1) <= now:
        return 0, 0
    with ledger_call("refund_earn"):
        entry = await ledger.refund_earn(
            conn,
            idempotency_key=reversal_key(membership_id, row["month_no"]),
            original_entry_id=row["ledger_entry_id"],
            points=row["points"],
            metadata={"membership_id": membership_id, "month_no": row["month_no"]},
        )
    await conn.execute(queries.SET_BONUS_REVERSED, membership_id, row["month_no"], entry.entry_id)
    return row["points"], entry.clawback_points or 0
