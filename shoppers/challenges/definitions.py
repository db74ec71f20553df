"""Challenge definitions: the operator's (sponsor: the network) and a partner's (its own store).

`partner_id` None is the network. A partner reads only its own challenges; another partner's id
answers 404 like an unknown one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from contracts import cursors
from contracts.challenges import (
    CHALLENGE_DAYS_MAX,
    CHALLENGES_LIMIT_MAX,
    Challenge,
    ChallengeCreate,
    ChallengePage,
)
from infra.db import Conn
from shoppers.challenges import _queries as q
from shoppers.challenges.errors import ChallengeInvalid, ChallengeNotFound, CursorInvalid
from shoppers.challenges.rules import Rule

__all__ = ["challenge_of", "create", "get", "list_page", "rule_of"]

_CURSOR_VERSION = "ch1:"


async def create(
    conn: Conn, partner_id: int | None, req: ChallengeCreate, *, actor: str
) -> Challenge:
    starts_at, ends_at = _aware(req.starts_at), _aware(req.ends_at)
    _check(partner_id, req, starts_at, ends_at, now=datetime.now(UTC))
    row = await conn.fetchrow(
        q.INSERT_CHALLENGE,
        partner_id,
        req.name,
        req.kind,
        req.goal,
        req.window_weeks,
        req.reward_points,
        req.budget_points,
        starts_at,
        ends_at,
        actor,
    )
    assert row is not None, "an INSERT ... RETURNING returns its row"
    return challenge_of(row)


async def get(conn: Conn, partner_id: int | None, challenge_id: int) -> Challenge:
    row = await conn.fetchrow(q.CHALLENGE, challenge_id, partner_id)
    if row is None:
        raise ChallengeNotFound()
    return challenge_of(row)


async def list_page(
    conn: Conn, partner_id: int | None, *, cursor: str | None, limit: int
) -> ChallengePage:
    assert 1 <= limit <= CHALLENGES_LIMIT_MAX, limit
    before_id = _decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(q.CHALLENGES_PAGE, partner_id, before_id, limit + 1)
    items = [challenge_of(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return ChallengePage(items=items, next_cursor=next_cursor)


def challenge_of(row: asyncpg.Record) -> Challenge:
    return Challenge(
        id=row["id"],
        partner_id=row["partner_id"],
        name=row["name"],
        kind=row["kind"],
        goal=row["goal"],
        window_weeks=row["window_weeks"],
        reward_points=row["reward_points"],
        budget_points=row["budget_points"],
        awarded_points=row["awarded_points"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_at=row["created_at"],
    )


def rule_of(row: asyncpg.Record) -> Rule:
    return Rule(
        id=row["id"],
        partner_id=row["partner_id"],
        kind=row["kind"],
        goal=row["goal"],
        window_weeks=row["window_weeks"],
        reward_points=row["reward_points"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
    )


def _check(
    partner_id: int | None,
    req: ChallengeCreate,
    starts_at: datetime,
    ends_at: datetime,
    *,
    now: datetime,
) -> None:
    if ends_at <= starts_at:
        raise ChallengeInvalid("ends_at must be after starts_at")
    if ends_at <= now:
        raise ChallengeInvalid("the challenge would end in the past")
    if ends_at - starts_at > timedelta(days=CHALLENGE_DAYS_MAX):
        raise ChallengeInvalid(f"a challenge runs at most {CHALLENGE_DAYS_MAX} days")
    if req.reward_points > req.budget_points:
        raise ChallengeInvalid("the budget must fund at least one reward")
    if (req.kind == "purchases_within") != (req.window_weeks is not None):
        raise ChallengeInvalid("window_weeks is given for purchases_within, and only for it")
    if req.kind == "first_at_new_partner" and req.goal != 1:
        raise ChallengeInvalid("first_at_new_partner has goal 1")
    if req.kind == "distinct_partners" and partner_id is not None:
        raise ChallengeInvalid("distinct_partners spans the network: the operator defines it")


def _aware(value: datetime) -> datetime:
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _encode_cursor(challenge_id: int) -> str:
    return cursors.encode_id(_CURSOR_VERSION, challenge_id)


def _decode_cursor(cursor: str) -> int:
    found = cursors.decode_id(_CURSOR_VERSION, cursor)
    if found is None:
        raise CursorInvalid()
    return found
