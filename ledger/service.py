"""The ledger's one door: every operation other packages may call.

Each operation is one call to a PL/pgSQL function (0002_ledger.sql): one statement, one round
trip, atomic on its own. Called on a connection inside the caller's transaction, it becomes part
of that transaction, so `partners/` can combine a ledger operation with its own writes; a domain
error then aborts the caller's transaction (use a savepoint, `conn.transaction()`, around the
call to survive it). Operations need READ COMMITTED (the default): they wait for the shopper's
wallet row lock and then read what the previous holder committed. Under a stricter isolation
the wait ends in a serialization failure, which `run_in_transaction` retries.

Every operation takes an `idempotency_key`, unique across the ledger (callers scope it, e.g.
`f"partner:{partner_id}:{partner_ref}"`). The same key with the same arguments returns the
original result with `replayed=True` and no new effect; with different arguments it raises
IdempotencyConflict naming the fields that differ.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn, TypeVar

import asyncpg
import msgspec

from infra.db import Conn
from ledger import _chain, _queries
from ledger.errors import InvalidArgument, from_postgres

__all__ = [
    "EXPIRING_WITHIN_S_DEFAULT",
    "GRACE_S_DEFAULT",
    "HISTORY_LIMIT_MAX",
    "NETWORK_PURPOSES",
    "RETRY_ATTEMPTS_MAX",
    "ROLLUP_BATCH_MAX",
    "SEAL_BATCH_MAX",
    "WORKER_BATCH_MAX",
    "EntryResult",
    "ExpiringLot",
    "HistoryItem",
    "HistoryPage",
    "Posting",
    "WalletSummary",
    "balance",
    "burn",
    "capture",
    "earn",
    "expire_lots",
    "fold_deltas",
    "goodwill",
    "goodwill_debit",
    "held_account",
    "history",
    "hold",
    "membership_charge",
    "network_account",
    "refund_burn",
    "refund_earn",
    "release_expired_holds",
    "run_in_transaction",
    "seal_blocks",
    "settlement_account",
    "settlement_payment",
    "transfer_all",
    "void",
    "wallet_account",
    "wallet_summary",
]

HISTORY_LIMIT_MAX = 500
HISTORY_LIMIT_DEFAULT = 50
RETRY_ATTEMPTS_MAX = 5
RETRY_BACKOFF_S = 0.02
ROLLUP_BATCH_MAX = 10_000
SEAL_BATCH_MAX = 1_000
WORKER_BATCH_MAX = 1_000
GRACE_S_DEFAULT = 7 * 24 * 3600
EXPIRING_WITHIN_S_DEFAULT = 30 * 24 * 3600
EXPIRING_LOTS_MAX = 20

NETWORK_PURPOSES = (
    "points_issued",
    "deferred_revenue",
    "redemption_margin",
    "breakage",
    "bank",
    "marketing",
    "points_debt",
    "membership_fees",
    "membership_commission",
)
_ACCOUNT_NAME = re.compile(
    r"^(shopper:[1-9][0-9]*:(wallet|held)|partner:[0-9]+:settlement|network:("
    + "|".join(NETWORK_PURPOSES)
    + r"))$"
)
_CURSOR_PREFIX = "v1:"
_NO_CURSOR = 2**63 - 1


# Results -----------------------------------------------------------------------------------------


class Posting(msgspec.Struct, frozen=True):
    account: str
    asset: str
    amount: int


class EntryResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an operation did: its journal entry, postings, and the wallet right after it."""

    entry_id: int
    kind: str
    shopper_id: int | None
    balance_after: int | None
    held_after: int | None
    debt_points_after: int | None
    postings: tuple[Posting, ...]
    replayed: bool
    points: int | None = None
    hold_id: int | None = None
    lot_id: int | None = None
    clawback_points: int | None = None
    lots_moved: int | None = None
    amount_micros: int | None = None

    @property
    def money_lines(self) -> tuple[Posting, ...]:
        return tuple(p for p in self.postings if p.asset != "PTS")


class HistoryItem(msgspec.Struct, frozen=True, kw_only=True):
    posting_id: int
    entry_id: int
    kind: str
    asset: str
    amount: int
    created_at: datetime
    corrects_entry_id: int | None
    metadata: dict[str, Any]


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: tuple[HistoryItem, ...]
    next_cursor: str | None


class ExpiringLot(msgspec.Struct, frozen=True, kw_only=True):
    expires_at: datetime
    points: int
    partner_id: int | None


class WalletSummary(msgspec.Struct, frozen=True, kw_only=True):
    shopper_id: int
    balance: int
    held: int
    debt_points: int
    expiring: tuple[ExpiringLot, ...]


