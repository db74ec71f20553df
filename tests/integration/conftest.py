"""Fixtures shared by integration test modules (the session's database ones are in tests/)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.ledger_twins import twin_databases
from tests.support.round_trips import RoundTrips, count_round_trips


@pytest.fixture(scope="module")
async def twin_dsns(server_dsn: str, template_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A reference and a current database (tests/support/ledger_twins.py); template_dsn: the
    template exists."""
    async with twin_databases(server_dsn) as dsns:
        yield dsns


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Counts asyncpg Connection calls (tests/support/round_trips.py) while the test runs."""
    return count_round_trips(monkeypatch)
