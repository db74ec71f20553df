"""What the partner gateway keeps per process: the key box, the opened-key cache, clocks.

The key cache saves the signature guard a database round trip and an AES-GCM open per call:
a key id's row (partner, sealed secret opened, revoked or not, rate limit) is kept for at most
KEY_CACHE_TTL_S after it was read, for at most KEY_CACHE_ENTRIES_MAX key ids. So a revocation,
a new rate limit or a renamed partner takes effect in every process within KEY_CACHE_TTL_S
(and at once in a process that calls `forget`). Unknown key ids are not cached (each costs a
lookup, as before), so a flood of made-up key ids cannot push real keys out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from http_message_signatures import HTTPMessageVerifier

from gateway.rate_limit import LocalCounts
from partners.keybox import KeyBox
from partners.operations import PartnerKey

KEY_CACHE_TTL_S = 2.0
KEY_CACHE_ENTRIES_MAX = 4_096

V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    read_at_s: float


@dataclass
class KeyCache(Generic[V]):
    """A bounded, time-limited map from key id to what the guard derived from the key row."""

    ttl_s: float = KEY_CACHE_TTL_S
    entries_max: int = KEY_CACHE_ENTRIES_MAX
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry[V]] = field(default_factory=dict)

    def get(self, key_id: str) -> V | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if self.clock() - entry.read_at_s >= self.ttl_s:
            del self._entries[key_id]
            return None
        return entry.value

    def put(self, key_id: str, value: V, *, read_at_s: float) -> None:
        """`read_at_s` is the clock before the row was read: the TTL counts from the read."""
        self._entries.pop(key_id, None)
        while len(self._entries) >= self.entries_max:  # insertion order: the oldest read first
            del self._entries[next(iter(self._entries))]
        self._entries[key_id] = _Entry(value, read_at_s)
        assert len(self._entries) <= self.entries_max

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class OpenedKey:
    """A key row with its secret opened and a verifier built for it, ready for any call."""

    key: PartnerKey
    verifier: HTTPMessageVerifier
    hmac_key: bytes = field(repr=False)  # the secret's HMAC key (contracts.signing.secret_bytes)


@dataclass
class PartnerGateway:
    keybox: KeyBox
    keys: KeyCache[OpenedKey] = field(default_factory=KeyCache)
    calls: LocalCounts = field(default_factory=LocalCounts)
    prune_task: asyncio.Task[None] | None = None
    nonces_pruned_at_s: float = 0.0

    def prune_due(self, now_s: float, interval_s: float) -> bool:
        """True at most once per `interval_s` in this process (other processes prune too)."""
        if now_s - self.nonces_pruned_at_s < interval_s:
            return False
        self.nonces_pruned_at_s = now_s
        return True