# Account names ---------------------------------------------------------------------------------


def wallet_account(shopper_id: int) -> str:
    return f"shopper:{shopper_id}:wallet"


def held_account(shopper_id: int) -> str:
    return f"shopper:{shopper_id}:held"


def settlement_account(partner_id: int) -> str:
    return f"partner:{partner_id}:settlement"


def network_account(purpose: str) -> str:
    if purpose not in NETWORK_PURPOSES:
        raise InvalidArgument(field="purpose", reason=f"one of {', '.join(NETWORK_PURPOSES)}")
    return f"network:{purpose}"


# Operations --------------------------------------------------------------------------------------


async def earn(
    conn: Conn,
    *,
    idempotency_key: str,
    shopper_id: int,
    partner_id: int | None,
    points: int,
    issue_price_micros: int,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Credit points issued by `partner_id` (None: network marketing pays) as a new lot."""
    return await _operation(
        conn,
        _queries.EARN,
        idempotency_key,
        shopper_id,
        partner_id,
        points,
        issue_price_micros,
        _aware_or_none(expires_at, "expires_at"),
        "earn",
        _json(metadata),
    )


async def goodwill(
    conn: Conn,
    *,
    idempotency_key: str,
    shopper_id: int,
    partner_id: int | None,
    points: int,
    issue_price_micros: int,
    expires_at: datetime | None,
    reason: str,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Goodwill credit by a partner, or by the operator (partner_id None: marketing pays)."""
    return await _operation(
        conn,
        _queries.EARN,
        idempotency_key,
        shopper_id,
        partner_id,
        points,
        issue_price_micros,
        _aware_or_none(expires_at, "expires_at"),
        "goodwill",
        _json({**(metadata or {}), "reason": _reason(reason)}),
    )


async def goodwill_debit(
    conn: Conn,
    *,
    idempotency_key: str,
    shopper_id: int,
    partner_id: int | None,
    points: int,
    reason: str,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Take points back; the payer (partner, or marketing) is credited their issue value."""
    return await _operation(
        conn,
        _queries.GOODWILL_DEBIT,
        idempotency_key,
        shopper_id,
        partner_id,
        points,
        _reason(reason),
        _json(metadata),
    )


async def burn(
    conn: Conn,
    *,
    idempotency_key: str,
    shopper_id: int,
    partner_id: int,
    points: int,
    redemption_price_micros: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Redeem points at `partner_id`'s till; raises InsufficientPoints, never overdraws."""
    return await _operation(
        conn,
        _queries.BURN,
        idempotency_key,
        shopper_id,
        partner_id,
        points,
        redemption_price_micros,
        _json(metadata),
    )


async def hold(
    conn: Conn,
    *,
    idempotency_key: str,
    shopper_id: int,
    partner_id: int,
    points: int,
    expires_at: datetime,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Reserve points for a checkout; the result carries `hold_id`."""
    return await _operation(
        conn,
        _queries.HOLD,
        idempotency_key,
        shopper_id,
        partner_id,
        points,
        _aware(expires_at, "expires_at"),
        _json(metadata),
    )


async def capture(
    conn: Conn,
    *,
    idempotency_key: str,
    hold_id: int,
    points: int,
    redemption_price_micros: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Burn `points` (<= held) of an open hold; the rest of the hold returns to the wallet."""
    return await _operation(
        conn,
        _queries.CAPTURE,
        idempotency_key,
        hold_id,
        points,
        redemption_price_micros,
        _json(metadata),
    )


async def void(
    conn: Conn,
    *,
    idempotency_key: str,
    hold_id: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Cancel an open hold: its points return to the wallet."""
    return await _operation(conn, _queries.VOID, idempotency_key, hold_id, _json(metadata))


async def refund_earn(
    conn: Conn,
    *,
    idempotency_key: str,
    original_entry_id: int,
    points: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Reverse (part of) an earn or goodwill credit. Points already spent are clawed back into
    points debt, which the shopper's next points repay first."""
    return await _operation(
        conn, _queries.REFUND_EARN, idempotency_key, original_entry_id, points, _json(metadata)
    )


async def refund_burn(
    conn: Conn,
    *,
    idempotency_key: str,
    original_entry_id: int,
    points: int,
    grace_s: int = GRACE_S_DEFAULT,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Reverse (part of) a burn or capture: points go back to their lots; a lot expired since
    gets a grace lot that expires `grace_s` seconds from now."""
    return await _operation(
        conn,
        _queries.REFUND_BURN,
        idempotency_key,
        original_entry_id,
        points,
        grace_s,
        _json(metadata),
    )


async def transfer_all(
    conn: Conn,
    *,
    idempotency_key: str,
    from_shopper_id: int,
    to_shopper_id: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """Card merge: move every lot (keeping its expiry) and any points debt to another shopper.
    Refused while the source has open holds; the source is marked merged afterwards."""
    return await _operation(
        conn,
        _queries.TRANSFER_ALL,
        idempotency_key,
        from_shopper_id,
        to_shopper_id,
        _json(metadata),
    )


async def settlement_payment(
    conn: Conn,
    *,
    idempotency_key: str,
    partner_id: int,
    amount_micros: int,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """A statement paid: positive when the partner paid the network, negative for the reverse."""
    return await _operation(
        conn,
        _queries.SETTLEMENT_PAYMENT,
        idempotency_key,
        partner_id,
        amount_micros,
        _json(metadata),
    )


async def membership_charge(
    conn: Conn,
    *,
    idempotency_key: str,
    kind: Literal["membership_fee", "membership_refund"],
    partner_id: int,
    fee_micros: int,
    commission_micros: int,
    corrects_entry_id: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> EntryResult:
    """A membership fee the partner collected (it owes the fee minus its commission to the
    network), or a refund of part of one (the reverse, correcting the fee's entry)."""
    return await _operation(
        conn,
        _queries.MEMBERSHIP_CHARGE,
        idempotency_key,
        kind,
        partner_id,
        fee_micros,
        commission_micros,
        corrects_entry_id,
        _json(metadata),
    )


# Workers -----------------------------------------------------------------------------------------


async def release_expired_holds(
    conn: Conn, *, now: datetime, batch_max: int = WORKER_BATCH_MAX
) -> int:
    """Return the points of holds expired at `now`; returns how many holds were released.
    Wallets busy in a request are skipped until the next run."""
    _bounded(batch_max, "batch_max", WORKER_BATCH_MAX)
    released: int = await _call(conn, _queries.RELEASE_EXPIRED_HOLDS, _aware(now, "now"), batch_max)
    return released


async def expire_lots(conn: Conn, *, now: datetime, batch_max: int = WORKER_BATCH_MAX) -> int:
    """Move unspent remainders of lots expired at `now` to breakage; returns lots expired."""
    _bounded(batch_max, "batch_max", WORKER_BATCH_MAX)
    expired: int = await _call(conn, _queries.EXPIRE_LOTS, _aware(now, "now"), batch_max)
    return expired


async def fold_deltas(conn: Conn, *, batch_max: int = ROLLUP_BATCH_MAX) -> int:
    """Fold a batch of queued deltas into the balance rows; returns how many were folded."""
    _bounded(batch_max, "batch_max", ROLLUP_BATCH_MAX)
    folded: int = await _call(conn, _queries.FOLD_DELTAS, batch_max)
    return folded


async def seal_blocks(conn: Conn, *, entries_max: int = SEAL_BATCH_MAX) -> int:
    """Seal committed, unsealed entries into the next hash-chained block; returns how many."""
    _bounded(entries_max, "entries_max", SEAL_BATCH_MAX)
    async with conn.transaction():
        await conn.execute(_queries.SEAL_LOCK)
        taken = await conn.fetch(_queries.SEAL_TAKE, entries_max)
        if not taken:
            return 0
        entry_ids = sorted(row["entry_id"] for row in taken)
        rows = await conn.fetch(_queries.ENTRIES_FOR_HASH, entry_ids)
        assert [row["entry_id"] for row in rows] == entry_ids, "queued entry vanished"
        last = await conn.fetchrow(_queries.LAST_BLOCK)
        block_id = 1 if last is None else last["block_id"] + 1
        prev_hash = _chain.GENESIS_HASH if last is None else bytes(last["hash"])
        digests = [_chain.entry_digest(row) for row in rows]
        digest = _chain.block_hash(block_id, prev_hash, digests)
        await conn.execute(_queries.INSERT_BLOCK, block_id, prev_hash, digest, len(entry_ids))
        await conn.execute(_queries.INSERT_BLOCK_ENTRIES, entry_ids, block_id, digests)
    return len(entry_ids)


# Reads -------------------------------------------------------------------------------------------


async def balance(conn: Conn, account: str, *, at: datetime | None = None) -> int:
    """Exact balance of an account now, or of the entries created up to `at`."""
    _account_name(account)
    value: int = await _call(
        conn, _queries.BALANCE, account, None if at is None else _aware(at, "at")
    )
    return value


async def history(
    conn: Conn,
    account: str,
    *,
    cursor: str | None = None,
    limit: int = HISTORY_LIMIT_DEFAULT,
) -> HistoryPage:
    """An account's postings, newest first, one page at a time (`next_cursor` for the next)."""
    _account_name(account)
    _bounded(limit, "limit", HISTORY_LIMIT_MAX)
    before = _NO_CURSOR if cursor is None else _decode_cursor(cursor)
    rows = await conn.fetch(_queries.HISTORY, account, before, limit + 1)
    items = tuple(
        HistoryItem(
            posting_id=row["posting_id"],
            entry_id=row["entry_id"],
            kind=row["kind"],
            asset=row["asset"],
            amount=row["amount"],
            created_at=row["created_at"],
            corrects_entry_id=row["corrects_entry_id"],
            metadata=msgspec.json.decode(row["metadata"]),
        )
        for row in rows[:limit]
    )
    more = len(rows) > limit
    return HistoryPage(
        items=items, next_cursor=_encode_cursor(items[-1].posting_id) if more else None
    )


async def wallet_summary(
    conn: Conn,
    *,
    shopper_id: int,
    now: datetime,
    expiring_within_s: int = EXPIRING_WITHIN_S_DEFAULT,
) -> WalletSummary:
    """Balance, held points, debt, and the free points expiring within `expiring_within_s`."""
    wallet = await conn.fetchrow(_queries.WALLET, shopper_id)
    until = _aware(now, "now") + timedelta(seconds=expiring_within_s)
    lots = await conn.fetch(_queries.EXPIRING_LOTS, shopper_id, until, EXPIRING_LOTS_MAX)
    return WalletSummary(
        shopper_id=shopper_id,
        balance=0 if wallet is None else wallet["available"],
        held=0 if wallet is None else wallet["held"],
        debt_points=0 if wallet is None else wallet["debt_points"],
        expiring=tuple(
            ExpiringLot(expires_at=r["expires_at"], points=r["points"], partner_id=r["partner_id"])
            for r in lots
        ),
    )


# Transactions ------------------------------------------------------------------------------------

T = TypeVar("T")
_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def run_in_transaction(
    pool: asyncpg.Pool,
    fn: Callable[[Conn], Awaitable[T]],
    *,
    attempts_max: int = RETRY_ATTEMPTS_MAX,
    isolation: Literal["read_committed", "repeatable_read", "serializable"] = "read_committed",
) -> T:
    """Run `fn(conn)` in one transaction, retrying serialization failures and deadlocks up to
    `attempts_max` attempts in all (with jittered backoff); other errors propagate at once."""
    assert 1 <= attempts_max <= RETRY_ATTEMPTS_MAX * 4, attempts_max
    for attempt in range(1, attempts_max + 1):
        try:
            async with pool.acquire() as conn, conn.transaction(isolation=isolation):
                return await fn(conn)
        except _RETRYABLE:
            if attempt == attempts_max:
                raise
        # Jitter spreads the retries of transactions that collided at the same moment.
        await asyncio.sleep(RETRY_BACKOFF_S * attempt * (0.5 + random.random()))  # noqa: S311
    raise AssertionError("unreachable")


# Plumbing ----------------------------------------------------------------------------------------


async def _call(conn: Conn, query: str, *args: Any) -> Any:
    try:
        return await conn.fetchval(query, *args)
    except asyncpg.PostgresError as exc:
        _reraise(exc)


async def _operation(conn: Conn, query: str, *args: Any) -> EntryResult:
    raw = await _call(conn, query, *args)
    result = msgspec.json.decode(raw, type=EntryResult)
    assert sum(p.amount for p in result.postings if p.asset == "PTS") == 0, result
    return result


def _reraise(exc: asyncpg.PostgresError) -> NoReturn:
    domain = from_postgres(exc)
    if domain is None:
        raise exc
    raise domain from exc


def _json(metadata: Mapping[str, Any] | None) -> str:
    return msgspec.json.encode(dict(metadata or {})).decode()


def _reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidArgument(field="reason", reason="required")
    return reason


def _aware(value: datetime, field: str) -> datetime:
    if value.utcoffset() is None:
        raise InvalidArgument(field=field, reason="must be timezone-aware")
    return value


def _aware_or_none(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else _aware(value, field)


def _bounded(value: int, field: str, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise InvalidArgument(field=field, reason=f"must be between 1 and {maximum}")


def _account_name(account: str) -> None:
    if not _ACCOUNT_NAME.match(account):
        raise InvalidArgument(field="account", reason=f"not an account name: {account!r}")


def _encode_cursor(posting_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{posting_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        posting_id = int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error) as exc:
        raise InvalidArgument(field="cursor", reason="not a cursor from this API") from exc
    return posting_id
