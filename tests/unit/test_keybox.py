"""API secrets are sealed under the master key, bound to their key id."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from partners.keybox import KeyBox, MasterKeyInvalid, load_or_create, parse_master_key


def test_seal_and_open_round_trip_bound_to_the_key_id() -> None:
    box = KeyBox(b"k" * 32)
    sealed = box.seal("pk_a", "sk_secret")
    assert b"sk_secret" not in sealed
    assert box.open("pk_a", sealed) == "sk_secret"
    with pytest.raises(InvalidTag):
        box.open("pk_b", sealed)
    with pytest.raises(InvalidTag):
        KeyBox(b"x" * 32).open("pk_a", sealed)
    assert "k" * 8 not in repr(box)


def test_master_key_formats() -> None:
    raw = bytes(range(32))
    assert parse_master_key(raw.hex()) == raw
    assert parse_master_key(base64.b64encode(raw).decode()) == raw
    assert parse_master_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    with pytest.raises(MasterKeyInvalid):
        parse_master_key("too-short")


def test_a_dev_key_is_created_once_owner_only(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, None)
    sealed = first.seal("pk_a", "sk_1")
    assert load_or_create(tmp_path, None).open("pk_a", sealed) == "sk_1"
    assert (tmp_path / "master-key").stat().st_mode & 0o077 == 0
