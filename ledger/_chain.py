"""Hash chain of sealed blocks: the canonical bytes of an entry and the hash of a block."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

GENESIS_HASH = bytes(32)
HASHED_FIELDS = (
    "entry_id",
    "kind",
    "idempotency_key",
    "shopper_id",
    "partner_id",
    "corrects_entry_id",
    "args",
    "metadata",
    "created_us",
    "postings",
)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def entry_digest(row: Row) -> bytes:
    """sha256 of one entry with its postings (a row of _queries.ENTRIES_FOR_HASH)."""
    canonical = msgspec.json.encode([row[field] for field in HASHED_FIELDS])
    return hashlib.sha256(canonical).digest()


def block_hash(block_id: int, prev_hash: bytes, entry_digests: Iterable[bytes]) -> bytes:
    """sha256 over the previous block's hash, this block's number and its entries in order."""
    assert len(prev_hash) == 32, prev_hash
    h = hashlib.sha256()
    h.update(prev_hash)
    h.update(block_id.to_bytes(8, "big"))
    for digest in entry_digests:
        h.update(digest)
    return h.digest()
