"""Check a live ledger against the seven invariants of DESIGN.md and the hash chain.

`verify(conn)` reads everything in one REPEATABLE READ snapshot, in bounded pages (the hash
chain here, accounts, wallets and lots in `_verify_balances`), and returns the problems it
found, each naming what broke. It trusts nothing the request path maintains: balances are
recomputed from postings, and sealed blocks are re-hashed from the entries they claim.
"""

from __future__ import annotations

from typing import Any

from contracts.money import minor_unit_micros
from infra.db import Conn
from ledger import _chain
from ledger._verify_balances import ROWS_PER_PAGE, Books, read_books
from ledger._verify_problem import PROBLEMS_PER_CHECK_MAX, Problem

__all__ = ["PROBLEMS_PER_CHECK_MAX", "ROWS_PER_PAGE", "Problem", "verify"]

# Each page holds its blocks' entries and postings in memory (~10,000 entries at 20 blocks).
BLOCKS_PER_PAGE = 20

# The triggers that keep the journal append-only and balanced (invariants 1 and 6).
GUARD_TRIGGERS = {
    ("entry", "entry_append_only"),
    ("entry", "entry_no_truncate"),
    ("entry", "entry_balanced"),
    ("posting", "posting_append_only"),
    ("posting", "posting_no_truncate"),
    ("posting", "posting_in_entry_tx"),
    ("block", "block_append_only"),
    ("block", "block_no_truncate"),
    ("block_entry", "block_entry_append_only"),
    ("block_entry", "block_entry_no_truncate"),
    ("account", "account_no_delete"),
}


UNBALANCED_ENTRIES = """
SELECT entry_id, asset, sum(amount)::bigint AS total FROM ledger.posting
GROUP BY entry_id, asset HAVING sum(amount) <> 0 ORDER BY entry_id LIMIT $1
"""
ENTRIES_WITHOUT_POSTINGS = """
SELECT e.entry_id, e.kind FROM ledger.entry e
WHERE e.kind NOT IN ('transfer') AND NOT EXISTS (
    SELECT 1 FROM ledger.posting p WHERE p.entry_id = e.entry_id)
ORDER BY e.entry_id LIMIT $1
"""
ORPHAN_POSTINGS = """
SELECT p.posting_id, p.entry_id, p.account_id, p.asset, a.asset AS account_asset,
       e.entry_id IS NULL AS entry_missing
FROM ledger.posting p
LEFT JOIN ledger.account a ON a.account_id = p.account_id
LEFT JOIN ledger.entry e ON e.entry_id = p.entry_id
WHERE a.account_id IS NULL OR a.asset <> p.asset OR e.entry_id IS NULL
ORDER BY p.posting_id LIMIT $1
"""
LOT_RESERVATIONS = """
SELECT l.shopper_id, l.lot_id, l.reserved, coalesce(sum(hl.points), 0)::bigint AS held_open
FROM ledger.lot l
LEFT JOIN ledger.hold_lot hl ON hl.shopper_id = l.shopper_id AND hl.lot_id = l.lot_id
     AND EXISTS (SELECT 1 FROM ledger.hold h WHERE h.shopper_id = hl.shopper_id
                 AND h.hold_id = hl.hold_id AND h.state = 'open')
GROUP BY l.shopper_id, l.lot_id, l.reserved
HAVING l.reserved <> coalesce(sum(hl.points), 0)
ORDER BY l.shopper_id, l.lot_id LIMIT $1
"""
# Wallet balance after each entry, per shopper, in entry order (entries of one shopper are
# numbered under its wallet lock, so entry order is that shopper's commit order).
WALLET_DIPS = """
SELECT shopper_id, entry_id, kind, delta, running FROM (
    SELECT a.owner_id AS shopper_id, p.entry_id, e.kind, sum(p.amount)::bigint AS delta,
           (sum(sum(p.amount)) OVER (PARTITION BY a.owner_id ORDER BY p.entry_id))::bigint
               AS running
    FROM ledger.posting p
    JOIN ledger.account a ON a.account_id = p.account_id
    JOIN ledger.entry e ON e.entry_id = p.entry_id
    WHERE a.owner_kind = 'shopper' AND a.purpose = 'wallet'
    GROUP BY a.owner_id, p.entry_id, e.kind
) steps
WHERE running < 0 AND delta < 0 AND kind NOT IN ('refund_earn', 'transfer')
ORDER BY shopper_id, entry_id LIMIT $1
"""
TRIGGERS = """
SELECT c.relname::text AS table_name, t.tgname::text AS tgname, t.tgenabled::text AS tgenabled
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ledger' AND NOT t.tgisinternal
"""
RESULTS_WITHOUT_ENTRY = """
SELECT o.idempotency_key, o.entry_id FROM ledger.operation o
WHERE o.entry_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ledger.entry e WHERE e.entry_id = o.entry_id)
ORDER BY o.entry_id LIMIT $1
"""
UNSEALED_UNQUEUED = """
SELECT e.entry_id FROM ledger.entry e
WHERE NOT EXISTS (SELECT 1 FROM ledger.block_entry be WHERE be.entry_id = e.entry_id)
  AND NOT EXISTS (SELECT 1 FROM ledger.seal_queue q WHERE q.entry_id = e.entry_id)
ORDER BY e.entry_id LIMIT $1
"""
BLOCKS_PAGE = """
SELECT block_id, prev_hash, hash, entry_count FROM ledger.block
WHERE block_id > $1 ORDER BY block_id LIMIT $2
"""
BLOCK_ENTRIES = """
SELECT be.block_id, be.entry_id AS sealed_entry_id, be.digest AS sealed_digest,
       e.entry_id, e.kind, e.idempotency_key,
       e.shopper_id, e.partner_id, e.corrects_entry_id, e.args::text AS args,
       e.metadata::text AS metadata,
       (extract(epoch FROM e.created_at) * 1000000)::bigint AS created_us,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(p.posting_id, p.account_id, p.asset,
                                                    p.amount) ORDER BY p.posting_id),
                        '[]'::jsonb)::text
        FROM ledger.posting p WHERE p.entry_id = e.entry_id) AS postings
FROM ledger.block_entry be
LEFT JOIN ledger.entry e ON e.entry_id = be.entry_id
WHERE be.block_id BETWEEN $1 AND $2
ORDER BY be.block_id, be.entry_id
"""


