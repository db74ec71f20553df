"""Invariants 2 to 5 of verify(): account balances, lots and wallets, read in keyset pages.

Python's memory is bounded by the page size, not by the number of shoppers or accounts:
shoppers are read in shopper_id ranges (each shopper's accounts, wallet row and lot sums in the
same page, checked together), the other accounts (network, partners) in account_id pages, and
the network-wide sums are carried across pages as integers. Every page reads the caller's
snapshot (verify runs in one REPEATABLE READ transaction), so the pages add up to one book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.db import Conn
from ledger._verify_problem import PROBLEMS_PER_CHECK_MAX, Problem

# Rows per query and page: at most this many shopper accounts, wallet rows, lot rows (summed
# per shopper in SQL) or other accounts reach Python at once, whatever the number of shoppers.
# The whole verify peaked at 72 MiB RSS with 500,000 and with 1,000,000 shoppers (reading the
# book at once: 782 and 1,585 MiB; tests/load/scale_ledger.py --compare-verify).
ROWS_PER_PAGE = 10_000
# Before the first page: ids are >= 0 (account.owner_id allows 0), and the last page is open.
ID_BEFORE_FIRST = -1
SHOPPER_ID_MAX = 2**63 - 1

Posted = dict[tuple[int, str], int]  # (shopper_id, purpose) -> sum of postings

# The last shopper_id of the page after $1: the $2-th shopper account, wallet or lot after it,
# whichever comes first, so no table brings more than $2 rows (one more: the shopper's other
# account) into a page. NULL when everything after $1 fits in one page.
SHOPPER_PAGE_END = """
SELECT least(
    (SELECT owner_id FROM ledger.account WHERE owner_kind = 'shopper' AND owner_id > $1
     ORDER BY owner_id OFFSET $2 - 1 LIMIT 1),
    (SELECT shopper_id FROM ledger.wallet WHERE shopper_id > $1
     ORDER BY shopper_id OFFSET $2 - 1 LIMIT 1),
    (SELECT shopper_id FROM ledger.lot WHERE shopper_id > $1
     ORDER BY shopper_id OFFSET $2 - 1 LIMIT 1))
"""
# Each account summed from its own postings (the posting_account index), so a page costs its
# accounts' postings, not a scan of the journal.
SHOPPER_ACCOUNTS_PAGE = """
SELECT a.account_id, a.owner_id AS shopper_id, a.name, a.purpose, a.asset,
       (SELECT coalesce(sum(p.amount), 0) FROM ledger.posting p
        WHERE p.account_id = a.account_id)::bigint AS posted
FROM ledger.account a
WHERE a.owner_kind = 'shopper' AND a.owner_id > $1 AND a.owner_id <= $2
ORDER BY a.owner_id, a.account_id
"""
WALLETS_PAGE = """
SELECT shopper_id, available, held, debt_points, debt_value_micros FROM ledger.wallet
WHERE shopper_id > $1 AND shopper_id <= $2 ORDER BY shopper_id
"""
LOTS_PAGE = """
SELECT shopper_id, sum(remaining)::bigint AS remaining, sum(reserved)::bigint AS reserved,
       sum(remaining::numeric * issue_price_micros) AS value_micros
FROM ledger.lot WHERE shopper_id > $1 AND shopper_id <= $2
GROUP BY shopper_id ORDER BY shopper_id
"""
# Network and partner accounts: maintained is the folded rollup plus the unfolded deltas.
OTHER_ACCOUNTS_PAGE = """
SELECT a.account_id, a.name, a.purpose, a.asset,
       (SELECT coalesce(sum(p.amount), 0) FROM ledger.posting p
        WHERE p.account_id = a.account_id)::bigint AS posted,
       (coalesce((SELECT b.balance FROM ledger.account_balance b
                  WHERE b.account_id = a.account_id), 0)
        + (SELECT coalesce(sum(d.amount), 0) FROM ledger.balance_delta d
           WHERE d.account_id = a.account_id))::bigint AS maintained
FROM ledger.account a
WHERE a.owner_kind <> 'shopper' AND a.account_id > $1
ORDER BY a.account_id LIMIT $2
"""


@dataclass
class Books:
    """What the pages found: network-wide sums (exact integers) and the bounded problems."""

    issued: int = 0
    wallets: int = 0
    held: int = 0
    deferred_posted: int = 0
    debt_posted: int = 0
    lot_value_micros: int = 0
    debt_value_micros: int = 0
    # (account_id, problem): the report lists maintained balances in account order.
    maintained: list[tuple[int, Problem]] = field(default_factory=list)
    lots: list[Problem] = field(default_factory=list)
    debts: list[Problem] = field(default_factory=list)

    def add_posted(self, name: str, purpose: str, posted: int) -> None:
        if purpose == "points_issued":
            self.issued += posted
        elif purpose == "wallet":
            self.wallets += posted
        elif purpose == "held":
            self.held += posted
        if name == "network:deferred_revenue":
            self.deferred_posted += posted
        elif name == "network:points_debt":
            self.debt_posted += posted

    def maintained_problems(self) -> list[Problem]:
        return [p for _, p in sorted(self.maintained, key=lambda kept: kept[0])][
            :PROBLEMS_PER_CHECK_MAX
        ]


async def read_books(conn: Conn, rows_per_page: int = ROWS_PER_PAGE) -> Books:
    """Every account, wallet and lot, one page at a time, in the caller's snapshot."""
    assert rows_per_page >= 1, rows_per_page
    assert conn.is_in_transaction(), "verify() opens the transaction whose snapshot pages share"
    books = Books()
    await _other_accounts(conn, books, rows_per_page)
    await _shoppers(conn, books, rows_per_page)
    return books


