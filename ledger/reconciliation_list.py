"""Read-only: the most recent reconciliation uploads, with their difference counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from infra.db import Conn

RECENT_LIMIT_MAX = 200

RECENT = """
SELECT reconciliation_id, partner_id, period_start, period_end, lines_total, matched,
       missing_in_network + missing_at_partner + mismatched_points + mismatched_amount
       + mismatched_other + duplicates + malformed AS differences,
       created_at
FROM settlement.reconciliation
ORDER BY reconciliation_id DESC
LIMIT $1
"""


@dataclass(frozen=True)
class ReconciliationSummary:
    reconciliation_id: int
    partner_id: int
    period_start: datetime
    period_end: datetime
    lines_total: int
    matched: int
    differences: int
    created_at: datetime


async def recent(conn: Conn, *, limit: int = 50) -> list[ReconciliationSummary]:
    assert 1 <= limit <= RECENT_LIMIT_MAX, limit
    rows = await conn.fetch(RECENT, limit)
    return [ReconciliationSummary(**dict(row.items())) for row in rows]