# Membership money (issue 19): every charge row against its ledger entry, every membership
# entry against a charge row, and the two membership revenue accounts against the charges.
# $2 is the network currency's minor unit in micros.
MEMBERSHIP_CHARGES_UNMATCHED = """
SELECT c.membership_id, c.period_no, c.kind, c.ledger_entry_id,
       c.fee_minor, c.commission_minor, e.kind AS entry_kind,
       (e.args ->> 'fee_micros')::bigint AS fee_micros,
       (e.args ->> 'commission_micros')::bigint AS commission_micros,
       (SELECT sum(p.amount) FROM ledger.posting p
        JOIN ledger.account a ON a.account_id = p.account_id
        WHERE p.entry_id = e.entry_id AND a.owner_kind = 'partner'
          AND a.owner_id = c.partner_id AND a.purpose = 'settlement')::bigint AS partner_micros
FROM public.membership_charges c
LEFT JOIN ledger.entry e ON e.entry_id = c.ledger_entry_id
WHERE c.fee_minor > 0 AND (
    e.entry_id IS NULL
    OR e.kind <> CASE c.kind WHEN 'refund' THEN 'membership_refund' ELSE 'membership_fee' END
    OR e.partner_id <> c.partner_id
    OR (e.args ->> 'fee_micros')::bigint <> c.fee_minor * $2
    OR (e.args ->> 'commission_micros')::bigint <> c.commission_minor * $2
    OR (SELECT sum(p.amount) FROM ledger.posting p
        JOIN ledger.account a ON a.account_id = p.account_id
        WHERE p.entry_id = e.entry_id AND a.owner_kind = 'partner'
          AND a.owner_id = c.partner_id AND a.purpose = 'settlement')
       IS DISTINCT FROM (CASE c.kind WHEN 'refund' THEN -1 ELSE 1 END)
                        * (c.fee_minor - c.commission_minor) * $2)
ORDER BY c.membership_id, c.period_no, c.kind LIMIT $1
"""
MEMBERSHIP_ENTRIES_WITHOUT_CHARGE = """
SELECT e.entry_id, e.kind FROM ledger.entry e
WHERE e.kind IN ('membership_fee', 'membership_refund')
  AND NOT EXISTS (SELECT 1 FROM public.membership_charges c WHERE c.ledger_entry_id = e.entry_id)
ORDER BY e.entry_id LIMIT $1
"""
MEMBERSHIP_ACCOUNTS = """
SELECT
    (SELECT coalesce(sum(CASE kind WHEN 'refund' THEN fee_minor ELSE -fee_minor END), 0)
     FROM public.membership_charges)::bigint * $1 AS fees_expected,
    (SELECT coalesce(sum(CASE kind WHEN 'refund' THEN -commission_minor
                                   ELSE commission_minor END), 0)
     FROM public.membership_charges)::bigint * $1 AS commission_expected,
    (SELECT coalesce(sum(p.amount), 0) FROM ledger.posting p JOIN ledger.account a
     ON a.account_id = p.account_id WHERE a.name = 'network:membership_fees')::bigint
        AS fees_posted,
    (SELECT coalesce(sum(p.amount), 0) FROM ledger.posting p JOIN ledger.account a
     ON a.account_id = p.account_id WHERE a.name = 'network:membership_commission')::bigint
        AS commission_posted
"""
NETWORK_CURRENCY = "SELECT currency::text FROM public.network_settings"
MEMBERSHIP_CHECK = "membership_money"
MEMBERSHIP_INVARIANT = 8  # beyond DESIGN.md's seven: membership money matches its records


