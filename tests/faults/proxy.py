"""A small TCP proxy for the network drill: 127.0.0.1 in front of the cluster's Unix socket,
adding latency to every chunk; `reset_one` resets a random live connection (mid
transaction, whatever they are doing)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field

CHUNK_BYTES = 65_536


@dataclass
class Proxy:
    upstream_socket: str
    latency_s: float = 0.002
    seed: int = 3
    port: int = 0
    resets: int = 0
    _server: asyncio.Server | None = None
    _live: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._live):
            _reset(writer)
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    def reset_one(self) -> bool:
        """Reset a random live client connection (RST: the server sees it mid-statement)."""
        if not self._live:
            return False
        _reset(self._rng.choice(sorted(self._live, key=id)))
        self.resets += 1
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream_socket)
        self._live.add(writer)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._live.discard(writer)
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            _reset(writer)
            _reset(up_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(CHUNK_BYTES):
                await asyncio.sleep(self.latency_s)
                writer.write(chunk)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST where the socket is TCP (SO_LINGER 0), else plainly."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_INET:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
