"""Open-loop load: requests at a constant arrival rate, latency from the intended send time.

A closed loop (wrk) sends the next request only when a connection is free, so a server stall
also stalls the sender and the stalled time never shows in the latencies (coordinated omission).
Here request i is due at `start + i / rate_per_s` whatever happened before; its latency is its
completion minus that due time. A request that waits for a free connection, or is dispatched
late because the event loop was busy, is charged that wait: it is counted as `late`.

The scheduler takes the sender as a callable so tests/unit can drive it with a local socket
server; the bench passes `RawConnections.send` (pre-signed HTTP/1.1 requests over keep-alive
sockets to 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

# A dispatch this much after its due time counts as late (the event loop's own jitter is below).
LATE_AFTER_S = 0.001
PERCENTILES = (50.0, 99.0, 99.9)

Send = Callable[[int], Awaitable[int]]  # request index -> HTTP status (0: no answer)
Clock = Callable[[], float]


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    due_s: float  # intended send time, seconds after the run's start
    dispatched_s: float  # when the sender actually got it
    done_s: float
    status: int

    @property
    def latency_s(self) -> float:
        return self.done_s - self.due_s


class OpenLoopResult(msgspec.Struct, frozen=True, kw_only=True):
    rate_per_s: float  # asked for
    seconds: float
    samples: list[Sample]
    late: int  # dispatched more than LATE_AFTER_S after their due time
    elapsed_s: float  # first due time to last completion

    @property
    def achieved_per_s(self) -> float:
        """Completed requests over the time the schedule spanned (or the run, if longer)."""
        span_s = max(self.seconds, self.elapsed_s)
        return len(self.samples) / span_s if span_s > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        return percentile_of([s.latency_s * 1000 for s in self.samples], percentile)


def due_times_s(rate_per_s: float, seconds: float) -> list[float]:
    """Request i's intended send time: i / rate, for every i due before `seconds`."""
    if rate_per_s <= 0 or seconds <= 0:
        raise ValueError("rate_per_s and seconds must be positive")
    count = math.floor(rate_per_s * seconds)
    return [i / rate_per_s for i in range(count)]


def percentile_of(values: Sequence[float], percentile: float) -> float:
    """Nearest-rank percentile (no interpolation: p99.9 of 1,000 values is the largest)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = math.ceil(round(percentile / 100 * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


async def run(
    send: Send,
    *,
    rate_per_s: float,
    seconds: float,
    in_flight_max: int,
    clock: Clock = time.monotonic,
) -> OpenLoopResult:
    """Send request i at its due time, at most `in_flight_max` at once; wait for all answers.

    When every slot is busy the request waits for one, and that wait counts in its latency.
    """
    dues = due_times_s(rate_per_s, seconds)
    slots = asyncio.Semaphore(in_flight_max)
    samples: list[Sample] = []
    late = 0
    start = clock()

    async def one(index: int, due_s: float) -> None:
        nonlocal late
        async with slots:
            dispatched_s = clock() - start
            if dispatched_s - due_s > LATE_AFTER_S:
                late += 1
            status = await send(index)
            samples.append(
                Sample(
                    index=index,
                    due_s=due_s,
                    dispatched_s=dispatched_s,
                    done_s=clock() - start,
                    status=status,
                )
            )

    tasks: list[asyncio.Task[None]] = []
    for index, due_s in enumerate(dues):
        wait_s = due_s - (clock() - start)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        tasks.append(asyncio.create_task(one(index, due_s)))
    await asyncio.gather(*tasks)
    samples.sort(key=lambda s: s.index)
    elapsed_s = max((s.done_s for s in samples), default=0.0)
    return OpenLoopResult(
        rate_per_s=rate_per_s, seconds=seconds, samples=samples, late=late, elapsed_s=elapsed_s
    )


class RawConnections:
    """Keep-alive HTTP/1.1 sockets to one loopback server, sending pre-built request bytes.

    `send(i)` writes `requests[i]` on a free connection and reads one response (status line,
    headers, a Content-Length body); a broken connection is reopened once, then answers 0.
    """

    def __init__(self, host: str, port: int, requests: Sequence[bytes], size: int) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("open-loop traffic goes to loopback only")
        self._host, self._port, self._requests = host, port, requests
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(size):
            self._free.put_nowait(None)  # opened on first use

    async def send(self, index: int) -> int:
        status, _ = await self.exchange(self._requests[index])
        return status

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send `raw` on a free connection: (status, body); (0, b"") when none answered."""
        conn = await self._free.get()
        answer = (0, b"")
        try:
            for _attempt in range(2):
                if conn is None:
                    conn = await asyncio.open_connection(self._host, self._port)
                try:
                    answer = await _exchange(conn, raw)
                    break
                except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                    conn[1].close()
                    conn = None
        finally:
            self._free.put_nowait(conn)
        return answer

    async def close(self) -> None:
        while not self._free.empty():
            conn = self._free.get_nowait()
            if conn is not None:
                conn[1].close()


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
) -> tuple[int, bytes]:
    reader, writer = conn
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length) if length else b""
