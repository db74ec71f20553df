"""Challenge progress from purchases (shoppers/challenges/rules.py): each kind, the window,
refunded purchases, partner scope, and the cap at the goal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shoppers.challenges.rules import Purchase, Rule, progress_of

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(days=60)


def rule(kind: str, goal: int, *, partner_id: int | None = None, weeks: int | None = None) -> Rule:
    return Rule(1, partner_id, kind, goal, weeks, 100, START, END)


def bought(
    partner_id: int, day: float, *, refunded_minor: int = 0, first: bool = False
) -> Purchase:
    return Purchase(partner_id, START + timedelta(days=day), 10, 1_000, 0, refunded_minor, first)


def test_distinct_partners_counts_partners_not_purchases_and_caps_at_the_goal() -> None:
    three = rule("distinct_partners", 3)
    assert progress_of(three, [bought(1, 1), bought(1, 2), bought(2, 3)]) == 2
    assert progress_of(three, [bought(p, p) for p in range(1, 6)]) == 3


def test_a_wholly_refunded_purchase_stops_counting_and_a_partial_one_does_not() -> None:
    two = rule("distinct_partners", 2)
    assert progress_of(two, [bought(1, 1), bought(2, 2, refunded_minor=1_000)]) == 1
    assert progress_of(two, [bought(1, 1), bought(2, 2, refunded_minor=999)]) == 2


def test_purchases_outside_the_window_do_not_count() -> None:
    two = rule("distinct_partners", 2)
    assert progress_of(two, [bought(1, -1), bought(2, 1)]) == 1
    assert progress_of(two, [bought(1, 1), bought(2, 60)]) == 1  # ends_at is exclusive


def test_purchases_within_takes_the_best_window_of_that_many_weeks() -> None:
    three_in_two_weeks = rule("purchases_within", 3, weeks=2)
    spread = [bought(1, 0), bought(1, 10), bought(1, 20), bought(1, 30)]
    assert progress_of(three_in_two_weeks, spread) == 2
    bunched = [*spread, bought(1, 31), bought(1, 33)]
    assert progress_of(three_in_two_weeks, bunched) == 3
    # 14 days exactly is outside a 2-week window
    assert progress_of(three_in_two_weeks, [bought(1, 0), bought(1, 7), bought(1, 14)]) == 2


def test_a_partner_challenge_counts_only_its_own_store() -> None:
    at_seven = rule("purchases_within", 2, partner_id=7, weeks=1)
    assert progress_of(at_seven, [bought(7, 1), bought(8, 1.5)]) == 1
    assert progress_of(at_seven, [bought(7, 1), bought(7, 2)]) == 2


def test_first_at_new_partner_needs_a_first_ever_purchase_there() -> None:
    anywhere = rule("first_at_new_partner", 1)
    assert progress_of(anywhere, [bought(1, 1)]) == 0  # bought there before the challenge
    assert progress_of(anywhere, [bought(1, 1), bought(2, 2, first=True)]) == 1
    at_two = rule("first_at_new_partner", 1, partner_id=2)
    assert progress_of(at_two, [bought(3, 2, first=True)]) == 0
    assert progress_of(at_two, [bought(2, 2, first=True, refunded_minor=1_000)]) == 0