async def verify(conn: Conn, *, rows_per_page: int = ROWS_PER_PAGE) -> list[Problem]:
    """Every broken invariant, or an empty list when the books are sound.

    Accounts, wallets and lots are read `rows_per_page` at a time (the report does not
    depend on it), so memory stays bounded at any number of shoppers.
    """
    if conn.is_in_transaction():
        return await _verify(conn, rows_per_page)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify(conn, rows_per_page)


async def _verify(conn: Conn, rows_per_page: int) -> list[Problem]:
    problems: list[Problem] = []
    problems += await _entries_balanced(conn)
    books = await read_books(conn, rows_per_page)
    problems += books.maintained_problems()
    problems += _points_conserved(books)
    problems += await _lots_match_wallets(conn, books)
    problems += await _wallets_never_overdrawn(conn, books)
    problems += await _append_only(conn)
    problems += await _hash_chain(conn)
    problems += await _membership_money(conn)
    return problems


async def _membership_money(conn: Conn) -> list[Problem]:
    """Fees, commissions and refunds of memberships reconcile with the ledger."""
    unit = minor_unit_micros(await conn.fetchval(NETWORK_CURRENCY))
    problems = [
        Problem(
            invariant=MEMBERSHIP_INVARIANT,
            check=MEMBERSHIP_CHECK,
            detail=(
                f"membership {r['membership_id']} {r['kind']} of period {r['period_no']}: "
                f"fee {r['fee_minor']} commission {r['commission_minor']} (minor) do not match "
                f"entry {r['ledger_entry_id']} ({r['entry_kind']}: fee {r['fee_micros']}, "
                f"commission {r['commission_micros']}, partner {r['partner_micros']} micros)"
            ),
            entry_id=r["ledger_entry_id"],
        )
        for r in await conn.fetch(MEMBERSHIP_CHARGES_UNMATCHED, PROBLEMS_PER_CHECK_MAX, unit)
    ]
    problems += [
        Problem(
            invariant=MEMBERSHIP_INVARIANT,
            check=MEMBERSHIP_CHECK,
            detail=f"{r['kind']} entry without a membership charge",
            entry_id=r["entry_id"],
        )
        for r in await conn.fetch(MEMBERSHIP_ENTRIES_WITHOUT_CHARGE, PROBLEMS_PER_CHECK_MAX)
    ]
    sums = await conn.fetchrow(MEMBERSHIP_ACCOUNTS, unit)
    assert sums is not None, "an aggregate always returns a row"
    for account, expected, posted in (
        ("network:membership_fees", sums["fees_expected"], sums["fees_posted"]),
        ("network:membership_commission", sums["commission_expected"], sums["commission_posted"]),
    ):
        if expected != posted:
            problems.append(
                Problem(
                    invariant=MEMBERSHIP_INVARIANT,
                    check=MEMBERSHIP_CHECK,
                    detail="the membership charges and the account's postings differ",
                    account=account,
                    expected=expected,
                    actual=posted,
                )
            )
    return problems


