"""Fixtures shared by integration test modules (the session's database ones are in tests/)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.ledger_twins import twin_databases


@pytest.fixture(scope="module")
async def twin_dsns(server_dsn: str, template_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A reference and a current database (tests/support/ledger_twins.py); template_dsn: the
    template exists."""
    async with twin_databases(server_dsn) as dsns:
        yield dsns
