"""Health and readiness documents."""

from __future__ import annotations

import msgspec


class Health(msgspec.Struct, kw_only=True):
    status: str


class Readiness(msgspec.Struct, kw_only=True):
    status: str
    database: str
    migrations_pending: list[str]
