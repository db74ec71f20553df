"""Property, on real PostgreSQL: a group's redemptions, holds and captures written together
(`partners.burn_many`, migration 0098), then the calls it left run one by one, answer and
leave the same books as the single path run one call after another in the same order.

The calls of a group are concurrent requests: the set-based step picks their order (the ones
it writes by shopper, a shopper's redemptions and holds in call order and its captures after
them; then the ones it left, in call order). So the reference is the single path
(`operations.redeem`, `hold`, `capture_hold`, each after a savepoint, as the group commit runs a
call) in that order, on a twin database with the same history. Answers are compared with
generated ids left out, the books through the normalized tables of
`test_purchase_write_many.DUMPS` and the holds, consumptions and hold lots by entry key.

Each example clones two fresh databases from the migrated template. Hypothesis runs in a plain
function on one event loop, so that the test can check after the last example that the runs did
write calls together and did leave some to the single path."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from contracts.errors import DomainError
from contracts.partners import CaptureRequest, HoldRequest, PurchaseRequest, RedemptionRequest
from infra.db import Conn
from ledger import verify
from partners import burn_many, operations
from shoppers import luhn
from shoppers import service as shoppers
from tests.conftest import TEMPLATE_DB
from tests.integration.test_purchase_write_many import DUMPS, dump
from tests.support import program
from tests.support.databases import create_database, drop_database

EXAMPLES_MAX = 12
CALLS_MAX = 20
FUNDS = (120, 40, 0, 200, 80)  # points per shopper; the third has no wallet yet


def _card(number: int) -> str:
    payload = f"8{(number * 7_919) % 10_000:04d}{number:010d}"
    return payload + luhn.check_digit(payload)


CARDS = [_card(number) for number in range(len(FUNDS))]
BURN_CARDS = CARDS[:3]  # redemptions and holds; captures only of the others' holds
UNKNOWN_CARD = "0000000000000"
REFS = [f"b-{n}" for n in range(10)] + ["h-0"]  # refs repeat; "h-0" the history's
MISSING_HOLD = "00000000-0000-0000-0000-0000000000aa"
HOLDS = 4  # opened in the history on CARDS[3] and CARDS[4]; the last one voided
BOOKS = {
    **DUMPS,
    "hold": "SELECT e.idempotency_key, h.shopper_id, h.partner_id, h.points, h.captured_points,"
    " h.state, c.idempotency_key FROM ledger.hold h JOIN ledger.entry e USING (entry_id)"
    " LEFT JOIN ledger.entry c ON c.entry_id = h.closed_entry_id ORDER BY 1",
    "consumption": "SELECT e.idempotency_key, l.idempotency_key, c.points, c.issue_price_micros,"
    " c.refunded FROM ledger.consumption c JOIN ledger.entry e USING (entry_id)"
    " JOIN ledger.lot x ON x.shopper_id = c.shopper_id AND x.lot_id = c.lot_id"
    " JOIN ledger.entry l ON l.entry_id = x.entry_id ORDER BY 1, 2",
    "hold_lot": "SELECT e.idempotency_key, l.idempotency_key, hl.points FROM ledger.hold_lot hl"
    " JOIN ledger.hold h USING (shopper_id, hold_id) JOIN ledger.entry e ON e.entry_id = h.entry_id"
    " JOIN ledger.lot x ON x.shopper_id = hl.shopper_id AND x.lot_id = hl.lot_id"
    " JOIN ledger.entry l ON l.entry_id = x.entry_id ORDER BY 1, 2",
}

Call = tuple[str, str, str, int | None]  # kind, card or hold number, ref, points
Answer = tuple[Any, ...]


async def _history(pool: asyncpg.Pool) -> tuple[int, list[str], dict[str, int]]:
    """The same partner, shoppers, funds and holds in both databases: (partner, hold ids,
    shopper id by card)."""
    partner_id = await program.partner(pool, "burns-property")  # 1 point per 1.00
    shopper_ids = {}
    for number, (card, points) in enumerate(zip(CARDS, FUNDS, strict=True)):
        async with pool.acquire() as conn, conn.transaction():
            holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=card)
        shopper_ids[card] = holder.shopper_id
        if points:
            fund = PurchaseRequest(
                partner_ref=f"h-{number}",
                card_number=card,
                amount_minor=points * 100,
                currency="EUR",
            )
            async with pool.acquire() as conn, conn.transaction():
                await operations.purchase(conn, partner_id, fund, idempotency_key=fund.partner_ref)
    hold_ids = []
    for number in range(HOLDS):
        request = HoldRequest(
            partner_ref=f"hh-{number}", card_number=CARDS[3 + number % 2], points=30
        )
        async with pool.acquire() as conn, conn.transaction():
            opened = await operations.hold(conn, partner_id, request, idempotency_key="hist")
        hold_ids.append(opened.hold_id)
    async with pool.acquire() as conn, conn.transaction():
        await operations.void_hold(conn, partner_id, hold_ids[-1])
    return partner_id, hold_ids, shopper_ids


@st.composite
def calls(draw: st.DrawFn) -> list[Call]:
    out: list[Call] = []
    for _ in range(draw(st.integers(1, CALLS_MAX))):
        kind = draw(st.sampled_from(["redemption", "redemption", "hold", "capture"]))
        if kind == "capture":
            hold = draw(st.sampled_from([*(str(n) for n in range(HOLDS)), "missing"]))
            points = draw(st.one_of(st.none(), st.integers(1, 40)))
            out.append((kind, hold, "", points))
            continue
        card = draw(st.sampled_from([*BURN_CARDS, *BURN_CARDS, UNKNOWN_CARD]))
        out.append((kind, card, draw(st.sampled_from(REFS)), draw(st.integers(1, 90))))
    return out


def _candidate(
    handle: int, call: Call, partner_id: int, hold_ids: list[str]
) -> burn_many.Candidate:
    kind, target, ref, points = call
    key = f"idem-{handle}"
    if kind == "capture":
        hold_id = (
            hold_ids[int(target)] if target.isdigit() else "00000000-0000-0000-0000-0000000000aa"
        )
        return burn_many.Candidate(handle, partner_id, CaptureRequest(points=points), key, hold_id)
    assert points is not None
    req: RedemptionRequest | HoldRequest = (
        RedemptionRequest(partner_ref=ref, card_number=target, points=points)
        if kind == "redemption"
        else HoldRequest(partner_ref=ref, card_number=target, points=points, expires_in_s=600)
    )
    return burn_many.Candidate(handle, partner_id, req, key)


async def _single(conn: Conn, candidate: burn_many.Candidate) -> Answer:
    """One call by the single path after a savepoint, as the group commit runs it."""
    run: Callable[[], Awaitable[Any]]
    req = candidate.req
    if isinstance(req, CaptureRequest):
        assert candidate.hold_id is not None
        hold_id = candidate.hold_id
        run = lambda: operations.capture_hold(conn, candidate.partner_id, hold_id, req)  # noqa: E731
    elif isinstance(req, RedemptionRequest):
        run = lambda: operations.redeem(  # noqa: E731
            conn, candidate.partner_id, req, idempotency_key=candidate.idempotency_key
        )
    else:
        run = lambda: operations.hold(  # noqa: E731
            conn, candidate.partner_id, req, idempotency_key=candidate.idempotency_key
        )
    await conn.execute("SAVEPOINT call")
    try:
        result = await run()
    except DomainError as exc:
        await conn.execute("ROLLBACK TO SAVEPOINT call")
        return ("refused", exc.code)
    await conn.execute("RELEASE SAVEPOINT call")
    return _answer(result)


def _answer(result: Any) -> Answer:
    """A result without its generated ids (transaction and hold ids, expiry clocks)."""
    fields = {name: getattr(result, name) for name in result.__struct_fields__}
    for generated in ("transaction_id", "hold_id", "expires_at"):
        fields.pop(generated, None)
    return ("ok", tuple(sorted(fields.items())))


def _named(books: dict[str, Any], hold_ids: list[str]) -> dict[str, Any]:
    """The books with each history hold's record id (random, part of its settle key) replaced
    by its number, each table's rows in one order."""

    def named(value: Any) -> Any:
        if isinstance(value, str):
            for number, hold_id in enumerate(hold_ids):
                value = value.replace(hold_id, f"hold-{number}")
        return value

    # Sorted again: the tables were ordered by keys that held the random ids.
    return {
        table: sorted((tuple(named(value) for value in row) for row in rows), key=repr)
        for table, rows in books.items()
    }


