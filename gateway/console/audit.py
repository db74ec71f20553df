"""The console's audit log: one append-only row per operator action (migration 0140)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from gateway.console import _queries as q
from gateway.console.users import ConsoleUser
from infra.db import Conn

PAGE_LIMIT = 100


@dataclass(frozen=True)
class Entry:
    audit_id: int
    at: datetime
    actor: str
    role: str
    action: str
    subject: str
    before: Any
    after: Any
    detail: dict[str, Any]


def _json(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


async def record(
    conn: Conn,
    actor: ConsoleUser | str,
    action: str,
    subject: str,
    *,
    before: object = None,
    after: object = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one entry in the caller's transaction: it commits with the action or not at all."""
    name, role = (actor.email, actor.role.value) if isinstance(actor, ConsoleUser) else (actor, "")
    audit_id: int = await conn.fetchval(
        q.INSERT_AUDIT,
        name,
        role,
        action,
        subject,
        _json(before),
        _json(after),
        _json(detail or {}),
    )
    return audit_id


async def page(conn: Conn, *, before_id: int | None, limit: int = PAGE_LIMIT) -> list[Entry]:
    """The newest entries first, older than `before_id` when given."""
    return _entries(await conn.fetch(q.AUDIT_PAGE, before_id, limit))


async def of_subject(conn: Conn, subject: str, *, limit: int = PAGE_LIMIT) -> list[Entry]:
    return _entries(await conn.fetch(q.AUDIT_FOR_SUBJECT, subject, limit))


def _entries(rows: list[asyncpg.Record]) -> list[Entry]:
    return [
        Entry(
            audit_id=row["audit_id"],
            at=row["at"],
            actor=row["actor"],
            role=row["role"],
            action=row["action"],
            subject=row["subject"],
            before=None if row["before"] is None else json.loads(row["before"]),
            after=None if row["after"] is None else json.loads(row["after"]),
            detail=json.loads(row["detail"]),
        )
        for row in rows
    ]