async def _other_accounts(conn: Conn, books: Books, rows_per_page: int) -> None:
    after = ID_BEFORE_FIRST
    while rows := await conn.fetch(OTHER_ACCOUNTS_PAGE, after, rows_per_page):
        for r in rows:
            books.add_posted(r["name"], r["purpose"], r["posted"])
            _check_maintained(books, r, r["maintained"])
        after = rows[-1]["account_id"]


async def _shoppers(conn: Conn, books: Books, rows_per_page: int) -> None:
    after = ID_BEFORE_FIRST
    while True:
        end: int | None = await conn.fetchval(SHOPPER_PAGE_END, after, rows_per_page)
        last = SHOPPER_ID_MAX if end is None else end
        accounts = await conn.fetch(SHOPPER_ACCOUNTS_PAGE, after, last)
        wallets = await conn.fetch(WALLETS_PAGE, after, last)
        lots = await conn.fetch(LOTS_PAGE, after, last)
        _check_shopper_page(books, accounts, wallets, lots)
        if end is None:
            return
        assert end > after, (end, after)  # each page moves forward
        after = end


def _check_maintained(books: Books, account: Any, maintained: int | None) -> None:
    """Wallet rows and folded rollups must equal the sum of postings (they are derived)."""
    if (maintained or 0) == account["posted"]:
        return
    problem = Problem(
        invariant=2 if account["asset"] == "PTS" else 4,
        check="maintained_balance",
        detail=f"{account['name']}: balance row says {maintained}, postings sum to "
        f"{account['posted']}",
        account=account["name"],
        expected=account["posted"],
        actual=maintained,
    )
    books.maintained.append((account["account_id"], problem))
    if len(books.maintained) > 2 * PROBLEMS_PER_CHECK_MAX:  # keep the lowest account ids
        books.maintained = sorted(books.maintained, key=lambda kept: kept[0])[
            :PROBLEMS_PER_CHECK_MAX
        ]


def _check_shopper_page(
    books: Books, accounts: list[Any], wallets: list[Any], lots: list[Any]
) -> None:
    by_shopper = {w["shopper_id"]: w for w in wallets}
    posted: Posted = {}
    for a in accounts:
        posted[(a["shopper_id"], a["purpose"])] = a["posted"]
        books.add_posted(a["name"], a["purpose"], a["posted"])
        wallet = by_shopper.get(a["shopper_id"])
        column = "available" if a["purpose"] == "wallet" else "held"
        _check_maintained(books, a, None if wallet is None else wallet[column])
    lot_of = {r["shopper_id"]: r for r in lots}
    for r in lots:
        books.lot_value_micros += int(r["value_micros"])
    for shopper_id in sorted({a["shopper_id"] for a in accounts} | set(lot_of)):
        _check_lots(books, shopper_id, posted, lot_of.get(shopper_id))
    for w in wallets:
        books.debt_value_micros += w["debt_value_micros"]
        _check_debt(books, w, posted.get((w["shopper_id"], "wallet"), 0))


def _check_lots(books: Books, shopper_id: int, posted: Posted, lot: Any) -> None:
    if len(books.lots) >= PROBLEMS_PER_CHECK_MAX:
        return
    wallet = posted.get((shopper_id, "wallet"), 0)
    held = posted.get((shopper_id, "held"), 0)
    remaining = 0 if lot is None else lot["remaining"]
    reserved = 0 if lot is None else lot["reserved"]
    # A wallet in debt has no free lot points left (they are netted against the debt).
    if remaining != max(wallet, 0) + held:
        books.lots.append(
            Problem(
                invariant=3,
                check="lots_cover_wallet",
                detail=f"shopper {shopper_id}: lot remainders {remaining} but wallet "
                f"{wallet} + held {held}",
                shopper_id=shopper_id,
                account=f"shopper:{shopper_id}:wallet",
                expected=max(wallet, 0) + held,
                actual=remaining,
            )
        )
    if reserved != held:
        books.lots.append(
            Problem(
                invariant=3,
                check="lots_reserve_held",
                detail=f"shopper {shopper_id}: lots reserve {reserved} but held is {held}",
                shopper_id=shopper_id,
                account=f"shopper:{shopper_id}:held",
                expected=held,
                actual=reserved,
            )
        )


def _check_debt(books: Books, w: Any, wallet: int) -> None:
    if len(books.debts) >= PROBLEMS_PER_CHECK_MAX:
        return
    if wallet < 0 and w["debt_points"] != -wallet:
        books.debts.append(
            Problem(
                invariant=5,
                check="negative_wallet_is_debt",
                detail=f"shopper {w['shopper_id']}: wallet {wallet} below zero with "
                f"{w['debt_points']} points of recorded debt",
                shopper_id=w["shopper_id"],
                account=f"shopper:{w['shopper_id']}:wallet",
                expected=-wallet,
                actual=w["debt_points"],
            )
        )
