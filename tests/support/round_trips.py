"""Counting a code path's round trips: every asyncpg `Connection` call that talks to the server."""

from __future__ import annotations

from typing import Any

import pytest
from asyncpg.connection import Connection

COUNTED_METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Wrap the counted methods for the test's duration; the counter counts every call."""
    counter = RoundTrips()
    for name in COUNTED_METHODS:
        original = getattr(Connection, name)

        def counting(original: Any = original) -> Any:
            async def method(self: Connection, *args: Any, **kwargs: Any) -> Any:
                counter.count += 1
                return await original(self, *args, **kwargs)

            return method

        monkeypatch.setattr(Connection, name, counting())
    return counter
