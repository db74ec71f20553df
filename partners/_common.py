"""Plumbing shared by the partner operations: ledger calls, pricing, the transaction record."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import asyncpg
import msgspec

from infra.db import Conn
from ledger import service as ledger
from ledger.errors import IdempotencyConflict, LedgerError, from_postgres
from partners import queries
from partners.errors import LedgerRefused, NotFound, PartnerRefConflict, PricingNotEffective
from partners.telemetry import timed
from shoppers import service as shoppers

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Pricing:
    version: int
    issue_price_micros: int
    redemption_price_micros: int
    earn_points: int
    earn_spend_minor: int


@contextmanager
def ledger_call(operation: str, partner_ref: str | None = None) -> Iterator[None]:
    """Time a ledger call and carry its domain errors to the gateway with their codes."""
    with timed(operation):
        try:
            yield
        except IdempotencyConflict as exc:
            # Ledger keys derive from partner_ref: a conflict is a concurrent reuse of the ref.
            if partner_ref is None:
                raise LedgerRefused(exc.code, str(exc), {}) from exc
            raise PartnerRefConflict(partner_ref) from exc
        except LedgerError as exc:
            fields: dict[str, Any] = {
                name: value
                for name in ("available", "requested", "held", "remaining")
                if isinstance(value := getattr(exc, name, None), int)
            }
            raise LedgerRefused(exc.code, str(exc), fields) from exc


def atomic(
    operation: Callable[Concatenate[Conn, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Conn, P], Coroutine[Any, Any, T]]:
    """Run an operation in the caller's transaction, or in its own when the caller has none:
    its ledger entries, its record and its event (infra.outbox) commit or vanish together."""

    @functools.wraps(operation)
    async def run(conn: Conn, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if conn.is_in_transaction():
            return await operation(conn, *args, **kwargs)
        async with conn.transaction():
            return await operation(conn, *args, **kwargs)

    return run


LedgerKeyPart = Literal["ref", "network", "hold-settle"]


def ledger_key(partner_id: int, reference: str, *, part: LedgerKeyPart = "ref") -> str:
    """`partner:{id}:{part}:{reference}`. A partner_ref is printable ASCII and may contain
    ':', so it always comes last, after a part naming what the key is for: keys of different
    parts (a purchase, its network-paid entry, a hold's settlement) can never collide."""
    return f"partner:{partner_id}:{part}:{reference}"


def fresh(entry: ledger.EntryResult, partner_ref: str) -> None:
    # A replayed ledger entry means another request of this partner already used the ref.
    if entry.replayed:
        raise PartnerRefConflict(partner_ref)


async def ledger_fetchrow(conn: Conn, query: str, *args: Any) -> asyncpg.Record:
    """One row of a statement of ours that calls ledger functions in SQL (e.g. ledger.earn in
    migration 0085): their domain errors (SQLSTATE CL001) are raised as `ledger.service`
    raises them, for `ledger_call` to translate."""
    try:
        row = await conn.fetchrow(query, *args)
    except asyncpg.PostgresError as exc:
        domain = from_postgres(exc)
        if domain is None:
            raise
        raise domain from exc
    assert row is not None, "the statement returns one row"
    return row


def entry_of(raw: str) -> ledger.EntryResult:
    """The result of a ledger function called in SQL, decoded and checked as `ledger.service`
    does for its own calls."""
    result = msgspec.json.decode(raw, type=ledger.EntryResult)
    assert sum(p.amount for p in result.postings if p.asset == "PTS") == 0, result
    return result


def known(value: int | None) -> int:
    assert value is not None, "the ledger reports the wallet after every shopper operation"
    return value


async def pricing_in_effect(conn: Conn, partner_id: int) -> Pricing:
    row = await conn.fetchrow(queries.PRICING_IN_EFFECT, partner_id)
    if row is None:
        raise PricingNotEffective()
    return pricing_of(row, version_column="version")


def pricing_of(row: asyncpg.Record | Mapping[str, Any], *, version_column: str) -> Pricing:
    """The pricing version in a row whose version column is NULL when none is in effect."""
    if row[version_column] is None:
        raise PricingNotEffective()
    return Pricing(
        version=row[version_column],
        issue_price_micros=row["issue_price_micros"],
        redemption_price_micros=row["redemption_price_micros"],
        earn_points=row["earn_points"],
        earn_spend_minor=row["earn_spend_minor"],
    )


async def summary(conn: Conn, shopper_id: int) -> ledger.WalletSummary:
    with ledger_call("wallet_summary"):
        return await ledger.wallet_summary(conn, shopper_id=shopper_id, now=datetime.now(UTC))


async def ref_free(conn: Conn, partner_id: int, partner_ref: str) -> None:
    if await conn.fetchval(queries.REF_TAKEN, partner_id, partner_ref):
        raise PartnerRefConflict(partner_ref)


async def record(
    conn: Conn,
    *,
    partner_id: int,
    partner_ref: str,
    kind: str,
    status: str,
    holder: shoppers.CardHolder,
    points: int,
    pricing_version: int,
    idempotency_key: str,
    transaction_id: uuid.UUID | None = None,
    amount_minor: int | None = None,
    value_minor: int | None = None,
    original_id: uuid.UUID | None = None,
    ledger_entry_id: int | None = None,
    ledger_hold_id: int | None = None,
    expires_at: datetime | None = None,
    network_points: int = 0,
    network_entry_id: int | None = None,
) -> str:
    """The partner-facing record of an operation; its id is the transaction id.
    `network_points`/`network_entry_id`: a purchase's network campaign credit (paid by
    network:marketing), or what a refund took back of it."""
    transaction_id = transaction_id or uuid.uuid4()
    created_at = await conn.fetchval(
        queries.INSERT_TRANSACTION,
        transaction_id,
        partner_id,
        partner_ref,
        kind,
        status,
        holder.shopper_id,
        holder.card_number,
        points,
        amount_minor,
        value_minor,
        pricing_version,
        original_id,
        ledger_entry_id,
        ledger_hold_id,
        expires_at,
        idempotency_key,
        network_points,
        network_entry_id,
    )
    if created_at is None:  # a concurrent request with the same ref committed first
        raise PartnerRefConflict(partner_ref)
    return str(transaction_id)


def parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        # Not one of our ids: indistinguishable from another partner's, so the same 404.
        raise NotFound("resource") from None


def aware(moment: datetime) -> datetime:
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def metadata_json(metadata: dict[str, Any]) -> str:
    """Ledger metadata as `ledger.service` sends it to its SQL functions."""
    return msgspec.json.encode(metadata).decode()


def event_payload_of(
    shopper_id: int, transaction_id: str, partner_ref: str, points: int, **extra: int | None
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "partner_ref": partner_ref,
        "points": points,
        "shopper_id": shopper_id,
        **extra,
    }
