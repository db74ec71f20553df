"""Random sequences of every ledger operation against an in-memory model of DESIGN.md's
accounting, on real PostgreSQL. After every step: every account balance equals the model's,
and verify() finds all seven invariants intact."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from infra.db import Conn
from ledger import service as ledger
from ledger._rules import FreeLot, allocate, debt_share
from ledger.errors import (
    CaptureExceedsHold,
    HoldNotOpen,
    HoldsOpen,
    InsufficientPoints,
    LedgerError,
    RefundExceedsOriginal,
    ShopperMerged,
)
from ledger.verify import verify

EXAMPLES_MAX = int(os.environ.get("LEDGER_STATEFUL_EXAMPLES", "60"))
STEPS_MAX = 30
SHOPPERS_PER_EXAMPLE = 3
EXAMPLE_SPACING_DAYS = 1_000
_example_ids = itertools.count(1)
# Expiries are hours ahead of the real clock (refund_burn compares with now()), while the
# machine's own clock, given to the workers, runs past them.
BASE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)

points_st = st.integers(min_value=1, max_value=60)
price_st = st.integers(min_value=0, max_value=9_000)
hours_st = st.integers(min_value=1, max_value=72)


@dataclass
class Lot:
    lot_id: int
    root: int
    price: int
    expires_at: datetime | None
    remaining: int
    reserved: int = 0

    @property
    def free(self) -> int:
        return self.remaining - self.reserved


@dataclass
class Wallet:
    available: int = 0
    held: int = 0
    debt_points: int = 0
    debt_value: int = 0
    merged_into: int | None = None
    lots: list[Lot] = field(default_factory=list)


@dataclass
class Hold:
    hold_id: int
    shopper_id: int
    partner_id: int
    points: int
    expires_at: datetime
    lots: list[tuple[Lot, int]]
    state: str = "open"


@dataclass
class Earned:
    entry_id: int
    shopper_id: int
    partner_id: int | None
    points: int
    price: int
    root: int | None
    refunded: int = 0


@dataclass
class Burned:
    entry_id: int
    shopper_id: int
    partner_id: int
    points: int
    price: int
    consumed: list[list[Any]]  # [lot, points, refunded]
    refunded: int = 0


class Books:
    """The model: DESIGN.md's entries applied to Python dicts."""

    def __init__(self, opening: dict[str, int]) -> None:
        self.balances = dict(opening)
        self.wallets: dict[int, Wallet] = {}
        self.lot_ids = itertools.count(1)

    def post(self, account: str, amount: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + amount

    def wallet(self, shopper_id: int) -> Wallet:
        return self.wallets.setdefault(shopper_id, Wallet())

    def current(self, shopper_id: int) -> int:
        while (nxt := self.wallet(shopper_id).merged_into) is not None:
            shopper_id = nxt
        return shopper_id

    def take_free(self, shopper_id: int, points: int) -> list[tuple[Lot, int]]:
        lots = {lot.lot_id: lot for lot in self.wallet(shopper_id).lots}
        free = [FreeLot(lot.lot_id, lot.expires_at, lot.free) for lot in lots.values()]
        taken = [(lots[lot_id], n) for lot_id, n in allocate(free, points)]
        for lot, n in taken:
            lot.remaining -= n
        return taken

    def repay_debt(self, shopper_id: int) -> None:
        w = self.wallet(shopper_id)
        if w.debt_points == 0:
            return
        taken = self.take_free(shopper_id, w.debt_points)
        repaid = sum(n for _, n in taken)
        value = sum(n * lot.price for lot, n in taken)
        repaid_value = debt_share(w.debt_points, w.debt_value, repaid)
        self.post("network:deferred_revenue", value)
        self.post("network:points_debt", -repaid_value)
        self.post("network:redemption_margin", repaid_value - value)
        w.debt_points -= repaid
        w.debt_value -= repaid_value


def payer(partner_id: int | None) -> str:
    return "network:marketing" if partner_id is None else f"partner:{partner_id}:settlement"


def run_state_machine(loop: asyncio.AbstractEventLoop, conns: list[Conn]) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            example = next(_example_ids)
            self.log: list[str] = []
            base_id = 10_000_000 + example * 100
            self.shoppers = [base_id + n for n in range(SHOPPERS_PER_EXAMPLE)]
            self.partners = [base_id + 50, base_id + 51]
            self.keys = (f"sm:{example}:{n}" for n in itertools.count())
            # Each example lives in its own stretch of time, and first lets the workers finish
            # whatever earlier examples left due, so that their lots and holds stay out of it.
            self.base = BASE + timedelta(days=EXAMPLE_SPACING_DAYS * example)
            self.clock = self.base
            # Holds first: a released hold can free points of a lot that is already expired.
            while self.run(ledger.release_expired_holds(conns[0], now=self.base)):
                pass
            while self.run(ledger.expire_lots(conns[0], now=self.base)):
                pass
            opening = {
                name: self.run(ledger.balance(conns[0], name))
                for name in map(ledger.network_account, ledger.NETWORK_PURPOSES)
            }
            self.books = Books(opening)
            self.holds: list[Hold] = []
            self.earns: list[Earned] = []
            self.burns: list[Burned] = []
            self.done: list[
                tuple[
                    Callable[..., Awaitable[ledger.EntryResult]], dict[str, Any], ledger.EntryResult
                ]
            ] = []

        # -- plumbing -------------------------------------------------------------------------

        def run(self, coro: Awaitable[Any]) -> Any:
            result = loop.run_until_complete(coro)
            self.log.append(f"{getattr(coro, '__name__', coro)} -> {result}")
            return result

        def call(
            self,
            fn: Callable[..., Awaitable[ledger.EntryResult]],
            expected: type[LedgerError] | None,
            **kwargs: Any,
        ) -> ledger.EntryResult | None:
            kwargs["idempotency_key"] = next(self.keys)
            try:
                result: ledger.EntryResult = self.run(fn(conns[0], **kwargs))
            except LedgerError as exc:
                if expected is None or not isinstance(exc, expected):
                    raise AssertionError(f"expected {expected}, got {exc!r}") from exc
                return None
            assert expected is None, f"expected {expected.__name__}, got {result}"
            self.done.append((fn, kwargs, result))
            return result

        def pick(self, items: list[Any], index: int) -> Any:
            return items[index % len(items)]

        def expiry(self, hours: int | None) -> datetime | None:
            # Unique per lot so that lots of one shopper never tie on expiry.
            if hours is None:
                return None
            return self.base + timedelta(hours=hours, microseconds=len(self.earns) + 1)

        # -- rules ----------------------------------------------------------------------------

        @rule(
            s=st.integers(0, SHOPPERS_PER_EXAMPLE - 1),
            p=st.sampled_from([0, 1, None]),
            points=points_st,
            price=price_st,
            hours=st.one_of(st.none(), hours_st),
            goodwill=st.booleans(),
        )
        def earn(
            self, s: int, p: int | None, points: int, price: int, hours: int | None, goodwill: bool
        ) -> None:
            shopper_id = self.shoppers[s]
            partner_id = None if p is None else self.partners[p]
            expires_at = self.expiry(hours)
            w = self.books.wallet(shopper_id)
            kwargs = dict(
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=points,
                issue_price_micros=price,
                expires_at=expires_at,
            )
            if w.merged_into is not None:
                self.call(ledger.earn, ShopperMerged, **kwargs)
                return
            if goodwill:
                result = self.call(ledger.goodwill, None, reason="sorry", **kwargs)
            else:
                result = self.call(ledger.earn, None, **kwargs)
            assert result is not None
            b = self.books
            b.post(f"shopper:{shopper_id}:wallet", points)
            b.post("network:points_issued", -points)
            b.post(payer(partner_id), points * price)
            repay = min(points, w.debt_points)
            repay_value = debt_share(w.debt_points, w.debt_value, repay)
            root = None
            if points - repay > 0:
                root = next(b.lot_ids)
                w.lots.append(Lot(root, root, price, expires_at, points - repay))
                b.post("network:deferred_revenue", -(points - repay) * price)
            b.post("network:points_debt", -repay_value)
            b.post("network:redemption_margin", repay_value - repay * price)
            w.available += points
            w.debt_points -= repay
            w.debt_value -= repay_value
            self.earns.append(Earned(result.entry_id, shopper_id, partner_id, points, price, root))
            assert result.balance_after == w.available

        def apply_burn(
            self, shopper_id: int, partner_id: int, points: int, price: int, entry_id: int
        ) -> None:
            b = self.books
            w = b.wallet(shopper_id)
            taken = b.take_free(shopper_id, points)
            assert sum(n for _, n in taken) == points
            value = sum(n * lot.price for lot, n in taken)
            b.post(f"shopper:{shopper_id}:wallet", -points)
            b.post("network:points_issued", points)
            b.post("network:deferred_revenue", value)
            b.post(f"partner:{partner_id}:settlement", -points * price)
            b.post("network:redemption_margin", points * price - value)
            w.available -= points
            self.burns.append(
                Burned(
                    entry_id,
                    shopper_id,
                    partner_id,
                    points,
                    price,
                    [[lot, n, 0] for lot, n in taken],
                )
            )

        @rule(
            s=st.integers(0, SHOPPERS_PER_EXAMPLE - 1),
            p=st.integers(0, 1),
            points=points_st,
            price=price_st,
        )
        def burn(self, s: int, p: int, points: int, price: int) -> None:
            shopper_id, partner_id = self.shoppers[s], self.partners[p]
            w = self.books.wallet(shopper_id)
            fits = w.available >= points
            result = self.call(
                ledger.burn,
                None if fits else InsufficientPoints,
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=points,
                redemption_price_micros=price,
            )
            if result is not None:
                self.apply_burn(shopper_id, partner_id, points, price, result.entry_id)
                assert result.balance_after == w.available

        @rule(
            s=st.integers(0, SHOPPERS_PER_EXAMPLE - 1),
            first=points_st,
            second=points_st,
            price=price_st,
        )
        def concurrent_burns(self, s: int, first: int, second: int, price: int) -> None:
            """Two burns on one wallet at once, on two connections."""
            shopper_id, partner_id = self.shoppers[s], self.partners[0]
            available = self.books.wallet(shopper_id).available

            async def both() -> list[Any]:
                return await asyncio.gather(
                    *(
                        ledger.burn(
                            conn,
                            idempotency_key=next(self.keys),
                            shopper_id=shopper_id,
                            partner_id=partner_id,
                            points=points,
                            redemption_price_micros=price,
                        )
                        for conn, points in zip(conns, (first, second), strict=True)
                    ),
                    return_exceptions=True,
                )

            results = self.run(both())
            done = [r for r in results if isinstance(r, ledger.EntryResult)]
            assert all(isinstance(r, ledger.EntryResult | InsufficientPoints) for r in results)
            assert sum(r.points or 0 for r in done) <= max(available, 0)
            for points, r in zip((first, second), results, strict=True):
                if isinstance(r, InsufficientPoints):
                    # Refused only if it did not fit after the other one (or at all).
                    others = sum(x.points or 0 for x in done)
                    assert points > available - others
            for r in sorted(done, key=lambda r: r.entry_id):
                assert r.points is not None
                self.apply_burn(shopper_id, partner_id, r.points, price, r.entry_id)

        @rule(
            s=st.integers(0, SHOPPERS_PER_EXAMPLE - 1),
            p=st.integers(0, 1),
            points=points_st,
            hours=hours_st,
        )
        def hold(self, s: int, p: int, points: int, hours: int) -> None:
            shopper_id, partner_id = self.shoppers[s], self.partners[p]
            w = self.books.wallet(shopper_id)
            expires_at = self.base + timedelta(hours=hours)
            fits = w.available >= points
            result = self.call(
                ledger.hold,
                None if fits else InsufficientPoints,
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=points,
                expires_at=expires_at,
            )
            if result is None:
                return
            assert result.hold_id is not None
            lots = {lot.lot_id: lot for lot in w.lots}
            free = [FreeLot(lot.lot_id, lot.expires_at, lot.free) for lot in w.lots]
            reserved = [(lots[lot_id], n) for lot_id, n in allocate(free, points)]
            for lot, n in reserved:
                lot.reserved += n
            w.available -= points
            w.held += points
            self.holds.append(
                Hold(result.hold_id, shopper_id, partner_id, points, expires_at, reserved)
            )
            self.books.post(f"shopper:{shopper_id}:wallet", -points)
            self.books.post(f"shopper:{shopper_id}:held", points)

        def close_hold(self, h: Hold, state: str) -> None:
            b = self.books
            w = b.wallet(h.shopper_id)
            for lot, n in h.lots:
                lot.reserved -= n
            h.state = state
            b.post(f"shopper:{h.shopper_id}:held", -h.points)
            b.post(f"shopper:{h.shopper_id}:wallet", h.points)
            b.repay_debt(h.shopper_id)
            w.held -= h.points
            w.available += h.points

        @precondition(lambda self: self.holds)
        @rule(i=st.integers(0, 99), points=points_st, price=price_st)
        def capture(self, i: int, points: int, price: int) -> None:
            h: Hold = self.pick(self.holds, i)
            points = min(points, h.points) if points % 7 else h.points + 1
            expected: type[LedgerError] | None = None
            if h.state != "open":
                expected = HoldNotOpen
            elif points > h.points:
                expected = CaptureExceedsHold
            result = self.call(
                ledger.capture,
                expected,
                hold_id=h.hold_id,
                points=points,
                redemption_price_micros=price,
            )
            if result is None:
                return
            b = self.books
            w = b.wallet(h.shopper_id)
            rest, value, consumed = points, 0, []
            for lot, n in sorted(
                h.lots,
                key=lambda t: (t[0].expires_at is None, t[0].expires_at or BASE, t[0].lot_id),
            ):
                take = min(rest, n)
                lot.reserved -= n
                lot.remaining -= take
                if take:
                    consumed.append([lot, take, 0])
                    value += take * lot.price
                    rest -= take
            assert rest == 0
            h.state = "captured"
            b.post(f"shopper:{h.shopper_id}:held", -h.points)
            b.post(f"shopper:{h.shopper_id}:wallet", h.points - points)
            b.post("network:points_issued", points)
            b.post("network:deferred_revenue", value)
            b.post(f"partner:{h.partner_id}:settlement", -points * price)
            b.post("network:redemption_margin", points * price - value)
            b.repay_debt(h.shopper_id)
            w.held -= h.points
            w.available += h.points - points
            self.burns.append(
                Burned(result.entry_id, h.shopper_id, h.partner_id, points, price, consumed)
            )

        @precondition(lambda self: self.holds)
        @rule(i=st.integers(0, 99))
        def void(self, i: int) -> None:
            h: Hold = self.pick(self.holds, i)
            expected = None if h.state == "open" else HoldNotOpen
            if self.call(ledger.void, expected, hold_id=h.hold_id) is not None:
                self.close_hold(h, "voided")

        @rule(hours=st.integers(0, 24))
        def release_expired_holds(self, hours: int) -> None:
            self.clock += timedelta(hours=hours)
            released = self.run(ledger.release_expired_holds(conns[0], now=self.clock))
            due = sorted(
                (h for h in self.holds if h.state == "open" and h.expires_at <= self.clock),
                key=lambda h: (h.expires_at, h.hold_id),
            )
            assert released == len(due)
            for h in due:
                self.close_hold(h, "expired")

        @rule(hours=st.integers(0, 24))
        def expire_lots(self, hours: int) -> None:
            self.clock += timedelta(hours=hours)
            self.run(ledger.expire_lots(conns[0], now=self.clock))
            b = self.books
            for shopper_id, w in b.wallets.items():
                points = value = 0
                for lot in w.lots:
                    if lot.expires_at is not None and lot.expires_at <= self.clock and lot.free:
                        points += lot.free
                        value += lot.free * lot.price
                        lot.remaining = lot.reserved
                if points:
                    b.post(f"shopper:{shopper_id}:wallet", -points)
                    b.post("network:points_issued", points)
                    b.post("network:deferred_revenue", value)
                    b.post("network:breakage", -value)
                    w.available -= points

        @precondition(lambda self: self.earns)
        @rule(i=st.integers(0, 99), points=points_st)
        def refund_earn(self, i: int, points: int) -> None:
            e: Earned = self.pick(self.earns, i)
            if e.refunded + points > e.points:
                self.call(
                    ledger.refund_earn,
                    RefundExceedsOriginal,
                    original_entry_id=e.entry_id,
                    points=points,
                )
                return
            result = self.call(
                ledger.refund_earn, None, original_entry_id=e.entry_id, points=points
            )
            assert result is not None
            b = self.books
            shopper_id = b.current(e.shopper_id)
            w = b.wallet(shopper_id)
            unspent = 0
            if e.root is not None:
                for lot in sorted(w.lots, key=lambda lot: lot.lot_id):
                    if lot.root == e.root and lot.free > 0 and unspent < points:
                        take = min(lot.free, points - unspent)
                        lot.remaining -= take
                        unspent += take
            taken = b.take_free(shopper_id, points - unspent)
            netted = sum(n for _, n in taken)
            netted_value = sum(n * lot.price for lot, n in taken)
            debt = points - unspent - netted
            b.post(f"shopper:{shopper_id}:wallet", -points)
            b.post("network:points_issued", points)
            b.post(payer(e.partner_id), -points * e.price)
            b.post("network:deferred_revenue", unspent * e.price + netted_value)
            b.post("network:redemption_margin", netted * e.price - netted_value)
            b.post("network:points_debt", debt * e.price)
            w.available -= points
            w.debt_points += debt
            w.debt_value += debt * e.price
            e.refunded += points
            assert result.balance_after == w.available
            assert result.clawback_points == debt

        @precondition(lambda self: self.burns)
        @rule(i=st.integers(0, 99), points=points_st)
        def refund_burn(self, i: int, points: int) -> None:
            o: Burned = self.pick(self.burns, i)
            if o.refunded + points > o.points:
                self.call(
                    ledger.refund_burn,
                    RefundExceedsOriginal,
                    original_entry_id=o.entry_id,
                    points=points,
                )
                return
            result = self.call(
                ledger.refund_burn, None, original_entry_id=o.entry_id, points=points
            )
            assert result is not None
            b = self.books
            shopper_id = b.current(o.shopper_id)
            w = b.wallet(shopper_id)
            rest, value = points, 0
            for c in sorted(
                o.consumed,
                # The exact reverse of the burn's order (soonest expiry first, never-expiring
                # lots last): never-expiring lots first, then the latest expiry, newest lot first.
                key=lambda c: (c[0].expires_at is None, c[0].expires_at or BASE, c[0].lot_id),
                reverse=True,
            ):
                lot, n, refunded = c
                take = min(n - refunded, rest)
                if take <= 0:
                    continue
                c[2] += take
                if shopper_id == o.shopper_id:
                    lot.remaining += take
                else:
                    new_id = next(b.lot_ids)
                    w.lots.append(Lot(new_id, lot.root, lot.price, lot.expires_at, take))
                value += take * lot.price
                rest -= take
                if rest == 0:
                    break
            assert rest == 0
            b.post(f"shopper:{shopper_id}:wallet", points)
            b.post("network:points_issued", -points)
            b.post("network:deferred_revenue", -value)
            b.post(f"partner:{o.partner_id}:settlement", points * o.price)
            b.post("network:redemption_margin", value - points * o.price)
            b.repay_debt(shopper_id)
            w.available += points
            o.refunded += points
            assert result.balance_after == w.available

        @rule(
            s=st.integers(0, SHOPPERS_PER_EXAMPLE - 1),
            p=st.sampled_from([0, None]),
            points=points_st,
        )
        def goodwill_debit(self, s: int, p: int | None, points: int) -> None:
            shopper_id = self.shoppers[s]
            partner_id = None if p is None else self.partners[p]
            w = self.books.wallet(shopper_id)
            fits = w.available >= points
            result = self.call(
                ledger.goodwill_debit,
                None if fits else InsufficientPoints,
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=points,
                reason="correction",
            )
            if result is None:
                return
            b = self.books
            taken = b.take_free(shopper_id, points)
            value = sum(n * lot.price for lot, n in taken)
            b.post(f"shopper:{shopper_id}:wallet", -points)
            b.post("network:points_issued", points)
            b.post("network:deferred_revenue", value)
            b.post(payer(partner_id), -value)
            w.available -= points

        @rule(a=st.integers(0, SHOPPERS_PER_EXAMPLE - 1), d=st.integers(1, 2))
        def transfer_all(self, a: int, d: int) -> None:
            source = self.shoppers[a]
            target = self.shoppers[(a + d) % SHOPPERS_PER_EXAMPLE]
            b = self.books
            wf, wt = b.wallet(source), b.wallet(target)
            expected: type[LedgerError] | None = None
            if wf.merged_into is not None or wt.merged_into is not None:
                expected = ShopperMerged
            elif wf.held > 0:
                expected = HoldsOpen
            result = self.call(
                ledger.transfer_all, expected, from_shopper_id=source, to_shopper_id=target
            )
            if result is None:
                return
            for lot in sorted(
                wf.lots,
                key=lambda lot: (lot.expires_at is None, lot.expires_at or BASE, lot.lot_id),
            ):
                if lot.free > 0:
                    moved = lot.free
                    lot.remaining = lot.reserved
                    wt.lots.append(Lot(next(b.lot_ids), lot.root, lot.price, lot.expires_at, moved))
            moved_points = wf.available
            b.post(f"shopper:{source}:wallet", -moved_points)
            b.post(f"shopper:{target}:wallet", moved_points)
            wt.debt_points += wf.debt_points
            wt.debt_value += wf.debt_value
            wf.available = wf.debt_points = wf.debt_value = 0
            wf.merged_into = target
            b.repay_debt(target)
            wt.available += moved_points
            assert result.balance_after == wt.available

        @rule(p=st.integers(0, 1), amount=st.integers(-(10**6), 10**6).filter(bool))
        def settlement_payment(self, p: int, amount: int) -> None:
            partner_id = self.partners[p]
            self.call(ledger.settlement_payment, None, partner_id=partner_id, amount_micros=amount)
            self.books.post(f"partner:{partner_id}:settlement", -amount)
            self.books.post("network:bank", amount)

        @precondition(lambda self: self.done)
        @rule(i=st.integers(0, 99))
        def replay(self, i: int) -> None:
            fn, kwargs, original = self.pick(self.done, i)
            again = self.run(fn(conns[1], **kwargs))
            assert again.replayed
            assert msgspec_replace(again, replayed=False) == msgspec_replace(
                original, replayed=False
            )

        @rule(batch=st.integers(1, 50))
        def workers(self, batch: int) -> None:
            self.run(ledger.fold_deltas(conns[0], batch_max=batch))
            self.run(ledger.seal_blocks(conns[0], entries_max=batch))

        # -- invariants -----------------------------------------------------------------------

        @invariant()
        def books_match(self) -> None:
            async def check() -> None:
                for name, expected in self.books.balances.items():
                    actual = await ledger.balance(conns[0], name)
                    assert actual == expected, (name, expected, actual, self.log[-STEPS_MAX:])
                for shopper_id, w in self.books.wallets.items():
                    summary = await ledger.wallet_summary(
                        conns[0], shopper_id=shopper_id, now=self.clock
                    )
                    got = (summary.balance, summary.held, summary.debt_points)
                    assert got == (w.available, w.held, w.debt_points), (shopper_id, got)
                assert await verify(conns[0]) == []

            self.run(check())

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=EXAMPLES_MAX,
            stateful_step_count=STEPS_MAX,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )


def msgspec_replace(result: ledger.EntryResult, **changes: Any) -> ledger.EntryResult:
    import msgspec

    return msgspec.structs.replace(result, **changes)


def _connections(loop: asyncio.AbstractEventLoop, dsn: str) -> Iterator[list[Conn]]:
    conns: list[Conn] = [loop.run_until_complete(asyncpg.connect(dsn)) for _ in range(2)]
    try:
        yield conns
    finally:
        for conn in conns:
            loop.run_until_complete(conn.close())


def test_random_operation_sequences_keep_books_and_invariants(database_url: str) -> None:
    # Hypothesis drives a synchronous machine; it gets an event loop and connections of its
    # own rather than the session loop that runs the async fixtures.
    loop = asyncio.new_event_loop()
    try:
        for conns in _connections(loop, database_url):
            run_state_machine(loop, conns)
    finally:
        loop.close()
