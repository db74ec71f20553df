"""Progress of a shopper in a challenge, from their purchases: pure functions, no I/O.

Progress is recomputed from the purchases (and what refunds reversed) every time, never
incremented, so folding the same event twice, or events out of order, gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Purchase", "Rule", "progress_of"]


@dataclass(frozen=True)
class Purchase:
    partner_id: int
    at: datetime
    points: int
    amount_minor: int
    refunded_points: int
    refunded_minor: int
    first_at_partner: bool  # the shopper's first purchase ever at this partner

    @property
    def counts(self) -> bool:
        """A purchase counts while a refund has not reversed all of it."""
        if self.amount_minor > 0 and self.refunded_minor >= self.amount_minor:
            return False
        return not (self.points > 0 and self.refunded_points >= self.points)


@dataclass(frozen=True)
class Rule:
    id: int
    partner_id: int | None  # the sponsor; a partner's challenge counts only its own store
    kind: str
    goal: int
    window_weeks: int | None
    reward_points: int
    starts_at: datetime
    ends_at: datetime

    def in_scope(self, p: Purchase) -> bool:
        if not (self.starts_at <= p.at < self.ends_at) or not p.counts:
            return False
        return self.partner_id is None or p.partner_id == self.partner_id


def progress_of(rule: Rule, purchases: Sequence[Purchase]) -> int:
    """How far the shopper got, capped at the goal."""
    mine = [p for p in purchases if rule.in_scope(p)]
    if rule.kind == "distinct_partners":
        reached = len({p.partner_id for p in mine})
    elif rule.kind == "purchases_within":
        assert rule.window_weeks is not None, rule
        reached = _most_within(sorted(p.at for p in mine), timedelta(weeks=rule.window_weeks))
    elif rule.kind == "first_at_new_partner":
        reached = int(any(p.first_at_partner for p in mine))
    else:
        raise AssertionError(rule.kind)
    return min(reached, rule.goal)


def _most_within(times: Sequence[datetime], window: timedelta) -> int:
    """The most purchases inside any window of that length (two pointers over sorted times)."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
