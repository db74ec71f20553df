"""OWASP API4, slow clients: `coalition serve` (a real subprocess, as it runs in production)
closes a connection whose headers or body arrive too slowly, and an idle keep-alive one.

Each client is bounded: 127.0.0.1 only, one connection, a byte every DRIP_S, at most
BYTES_MAX bytes. The bounds asserted are generous multiples of the configured timeouts (they
say "disconnected by the server", not how fast)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Server

READ_TIMEOUT_S = 2.0
KEEP_ALIVE_TIMEOUT_S = 2
DRIP_S = 0.25
BYTES_MAX = 400  # 100 s of dripping: far beyond the bound below
CLOSED_WITHIN_S = 15.0


@pytest.fixture(scope="module")
async def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    work = Path(tmp_path_factory.mktemp("slow"))
    running = Server(
        database_url,
        work,
        work / "server.log",
        env_extra={"COALITION_WORKERS": "0"},
        serve_args=(
            "--request-read-timeout",
            str(READ_TIMEOUT_S),
            "--keep-alive-timeout",
            str(KEEP_ALIVE_TIMEOUT_S),
        ),
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def _drip(server: Server, head: bytes, slow: bytes) -> tuple[float, bytes]:
    """Send `head` at once, then `slow` a byte at a time; the seconds until the server closed
    the connection, and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    writer.write(head)
    answered = b""
    try:
        for byte in slow[:BYTES_MAX]:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=DRIP_S)
            except TimeoutError:
                continue
            answered += chunk
            if not chunk:  # EOF: the server closed
                break
        else:
            raise AssertionError("the server kept the slow connection open")
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started, answered


async def test_headers_sent_slowly_are_cut_off(server: Server) -> None:
    slow = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 1_000
    elapsed_s, answered = await _drip(server, b"", slow)
    assert elapsed_s < CLOSED_WITHIN_S
    assert b"200 OK" not in answered


async def test_a_body_sent_slowly_is_cut_off(server: Server) -> None:
    head = (
        b"POST /v1/purchases HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    elapsed_s, _ = await _drip(server, head, b"{" + b" " * 4_999)
    assert elapsed_s < CLOSED_WITHIN_S


async def test_a_prompt_client_is_served_and_an_idle_connection_closed(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=CLOSED_WITHIN_S)
        assert status.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        async with asyncio.timeout(CLOSED_WITHIN_S):
            while await reader.read(4096):  # the rest of the answer, then EOF when idle
                pass
        assert time.monotonic() - started < CLOSED_WITHIN_S
    finally:
        writer.close()


def test_serve_documents_its_timeouts() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "--request-read-timeout" in shown
    assert "--keep-alive-timeout" in shown
