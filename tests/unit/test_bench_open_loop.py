"""The open-loop scheduler: due times honoured, a stall charged to every request it delays.

No assertion on speed: only lower bounds that a forced stall makes certain (a request cannot
finish before the stall ends) and orderings (nothing is sent before its due time).
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.bench import _open_loop

RATE_PER_S = 100.0
SECONDS = 0.2  # 20 requests, due every 10 ms
STALL_S = 0.15


def test_due_times_are_constant_arrivals() -> None:
    dues = _open_loop.due_times_s(RATE_PER_S, SECONDS)
    assert len(dues) == 20
    assert dues[0] == 0.0
    assert dues[7] == pytest.approx(0.07)
    with pytest.raises(ValueError, match="positive"):
        _open_loop.due_times_s(0, 1)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert _open_loop.percentile_of(values, 50) == 500.0
    assert _open_loop.percentile_of(values, 99) == 990.0
    assert _open_loop.percentile_of(values, 99.9) == 999.0
    assert _open_loop.percentile_of([], 99) == 0.0


async def _stalling_server(stall_index: int) -> tuple[asyncio.Server, int]:
    """A loopback HTTP/1.1 server answering 201; request `stall_index` (its body) waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(4)
                if int(body) == stall_index:
                    await asyncio.sleep(STALL_S)
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _request(index: int) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n" + f"{index:04d}".encode()


async def test_a_stall_is_charged_from_the_intended_send_time() -> None:
    stall_index = 3
    server, port = await _stalling_server(stall_index)
    requests = [_request(i) for i in range(20)]
    connections = _open_loop.RawConnections("127.0.0.1", port, requests, size=1)
    try:
        result = await _open_loop.run(
            connections.send, rate_per_s=RATE_PER_S, seconds=SECONDS, in_flight_max=1
        )
    finally:
        await connections.close()
        server.close()
        await server.wait_closed()
    assert [s.index for s in result.samples] == list(range(20))
    assert all(s.status == 201 for s in result.samples)
    # Never sent early: each dispatch is at or after its due time.
    assert all(s.dispatched_s >= s.due_s for s in result.samples)
    stalled = result.samples[stall_index]
    stall_end_s = stalled.dispatched_s + STALL_S
    # Every request due during the stall waited for the one connection: it was dispatched late
    # and its latency counts from its due time, so it includes the rest of the stall.
    delayed = [s for s in result.samples if stalled.due_s < s.due_s < stall_end_s - 0.02]
    assert len(delayed) >= 10
    for s in delayed:
        assert s.dispatched_s >= stall_end_s
        assert s.latency_s >= stall_end_s - s.due_s
    assert result.late >= len(delayed)
    # p99 reflects the stall (a closed loop would report each delayed request's service time).
    assert result.latency_ms(99) >= STALL_S * 1000
    assert result.achieved_per_s > 0


async def test_no_answer_counts_as_status_zero() -> None:
    async def refuse(_: int) -> int:
        return 0

    result = await _open_loop.run(refuse, rate_per_s=50, seconds=0.1, in_flight_max=4)
    assert [s.status for s in result.samples] == [0] * 5
