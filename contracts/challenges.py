"""Challenge wire contracts: operator challenges (sponsor: the network), partner challenges
(sponsor: that partner, its own store), and what a shopper sees of them.

Kinds:
- `distinct_partners`: purchases at `goal` different partners within the window (network only);
- `purchases_within`: `goal` purchases within any `window_weeks` weeks of the window;
- `first_at_new_partner`: a purchase at a partner the shopper never bought at before (a partner
  challenge: at that partner); `goal` is 1.

A purchase counts while it is not wholly refunded. The reward is granted once when progress
reaches the goal, funded by the sponsor, never beyond the budget; it is clawed back (through
points debt when spent) when a refund takes progress below the goal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from contracts.partners import POINTS_MAX, Name

ChallengeKind = Literal["distinct_partners", "purchases_within", "first_at_new_partner"]
CHALLENGE_KINDS: tuple[ChallengeKind, ...] = (
    "distinct_partners",
    "purchases_within",
    "first_at_new_partner",
)
CHALLENGES_LIMIT_DEFAULT = 50
CHALLENGES_LIMIT_MAX = 200
CHALLENGE_DAYS_MAX = 366
CHALLENGE_GOAL_MAX = 100
CHALLENGE_WEEKS_MAX = 52
CHALLENGE_BUDGET_POINTS_MAX = 10_000_000_000
AwardState = Literal["active", "revoked"]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Response(msgspec.Struct, kw_only=True):
    pass


class ChallengeCreate(_Request):
    name: Name
    kind: ChallengeKind
    starts_at: datetime
    ends_at: datetime
    reward_points: Annotated[int, msgspec.Meta(ge=1, le=POINTS_MAX)]
    budget_points: Annotated[int, msgspec.Meta(ge=1, le=CHALLENGE_BUDGET_POINTS_MAX)]
    goal: Annotated[int, msgspec.Meta(ge=1, le=CHALLENGE_GOAL_MAX)] = 1
    window_weeks: Annotated[int, msgspec.Meta(ge=1, le=CHALLENGE_WEEKS_MAX)] | None = None


class Challenge(_Response):
    id: int
    partner_id: int | None  # the sponsor; None: the network (network:marketing pays)
    name: str
    kind: ChallengeKind
    goal: int
    window_weeks: int | None
    reward_points: int
    budget_points: int
    awarded_points: int  # the budget in use: awards granted minus awards clawed back
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


class ChallengePage(_Response):
    items: list[Challenge]
    next_cursor: str | None


class Badge(_Response):
    challenge_id: int
    name: str
    awarded_at: datetime
    state: AwardState
    revoked_at: datetime | None


class ChallengeProgress(_Response):
    challenge_id: int
    name: str
    kind: ChallengeKind
    partner_id: int | None
    goal: int
    window_weeks: int | None
    progress: int
    reward_points: int
    ends_at: datetime
    completed: bool
    leaderboard_opt_in: bool


class MyChallenges(_Response):
    active: list[ChallengeProgress]
    completed: list[ChallengeProgress]
    badges: list[Badge]


class LeaderboardOptIn(_Request):
    opt_in: bool


class LeaderboardRank(_Response):
    rank: int  # dense by progress, highest first; no identity of anyone
    progress: int
    shoppers: int  # how many share this rank
    you: bool


class Leaderboard(_Response):
    challenge_id: int
    opted_in: int  # shoppers on the board
    ranks: list[LeaderboardRank]  # the top of the board
    your_rank: int | None  # None: you have not opted in
    your_progress: int | None
