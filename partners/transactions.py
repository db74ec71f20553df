"""A partner's transactions as the partner reads them: one by id, or a page by cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import asyncpg
import msgspec

from contracts.partners import TRANSACTIONS_LIMIT_MAX, Transaction, TransactionPage
from infra.db import Conn
from partners import queries
from partners._common import parse_uuid
from partners.errors import CursorInvalid, NotFound


async def get_transaction(conn: Conn, partner_id: int, transaction_id: str) -> Transaction:
    row = await conn.fetchrow(queries.TRANSACTION, parse_uuid(transaction_id), partner_id)
    if row is None:
        raise NotFound("transaction")
    return _transaction(row)


async def list_transactions(
    conn: Conn, partner_id: int, *, cursor: str | None, limit: int
) -> TransactionPage:
    assert 1 <= limit <= TRANSACTIONS_LIMIT_MAX, limit
    after_created_at, after_id = _decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(
        queries.TRANSACTIONS_PAGE, partner_id, after_created_at, after_id, limit + 1
    )
    items = [_transaction(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return TransactionPage(items=items, next_cursor=next_cursor)


def _transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        transaction_id=str(row["id"]),
        kind=row["kind"],
        partner_ref=row["partner_ref"],
        card_number=row["card_number"],
        points=row["points_captured"] if row["status"] == "captured" else row["points"],
        status=row["status"],
        created_at=row["created_at"],
        amount_minor=row["amount_minor"],
        value_minor=row["value_minor"],
        original_transaction_id=None if row["original_id"] is None else str(row["original_id"]),
    )


_CURSOR_VERSION = "t1"


def _encode_cursor(row: asyncpg.Record) -> str:
    payload = msgspec.json.encode([_CURSOR_VERSION, row["created_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, created_at, row_id = msgspec.json.decode(raw, type=tuple[str, str, str])
        if version != _CURSOR_VERSION:
            raise ValueError(version)
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise CursorInvalid() from None
