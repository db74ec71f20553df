"""Property, on real PostgreSQL: for random batches over a small network, the batch written with
its plain items set-based (`set_based=True`, `partners.purchase_many`, migration 0093) answers
and leaves the same books as the same batch posted item by item (`set_based=False`).

Each example clones two fresh databases from the migrated template, builds the same history on
both (one partner, enrolled shoppers with fixed card numbers, wallets for some, one shopper
just under the silver spend threshold, a campaign on "books"), runs the batch one way on each
and compares the answers and the normalized tables of `test_purchase_write_many.DUMPS`.

Hypothesis runs its examples in a plain function, each on one event loop kept for the whole run,
so that the test can check after the last example that the run did reach the set-based writes
(plain items created: points, no campaign bonus)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from contracts.partners import Line, PurchaseBatchRequest, PurchaseRequest
from partners import batch, operations
from shoppers import luhn
from shoppers import service as shoppers
from tests.conftest import TEMPLATE_DB
from tests.integration.test_purchase_write_many import answers_of, dump
from tests.support import program
from tests.support.databases import create_database, drop_database

EXAMPLES_MAX = 15
ITEMS_MAX = 25


def _card(number: int) -> str:
    payload = f"7{(number * 7_919) % 10_000:04d}{number:010d}"
    return payload + luhn.check_digit(payload)


CARDS = [_card(number) for number in range(8)]  # fixed numbers: the batch posts in card order
UNKNOWN_CARD = "0000000000000"
# Refs repeat within a file; "before" and "h-1" were recorded by the history.
REFS = [f"r-{n}" for n in range(16)] + ["before", "h-1"]
BEFORE = ("before", CARDS[0], 1_000)  # the history's last purchase: re-uploaded, a duplicate


def _purchase(card: str, ref: str, amount_minor: int, **fields: Any) -> PurchaseRequest:
    fields.setdefault("currency", "EUR")
    return PurchaseRequest(partner_ref=ref, card_number=card, amount_minor=amount_minor, **fields)


async def _history(pool: asyncpg.Pool) -> int:
    """The same partner, shoppers, purchases and campaign in both databases."""
    partner_id = await program.partner(pool, "many")  # 1 point per 1.00
    for card in CARDS:
        async with pool.acquire() as conn, conn.transaction():
            holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=card)
        assert holder.card_number == card
    history = [(card, 2_000) for card in CARDS[:6]]  # wallets for some, none for the others
    history.append((CARDS[5], 45_000))  # 47,000 spent: silver is 50,000
    history.append((BEFORE[1], BEFORE[2]))
    for number, (card, amount_minor) in enumerate(history):
        ref = BEFORE[0] if number == len(history) - 1 else f"h-{number}"
        async with pool.acquire() as conn, conn.transaction():
            await operations.purchase(
                conn, partner_id, _purchase(card, ref, amount_minor), idempotency_key=ref
            )
    await program.campaign(pool, partner_id, category="books", multiplier_bps=20_000)
    await pool.execute("UPDATE campaigns SET name = 'books x2'")  # the helper numbers names
    return partner_id


@st.composite
def purchases(draw: st.DrawFn) -> PurchaseRequest:
    if draw(st.integers(0, 9)) == 0:
        return _purchase(BEFORE[1], BEFORE[0], BEFORE[2])  # re-uploaded: a duplicate
    card = draw(st.sampled_from([*CARDS, UNKNOWN_CARD]))
    ref = draw(st.sampled_from(REFS))
    amount_minor = draw(
        st.one_of(
            st.integers(1, 99),  # no points at all
            st.integers(100, 6_000),
            st.sampled_from([50_000, 250_000]),  # straight to silver, to gold
        )
    )
    lines: list[Line] | None = None
    match draw(st.sampled_from(["none", "none", "food", "books"])):
        case "food":
            food = draw(st.integers(0, amount_minor))
            other = draw(st.integers(0, amount_minor - food))
            lines = [
                Line(sku="f", category="food", amount_minor=food),
                Line(sku="g", amount_minor=other),
            ]
        case "books":
            books = draw(st.integers(0, amount_minor))
            lines = [Line(sku="b", category="books", amount_minor=books)]
    currency = draw(st.sampled_from(["EUR", "EUR", "EUR", "EUR", "USD"]))
    return _purchase(card, ref, amount_minor, lines=lines, currency=currency)


@st.composite
def batches(draw: st.DrawFn) -> PurchaseBatchRequest:
    items = draw(
        st.lists(
            purchases(),
            min_size=1,
            max_size=ITEMS_MAX,
        )
    )
    # Some items again, as they were: a re-upload within the file (a duplicate, or a conflict
    # when the first use was refused or the ref went to another item).
    again = draw(st.lists(st.integers(0, len(items) - 1), max_size=3))
    items += [items[index] for index in again][: ITEMS_MAX - len(items)]
    return PurchaseBatchRequest(items=items)


Answer = tuple[Any, ...]


def _describe(req: PurchaseBatchRequest) -> str:
    """The batch, one item a line, for the report of a failing example (hypothesis does not
    print msgspec structs)."""
    names = {card: f"CARDS[{number}]" for number, card in enumerate(CARDS)}
    out = []
    for index, item in enumerate(req.items):
        lines = [f"{line.category}:{line.amount_minor}" for line in item.lines or []]
        out.append(
            f"  {index:2d} {names.get(item.card_number, item.card_number)} {item.partner_ref}"
            f" {item.amount_minor} {item.currency}" + (f" lines={lines}" if lines else "")
        )
    return "batch:\n" + "\n".join(out)


async def _run(
    server_dsn: str, req: PurchaseBatchRequest, *, set_based: bool
) -> tuple[list[Answer], dict[str, Any]]:
    dsn = await create_database(server_dsn, template=TEMPLATE_DB)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            partner_id = await _history(pool)
            async with pool.acquire() as conn, conn.transaction():
                result = await batch.purchase_batch(
                    conn, partner_id, req, idempotency_key="file-1", set_based=set_based
                )
            return answers_of(result), await dump(pool)
        finally:
            await pool.close()
    finally:
        await drop_database(server_dsn, dsn)


def _plain(answer: Answer) -> bool:
    """Created, with points, none of them a campaign's: the kind purchase_many writes."""
    _, _, status, _, points, breakdown, _ = answer
    return bool(
        status == "created"
        and points
        and not any(item.kind in ("campaign", "referral") for item in breakdown or [])
    )


async def _compare(server_dsn: str, req: PurchaseBatchRequest, seen: Counter[str]) -> None:
    expected_answers, expected = await _run(server_dsn, req, set_based=False)
    answers, actual = await _run(server_dsn, req, set_based=True)

    assert answers == expected_answers
    for table, rows in expected.items():
        assert actual[table] == rows, table
    for answer in answers:
        seen[answer[2]] += 1
        seen["plain"] += _plain(answer)


def test_random_batches_leave_the_books_the_single_path_leaves(
    server_dsn: str, template_dsn: str
) -> None:
    seen: Counter[str] = Counter()
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:

        @settings(
            max_examples=EXAMPLES_MAX,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(req=batches())
        def example(req: PurchaseBatchRequest) -> None:
            note(_describe(req))
            runner.run(_compare(server_dsn, req, seen))

        example()
    # The comparison passes with everything posted one by one: the run must have had plain
    # items, the ones the set-based half writes, and items that go the single way.
    assert seen["plain"] > 0, seen
    assert seen["created"] > seen["plain"] or seen["rejected"] > 0, seen
