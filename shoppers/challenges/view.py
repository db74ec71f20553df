"""What a shopper sees: challenges with progress, badges, and the opt-in leaderboard.

The leaderboard answers ranks and progress only; the SQL never returns another shopper's id,
and the only marker of identity in the answer is `you` on the caller's own rank.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.challenges import (
    Badge,
    ChallengeProgress,
    Leaderboard,
    LeaderboardRank,
    MyChallenges,
)
from infra.db import Conn
from shoppers.challenges import _queries as q
from shoppers.challenges.errors import ChallengeNotFound

__all__ = [
    "BADGES_MAX",
    "BOARD_RANKS_MAX",
    "CHALLENGES_SHOWN_MAX",
    "badges",
    "leaderboard",
    "mine",
    "opt_in",
]

CHALLENGES_SHOWN_MAX = 100
BADGES_MAX = 100
BOARD_RANKS_MAX = 20


async def mine(conn: Conn, shopper_id: int, *, now: datetime | None = None) -> MyChallenges:
    at = now or datetime.now(UTC)
    rows = await conn.fetch(q.MY_PROGRESS, shopper_id, at, CHALLENGES_SHOWN_MAX)
    active: list[ChallengeProgress] = []
    completed: list[ChallengeProgress] = []
    for row in rows:
        done = row["award_state"] == "active"
        item = ChallengeProgress(
            challenge_id=row["id"],
            name=row["name"],
            kind=row["kind"],
            partner_id=row["partner_id"],
            goal=row["goal"],
            window_weeks=row["window_weeks"],
            progress=row["progress"],
            reward_points=row["reward_points"],
            ends_at=row["ends_at"],
            completed=done,
            leaderboard_opt_in=row["opt_in"],
        )
        if done:
            completed.append(item)
        elif row["starts_at"] <= at < row["ends_at"]:
            active.append(item)
    return MyChallenges(active=active, completed=completed, badges=await badges(conn, shopper_id))


async def badges(conn: Conn, shopper_id: int) -> list[Badge]:
    """The shopper's badges, newest first (also on the profile, `GET /v1/me`)."""
    return [
        Badge(
            challenge_id=row["challenge_id"],
            name=row["name"],
            awarded_at=row["awarded_at"],
            state=row["state"],
            revoked_at=row["revoked_at"],
        )
        for row in await conn.fetch(q.MY_BADGES, shopper_id, BADGES_MAX)
    ]


async def opt_in(conn: Conn, shopper_id: int, challenge_id: int, *, on: bool) -> Leaderboard:
    if await conn.fetchrow(q.CHALLENGE_ANY, challenge_id) is None:
        raise ChallengeNotFound()
    await conn.execute(q.OPT_IN, shopper_id, challenge_id, on)
    return await leaderboard(conn, shopper_id, challenge_id)


async def leaderboard(conn: Conn, shopper_id: int, challenge_id: int) -> Leaderboard:
    if await conn.fetchrow(q.CHALLENGE_ANY, challenge_id) is None:
        raise ChallengeNotFound()
    rows = await conn.fetch(q.BOARD, challenge_id, shopper_id, BOARD_RANKS_MAX)
    me = await conn.fetchrow(q.MY_RANK, challenge_id, shopper_id)
    return Leaderboard(
        challenge_id=challenge_id,
        opted_in=rows[0]["opted_in"] if rows else 0,
        ranks=[
            LeaderboardRank(
                rank=row["rank"],
                progress=row["progress"],
                shoppers=row["shoppers"],
                you=bool(row["you"]),
            )
            for row in rows
        ],
        your_rank=None if me is None else me["rank"],
        your_progress=None if me is None else me["progress"],
    )
