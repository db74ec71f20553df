"""Opaque page cursors over an id: `version` + the last id seen, urlsafe base64 without padding.

The version names the list (a campaigns cursor is refused by the challenges list) and lets a
list change its cursor later. Decoding answers None for anything not made here, so each list
raises its own `cursor_invalid` error.
"""

from __future__ import annotations

import base64
import binascii

ID_MAX = 2**63 - 1  # a PostgreSQL bigint: a larger id would fail in the query, not here


def encode_id(version: str, row_id: int) -> str:
    assert 0 <= row_id <= ID_MAX, row_id
    raw = f"{version}{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_id(version: str, cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(version):
            return None
        row_id = int(text[len(version) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return row_id if 0 <= row_id <= ID_MAX else None
