"""Plumbing shared by route modules: a transaction around one service call, the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Request

from gateway.state import AppState
from infra.db import Conn

T = TypeVar("T")


async def in_transaction(request: Request[Any, Any, Any], fn: Callable[[Conn], Awaitable[T]]) -> T:
    """Run one service call in its own transaction (reads get a consistent snapshot too)."""
    app_state: AppState = request.app.state.app
    async with app_state.require_pool().acquire() as conn, conn.transaction():
        return await fn(conn)
