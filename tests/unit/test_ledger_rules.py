"""Pure rules of the ledger: lot consumption order, debt repayment value, minor-unit rounding,
hashing of the chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger import _chain
from ledger._rules import FreeLot, allocate, consumption_order, debt_share, minor_units

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def test_lots_are_consumed_soonest_expiry_first_and_never_expiring_last() -> None:
    lots = [
        FreeLot(1, None, 10),
        FreeLot(2, day(30), 10),
        FreeLot(3, day(5), 10),
        FreeLot(4, day(5), 10),  # same expiry as lot 3: the older lot (lower id) goes first
    ]
    assert [lot.lot_id for lot in consumption_order(lots)] == [3, 4, 2, 1]
    assert allocate(lots, 25) == [(3, 10), (4, 10), (2, 5)]


def test_allocation_skips_empty_lots_and_stops_when_lots_run_out() -> None:
    lots = [FreeLot(1, day(1), 0), FreeLot(2, day(2), 4)]
    assert allocate(lots, 3) == [(2, 3)]
    assert allocate(lots, 9) == [(2, 4)]
    assert allocate(lots, 0) == []


@given(
    st.lists(st.integers(min_value=0, max_value=50), max_size=8),
    st.integers(min_value=0, max_value=400),
)
def test_allocation_takes_exactly_what_is_asked_or_everything(
    frees: list[int], points: int
) -> None:
    lots = [FreeLot(n, day(n % 3), free) for n, free in enumerate(frees)]
    taken = allocate(lots, points)
    assert sum(n for _, n in taken) == min(points, sum(frees))
    by_id = {lot.lot_id: lot for lot in lots}
    assert all(0 < n <= by_id[lot_id].free for lot_id, n in taken)


def test_debt_share_is_floored_pro_rata_and_the_last_repayment_takes_the_rest() -> None:
    assert debt_share(3, 10, 1) == 3
    assert debt_share(3, 10, 2) == 6
    assert debt_share(3, 10, 3) == 10
    assert debt_share(3, 10, 5) == 10
    assert debt_share(3, 10, 0) == 0


@given(st.integers(1, 10**6), st.integers(0, 10**12), st.lists(st.integers(1, 10**6), max_size=20))
def test_debt_repaid_in_any_steps_releases_exactly_its_value(
    debt_points: int, debt_value: int, steps: list[int]
) -> None:
    released = 0
    for step in [*steps, debt_points]:
        if debt_points == 0:
            break
        repay = min(step, debt_points)
        share = debt_share(debt_points, debt_value, repay)
        assert 0 <= share <= debt_value
        released += share
        debt_points -= repay
        debt_value -= share
    assert debt_points == 0
    assert debt_value == 0


def test_minor_units_round_toward_zero_and_keep_the_remainder() -> None:
    assert minor_units(1_234_567, minor_digits=2) == (123, 4_567)
    assert minor_units(-1_234_567, minor_digits=2) == (-123, -4_567)
    assert minor_units(5_000_000, minor_digits=0) == (5, 0)
    assert minor_units(999, minor_digits=2) == (0, 999)


@given(st.integers(-(10**15), 10**15), st.sampled_from([0, 2, 3]))
def test_minor_units_lose_nothing(amount: int, digits: int) -> None:
    paid, left = minor_units(amount, minor_digits=digits)
    assert paid * (1_000_000 // 10**digits) + left == amount
    assert abs(left) < 1_000_000 // 10**digits


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "entry_id": 1,
        "kind": "earn",
        "idempotency_key": "k",
        "shopper_id": 3,
        "partner_id": 4,
        "corrects_entry_id": None,
        "args": '{"points": 10}',
        "metadata": "{}",
        "created_us": 1_700_000_000_000_000,
        "postings": '[[1, 1, "PTS", 10], [2, 2, "PTS", -10]]',
    }
    row.update(changes)
    return row


def test_entry_digest_changes_with_any_hashed_field() -> None:
    base = _chain.entry_digest(_row())
    assert _chain.entry_digest(_row()) == base
    for field, value in [
        ("kind", "burn"),
        ("args", '{"points": 11}'),
        ("metadata", '{"a": 1}'),
        ("created_us", 1_700_000_000_000_001),
        ("postings", '[[1, 1, "PTS", 11], [2, 2, "PTS", -11]]'),
    ]:
        assert _chain.entry_digest(_row(**{field: value})) != base, field


def test_block_hash_chains_on_the_previous_hash_and_block_number() -> None:
    digests = [_chain.entry_digest(_row())]
    first = _chain.block_hash(1, _chain.GENESIS_HASH, digests)
    assert _chain.block_hash(1, _chain.GENESIS_HASH, digests) == first
    assert _chain.block_hash(2, _chain.GENESIS_HASH, digests) != first
    assert _chain.block_hash(1, first, digests) != first
    assert _chain.block_hash(1, _chain.GENESIS_HASH, []) != first