async def _entries_balanced(conn: Conn) -> list[Problem]:
    found = [
        Problem(
            invariant=1,
            check="entry_balanced",
            detail=f"entry {r['entry_id']} sums to {r['total']} {r['asset']}, not zero",
            entry_id=r["entry_id"],
            expected=0,
            actual=r["total"],
        )
        for r in await conn.fetch(UNBALANCED_ENTRIES, PROBLEMS_PER_CHECK_MAX)
    ]
    found += [
        Problem(
            invariant=1,
            check="entry_has_postings",
            detail=f"{r['kind']} entry {r['entry_id']} has no postings",
            entry_id=r["entry_id"],
        )
        for r in await conn.fetch(ENTRIES_WITHOUT_POSTINGS, PROBLEMS_PER_CHECK_MAX)
    ]
    for r in await conn.fetch(ORPHAN_POSTINGS, PROBLEMS_PER_CHECK_MAX):
        if r["entry_missing"]:
            detail = f"posting {r['posting_id']} belongs to entry {r['entry_id']}, which is gone"
        elif r["account_asset"] is None:
            detail = f"posting {r['posting_id']} names account {r['account_id']}, which is gone"
        else:
            detail = (
                f"posting {r['posting_id']} is in {r['asset']} on a {r['account_asset']} account"
            )
        found.append(
            Problem(
                invariant=1,
                check="posting_references",
                detail=detail,
                entry_id=r["entry_id"],
                expected=r["account_asset"],
                actual=r["asset"],
            )
        )
    return found


def _points_conserved(books: Books) -> list[Problem]:
    issued, wallets, held = books.issued, books.wallets, books.held
    if issued + wallets + held == 0:
        return []
    return [
        Problem(
            invariant=2,
            check="points_conserved",
            detail=f"points_issued {issued} + wallets {wallets} + held {held} "
            f"= {issued + wallets + held}, not zero",
            account="network:points_issued",
            expected=-(wallets + held),
            actual=issued,
        )
    ]


async def _lots_match_wallets(conn: Conn, books: Books) -> list[Problem]:
    found = list(books.lots)
    for r in await conn.fetch(LOT_RESERVATIONS, PROBLEMS_PER_CHECK_MAX):
        found.append(
            Problem(
                invariant=3,
                check="lot_reservations",
                detail=f"lot {r['lot_id']} of shopper {r['shopper_id']} reserves {r['reserved']}"
                f" but open holds take {r['held_open']}",
                shopper_id=r["shopper_id"],
                expected=r["held_open"],
                actual=r["reserved"],
            )
        )
    deferred, lot_value = books.deferred_posted, books.lot_value_micros
    if deferred != -lot_value:
        found.append(
            Problem(
                invariant=4,
                check="deferred_revenue_matches_lots",
                detail=f"deferred revenue {deferred} but unspent lots are worth {lot_value}",
                account="network:deferred_revenue",
                expected=-lot_value,
                actual=deferred,
            )
        )
    return found[:PROBLEMS_PER_CHECK_MAX]


async def _wallets_never_overdrawn(conn: Conn, books: Books) -> list[Problem]:
    found = list(books.debts)
    for r in await conn.fetch(WALLET_DIPS, PROBLEMS_PER_CHECK_MAX):
        found.append(
            Problem(
                invariant=5,
                check="wallet_overdrawn",
                detail=f"shopper {r['shopper_id']}: {r['kind']} entry {r['entry_id']} took the "
                f"wallet to {r['running']}",
                entry_id=r["entry_id"],
                shopper_id=r["shopper_id"],
                account=f"shopper:{r['shopper_id']}:wallet",
                expected=0,
                actual=r["running"],
            )
        )
    debt_posted, debt_value = books.debt_posted, books.debt_value_micros
    if debt_posted != debt_value:
        found.append(
            Problem(
                invariant=5,
                check="points_debt_matches_wallets",
                detail=f"network:points_debt is {debt_posted} but wallets owe {debt_value}",
                account="network:points_debt",
                expected=debt_value,
                actual=debt_posted,
            )
        )
    return found[:PROBLEMS_PER_CHECK_MAX]