def _step_order(
    candidates: list[burn_many.Candidate],
    written: set[int],
    shopper_of: Callable[[burn_many.Candidate], int],
) -> list[int]:
    """The order the set-based step and the group commit ran the calls in."""
    in_step = sorted(
        written,
        key=lambda h: (
            shopper_of(candidates[h]),
            isinstance(candidates[h].req, CaptureRequest),
            h,
        ),
    )
    return in_step + [h for h in range(len(candidates)) if h not in written]


async def _run(
    server_dsn: str, group: list[Call], *, order: list[int] | None
) -> tuple[dict[int, Answer], dict[str, Any], list[int]]:
    """The group on a fresh database: set-based then one by one (order None), or one by one
    in `order`. Answers by call, the books, and the order the calls ran in."""
    dsn = await create_database(server_dsn, template=TEMPLATE_DB)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            partner_id, hold_ids, shopper_ids = await _history(pool)
            candidates = [_candidate(h, call, partner_id, hold_ids) for h, call in enumerate(group)]
            hold_shoppers = {h: shopper_ids[CARDS[3 + n % 2]] for n, h in enumerate(hold_ids)}

            def shopper_of(c: burn_many.Candidate) -> int:
                if c.hold_id is not None:
                    return hold_shoppers[c.hold_id]
                assert not isinstance(c.req, CaptureRequest)
                return shopper_ids[c.req.card_number]

            answers: dict[int, Answer] = {}
            async with pool.acquire() as conn, conn.transaction():
                if order is None:
                    results = await burn_many.write_many(conn, candidates)
                    answers = {h: _answer(r) for h, r in results.items()}
                    order = _step_order(candidates, set(results), shopper_of)
                for handle in order:
                    if handle not in answers:
                        answers[handle] = await _single(conn, candidates[handle])
            async with pool.acquire() as conn:
                assert await verify.verify(conn) == []
            books = await dump(pool)
            async with pool.acquire() as conn:
                for table, query in BOOKS.items():
                    if table not in DUMPS:
                        books[table] = [tuple(row) for row in await conn.fetch(query)]
            return answers, _named(books, hold_ids), order
        finally:
            await pool.close()
    finally:
        await drop_database(server_dsn, dsn)


async def _compare(server_dsn: str, group: list[Call], seen: Counter[str]) -> None:
    answers, books, order = await _run(server_dsn, group, order=None)
    expected_answers, expected_books, _ = await _run(server_dsn, group, order=order)
    assert answers == expected_answers
    for table, rows in expected_books.items():
        assert books[table] == rows, table
    seen["written together"] += sum(answer[0] == "ok" for answer in answers.values())
    seen["refused"] += sum(answer[0] == "refused" for answer in answers.values())


def test_burns_written_together_leave_what_the_single_path_leaves_in_their_order(
    server_dsn: str, template_dsn: str
) -> None:
    seen: Counter[str] = Counter()
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:

        @settings(
            max_examples=EXAMPLES_MAX,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(group=calls())
        def example(group: list[Call]) -> None:
            note(f"group: {group}")
            runner.run(_compare(server_dsn, group, seen))

        example()
    assert seen["written together"] > 0, seen
    assert seen["refused"] > 0, seen
