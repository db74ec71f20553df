"""A wallet's lots and open holds, for the operator console's shopper page (read only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from infra.db import Conn

LOTS_SHOWN_MAX = 200
HOLDS_SHOWN_MAX = 100

_LOTS = """
SELECT lot_id, partner_id, origin, earned_at, expires_at, points, remaining, reserved
FROM ledger.lot
WHERE shopper_id = $1 AND remaining > 0
ORDER BY expires_at NULLS LAST, lot_id
LIMIT $2
"""

_OPEN_HOLDS = """
SELECT hold_id, partner_id, points, expires_at
FROM ledger.hold
WHERE shopper_id = $1 AND state = 'open'
ORDER BY expires_at, hold_id
LIMIT $2
"""


@dataclass(frozen=True)
class Lot:
    lot_id: int
    partner_id: int | None  # None: issued by the network (marketing)
    origin: str
    earned_at: datetime
    expires_at: datetime | None
    points: int
    remaining: int
    reserved: int


@dataclass(frozen=True)
class Hold:
    hold_id: int
    partner_id: int
    points: int
    expires_at: datetime


async def lots(conn: Conn, shopper_id: int, *, limit: int = LOTS_SHOWN_MAX) -> list[Lot]:
    """The lots with points left, soonest to expire first."""
    rows = await conn.fetch(_LOTS, shopper_id, limit)
    return [Lot(**dict(row)) for row in rows]


async def open_holds(conn: Conn, shopper_id: int, *, limit: int = HOLDS_SHOWN_MAX) -> list[Hold]:
    rows = await conn.fetch(_OPEN_HOLDS, shopper_id, limit)
    return [Hold(**dict(row)) for row in rows]