async def _append_only(conn: Conn) -> list[Problem]:
    found: list[Problem] = []
    present = {(r["table_name"], r["tgname"]): r["tgenabled"] for r in await conn.fetch(TRIGGERS)}
    for table, trigger in sorted(GUARD_TRIGGERS):
        state = present.get((table, trigger))
        if state is None or state == "D":
            found.append(
                Problem(
                    invariant=6,
                    check="guard_trigger",
                    detail=f"trigger {trigger} on ledger.{table} is "
                    f"{'missing' if state is None else 'disabled'}",
                    expected="enabled",
                    actual="missing" if state is None else "disabled",
                )
            )
    for r in await conn.fetch(RESULTS_WITHOUT_ENTRY, PROBLEMS_PER_CHECK_MAX):
        found.append(
            Problem(
                invariant=6,
                check="entry_deleted",
                detail=f"operation {r['idempotency_key']!r} recorded entry {r['entry_id']}, "
                "which is gone",
                entry_id=r["entry_id"],
            )
        )
    return found


async def _hash_chain(conn: Conn) -> list[Problem]:
    found: list[Problem] = [
        Problem(
            invariant=7,
            check="entry_sealed_or_queued",
            detail=f"entry {r['entry_id']} is neither sealed nor waiting to be sealed",
            entry_id=r["entry_id"],
        )
        for r in await conn.fetch(UNSEALED_UNQUEUED, PROBLEMS_PER_CHECK_MAX)
    ]
    prev_id, prev_hash = 0, _chain.GENESIS_HASH
    while len(found) < PROBLEMS_PER_CHECK_MAX:
        blocks = await conn.fetch(BLOCKS_PAGE, prev_id, BLOCKS_PER_PAGE)
        if not blocks:
            break
        rows = await conn.fetch(BLOCK_ENTRIES, blocks[0]["block_id"], blocks[-1]["block_id"])
        by_block: dict[int, list[Any]] = {}
        for row in rows:
            by_block.setdefault(row["block_id"], []).append(row)
        for block in blocks:
            found += _check_block(block, by_block.get(block["block_id"], []), prev_id, prev_hash)
            prev_id, prev_hash = block["block_id"], bytes(block["hash"])
    return found[:PROBLEMS_PER_CHECK_MAX]


def _check_block(block: Any, entries: list[Any], prev_id: int, prev_hash: bytes) -> list[Problem]:
    block_id: int = block["block_id"]
    found: list[Problem] = []

    def problem(check: str, detail: str, **where: Any) -> None:
        found.append(Problem(invariant=7, check=check, detail=detail, block_id=block_id, **where))

    if block_id != prev_id + 1:
        problem("block_sequence", f"block {block_id} follows block {prev_id}")
    if bytes(block["prev_hash"]) != prev_hash:
        problem("block_link", f"block {block_id} does not link to the hash of block {prev_id}")
    if len(entries) != block["entry_count"]:
        problem(
            "block_entries",
            f"block {block_id} lists {len(entries)} entries, sealed {block['entry_count']}",
            expected=block["entry_count"],
            actual=len(entries),
        )
    for row in entries:
        if row["entry_id"] is None:
            problem(
                "sealed_entry_missing",
                f"entry {row['sealed_entry_id']} sealed in block {block_id} is gone",
                entry_id=row["sealed_entry_id"],
            )
        elif _chain.entry_digest(row) != bytes(row["sealed_digest"]):
            problem(
                "sealed_entry_changed",
                f"entry {row['entry_id']} or one of its postings changed after it was sealed "
                f"in block {block_id}",
                entry_id=row["entry_id"],
                expected=bytes(row["sealed_digest"]).hex(),
                actual=_chain.entry_digest(row).hex(),
            )
    digests = [bytes(row["sealed_digest"]) for row in entries]
    recomputed = _chain.block_hash(block_id, bytes(block["prev_hash"]), digests)
    if recomputed != bytes(block["hash"]):
        problem(
            "block_hash",
            f"block {block_id} (entries {_span(entries)}) no longer hashes to its sealed hash",
            expected=bytes(block["hash"]).hex(),
            actual=recomputed.hex(),
        )
    return found


def _span(entries: list[Any]) -> str:
    ids = [row["sealed_entry_id"] for row in entries]
    return f"{min(ids)}..{max(ids)}" if ids else "none"
