"""Fold a shopper's purchases into their challenge progress: award or claw back.

One transaction per shopper. Lock order, the same for every caller: the shopper's progress rows
(ascending challenge id), then challenge rows (ascending id, when the budget moves), then the
wallet (inside the ledger call). The purchase and refund paths never touch challenge rows, so
they cannot wait on the worker in a cycle. Purchases are read after the progress locks are
held: a second worker folding a newer event of the same shopper waits for those locks and
then reads everything this one read and more, so the last fold always sees the latest truth.

Exactly once: the award row's primary key (shopper, challenge) and the `active` state decide;
the ledger entry's idempotency key (`challenge:{id}:{shopper}:{grant}`) makes a replay of the
same grant a no-op in the ledger too. Budget: `RESERVE_BUDGET` adds the reward only when it
still fits, in one statement holding the challenge row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from shoppers.challenges import _queries as q
from shoppers.challenges.definitions import rule_of
from shoppers.challenges.rules import Purchase, Rule, progress_of

__all__ = ["CHALLENGES_IN_PLAY_MAX", "PURCHASES_READ_MAX", "Folded", "fold_shopper"]

CHALLENGES_IN_PLAY_MAX = 200
PURCHASES_READ_MAX = 5_000  # a shopper's purchases since the oldest challenge in play
COMPLETED_EVENT = "challenge.completed"
REVOKED_EVENT = "challenge.award_revoked"
BUDGET_FREED_EVENT = "challenge.budget_freed"  # internal: queues the waiting shopper
LEDGER_REASON = "challenge"


@dataclass(frozen=True)
class Folded:
    awarded: int
    revoked: int


async def fold_shopper(conn: Conn, shopper_id: int, *, now: datetime) -> Folded:
    """Recompute the shopper's progress in every challenge in play; run in a transaction."""
    assert conn.is_in_transaction(), "folding locks rows until its commit"
    rows = await conn.fetch(q.CHALLENGES_IN_PLAY, now, CHALLENGES_IN_PLAY_MAX)
    if not rows:
        return Folded(0, 0)
    rules = [rule_of(row) for row in rows]
    ids = [r.id for r in rules]
    await conn.execute(q.LOCK_PROGRESS, shopper_id, ids)
    await conn.fetch(q.PROGRESS_FOR_UPDATE, shopper_id, ids)
    purchases = await _purchases(conn, shopper_id, since=min(r.starts_at for r in rules))
    awarded = revoked = 0
    for rule in rules:
        progress = progress_of(rule, purchases)
        await conn.execute(q.SET_PROGRESS, shopper_id, rule.id, progress)
        award = await conn.fetchrow(q.AWARD, shopper_id, rule.id)
        active = award is not None and award["state"] == "active"
        if progress >= rule.goal and not active:
            grants = 1 if award is None else award["grants"] + 1
            awarded += await _grant(conn, shopper_id, rule, purchases, grants)
        elif progress < rule.goal and active:
            assert award is not None
            revoked += await _claw_back(conn, shopper_id, rule, award)
    return Folded(awarded, revoked)


async def _purchases(conn: Conn, shopper_id: int, *, since: datetime) -> list[Purchase]:
    rows = await conn.fetch(q.PURCHASES, shopper_id, since, PURCHASES_READ_MAX)
    return [
        Purchase(
            partner_id=row["partner_id"],
            at=row["created_at"],
            points=row["points"],
            amount_minor=row["amount_minor"] or 0,
            refunded_points=row["refunded_points"],
            refunded_minor=row["refunded_minor"],
            first_at_partner=bool(row["first_at_partner"]),
        )
        for row in rows
    ]


async def _grant(
    conn: Conn, shopper_id: int, rule: Rule, purchases: list[Purchase], grants: int
) -> int:
    """1 when granted; 0 when the budget cannot fund another reward."""
    if await conn.fetchval(q.RESERVE_BUDGET, rule.id) is None:
        return 0
    # A network reward is valued at the issue price of the partner of the purchase that
    # completed it (the latest counting one); a partner's at its own.
    at_partner = rule.partner_id or [p for p in purchases if rule.in_scope(p)][-1].partner_id
    issue_price_micros: int = await conn.fetchval(q.ISSUE_PRICE, at_partner)
    expires_at: datetime = await conn.fetchval(q.EXPIRES_AT)
    entry = await ledger.goodwill(
        conn,
        idempotency_key=f"challenge:{rule.id}:{shopper_id}:{grants}",
        shopper_id=shopper_id,
        partner_id=rule.partner_id,
        points=rule.reward_points,
        issue_price_micros=issue_price_micros,
        expires_at=expires_at,
        reason=LEDGER_REASON,
        metadata={"challenge_id": rule.id, "grant": grants, "valued_at_partner_id": at_partner},
    )
    await conn.execute(
        q.UPSERT_AWARD, shopper_id, rule.id, grants, rule.reward_points, entry.entry_id
    )
    await outbox.record(
        conn,
        COMPLETED_EVENT,
        partner_id=rule.partner_id,
        shopper_id=shopper_id,
        payload=_event(rule, shopper_id, grants),
    )
    return 1


async def _claw_back(conn: Conn, shopper_id: int, rule: Rule, award: asyncpg.Record) -> int:
    """Take the reward back (through points debt when spent) and return it to the budget."""
    entry = await ledger.refund_earn(
        conn,
        idempotency_key=f"challenge:{rule.id}:{shopper_id}:{award['grants']}:revoke",
        original_entry_id=award["entry_id"],
        points=award["points"],
        metadata={"challenge_id": rule.id, "grant": award["grants"]},
    )
    await conn.execute(q.RETURN_BUDGET, rule.id, award["points"])
    await conn.execute(q.REVOKE_AWARD, shopper_id, rule.id, entry.entry_id)
    await outbox.record(
        conn,
        REVOKED_EVENT,
        partner_id=rule.partner_id,
        shopper_id=shopper_id,
        payload=_event(rule, shopper_id, award["grants"]),
    )
    await _offer_returned_budget(conn, rule, shopper_id)
    return 1


async def _offer_returned_budget(conn: Conn, rule: Rule, shopper_id: int) -> None:
    """A shopper who reached the goal while the budget was spent is folded again, now that a
    reward's worth came back (an outbox event the queue trigger picks up)."""
    waiting = await conn.fetchval(q.WAITING, rule.id, rule.goal, shopper_id)
    if waiting is None:
        return
    await outbox.record(
        conn,
        BUDGET_FREED_EVENT,
        partner_id=None,  # internal only: no webhook type, no recipient
        shopper_id=waiting,
        payload={"challenge_id": rule.id, "shopper_id": waiting},
    )


def _event(rule: Rule, shopper_id: int, grants: int) -> dict[str, int | str]:
    return {
        "challenge_id": rule.id,
        "shopper_id": shopper_id,
        "points": rule.reward_points,
        "grant": grants,
        "kind": rule.kind,
    }
