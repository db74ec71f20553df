"""The challenge worker: drains `challenge_queue` (purchase and refund events, queued by the
outbox trigger of migration 0180) under a lease, one transaction per shopper.

A claimed batch is grouped by shopper: one fold covers all of a shopper's queued events, since a
fold recomputes from the purchases themselves. A fold that fails (a deadlock, a restart) leaves
its events queued; their lease runs out and they are claimed again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from infra.db import Conn
from ledger import errors as ledger_errors
from ledger import service as ledger
from shoppers.challenges import _queries as q
from shoppers.challenges.folding import fold_shopper

__all__ = ["BATCH_MAX", "LEASE_S", "run"]

log = logging.getLogger(__name__)

BATCH_MAX = 200
LEASE_S = 30.0


async def run(pool: asyncpg.Pool, *, batch_max: int = BATCH_MAX) -> int:
    """Fold one claimed batch; the number of events it consumed."""
    async with pool.acquire() as conn:
        claimed = await conn.fetch(q.CLAIM, batch_max, LEASE_S)
    by_shopper: dict[int, list[int]] = defaultdict(list)
    for row in claimed:
        by_shopper[row["shopper_id"]].append(row["event_id"])
    consumed = 0
    for shopper_id, event_ids in sorted(by_shopper.items()):
        try:
            await ledger.run_in_transaction(pool, _folder(shopper_id, event_ids))
        except ledger_errors.LedgerError as exc:  # left queued: retried when the lease ends
            log.warning(
                "challenge fold failed", extra={"shopper_id": shopper_id, "error": str(exc)}
            )
            continue
        consumed += len(event_ids)
    return consumed


def _folder(shopper_id: int, event_ids: list[int]) -> Callable[[Conn], Awaitable[None]]:
    async def fold(conn: Conn) -> None:
        await fold_shopper(conn, shopper_id, now=datetime.now(UTC))
        await conn.execute(q.DONE, event_ids)

    return fold
