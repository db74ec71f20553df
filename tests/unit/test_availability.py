"""Which errors mean the database is unreachable or overloaded (503), and which say nothing."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from gateway import availability
from gateway.availability import Kind, classify


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.AdminShutdownError(), Kind.UNREACHABLE),
        (asyncpg.CannotConnectNowError(), Kind.UNREACHABLE),
        (asyncpg.ConnectionDoesNotExistError(), Kind.UNREACHABLE),
        (asyncpg.TooManyConnectionsError(), Kind.UNREACHABLE),
        (asyncpg.InterfaceError("connection has been released back to the pool"), Kind.UNREACHABLE),
        (asyncpg.QueryCanceledError(), Kind.BUSY),
        (asyncpg.LockNotAvailableError(), Kind.BUSY),
        (asyncpg.UniqueViolationError(), None),
        (asyncpg.InterfaceError("another operation is in progress"), None),
        (ConnectionRefusedError(), None),  # not raised by asyncpg: not the database's
        (TimeoutError(), None),
        (ValueError(), None),
    ],
)
def test_classify(exc: BaseException, kind: Kind | None) -> None:
    assert classify(exc) is kind


def test_an_error_raised_from_an_outage_is_one() -> None:
    wrapper = RuntimeError("while posting")
    wrapper.__cause__ = asyncpg.CrashShutdownError()
    assert classify(wrapper) is Kind.UNREACHABLE


async def test_socket_errors_and_timeouts_from_asyncpg_are_unreachable_and_busy() -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as refused:
        await asyncpg.connect(f"postgresql://drill@127.0.0.1:{port}/none", timeout=2)
    assert classify(refused.value) is Kind.UNREACHABLE

    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # never answers
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError) as waited:
            await asyncpg.connect(f"postgresql://drill@127.0.0.1:{port}/none", timeout=0.2)
    finally:
        silent.close()
    assert classify(waited.value) is Kind.BUSY


async def test_an_outage_is_noted_once() -> None:
    state = availability.Availability()
    assert state.outage(asyncpg.ConnectionDoesNotExistError("connection was closed"))
    since = state.down_since_s
    assert since is not None
    assert state.outage(asyncpg.AdminShutdownError("terminating connection"))
    assert state.down_since_s == since
    assert not state.outage(asyncpg.QueryCanceledError())
