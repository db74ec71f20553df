"""The Standard Webhooks message: its body and its signed headers.

The body is built from the outbox row alone (type, occurred_at, payload), so every retry and
replay of a message sends the same bytes. The signature is `standardwebhooks.Webhook.sign`:
`v1,` + base64 HMAC-SHA256 of "webhook-id.webhook-timestamp.body", one per live secret,
space-separated (after a rotation the old and the new secret both sign for 24 h).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from standardwebhooks import Webhook

from contracts import events

CONTENT_TYPE = "application/json"
USER_AGENT = "Coalition-Webhooks/1"


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and a Z, the form the catalogue's timestamps use."""
    assert moment.tzinfo is not None, "timestamps are aware"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(outbox_type: str, occurred_at: datetime, payload: Mapping[str, Any]) -> bytes:
    """`{"type", "timestamp", "data"}` for an outbox event (its public type and data)."""
    public_type = events.public_type(outbox_type)
    assert public_type is not None, f"{outbox_type} is not published"
    document = {
        "type": public_type,
        "timestamp": rfc3339(occurred_at),
        "data": events.public_data(outbox_type, payload),
    }
    return msgspec.json.encode(document)


def signatures(webhook_id: str, timestamp_s: int, content: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, space-separated."""
    assert secrets, "a message is signed by at least one secret"
    moment = datetime.fromtimestamp(timestamp_s, tz=UTC)
    text = content.decode()
    return " ".join(Webhook(secret).sign(webhook_id, moment, text) for secret in secrets)


def headers(
    webhook_id: str, timestamp_s: int, content: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signatures(webhook_id, timestamp_s, content, secrets),
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
    }
