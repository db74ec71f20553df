"""The message's body and headers: byte-stable, signed per live secret as Standard Webhooks
says (checked with `standardwebhooks`, and the signature base recomputed by hand)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from datetime import UTC, datetime, timedelta, timezone

from standardwebhooks import Webhook

from partners.webhooks import delivery, secrets, signing, ssrf

PAYLOAD = {
    "transaction_id": "42",
    "partner_ref": "r-1",
    "shopper_id": 7,
    "points": 12,
    "amount_minor": 1_250,
    "internal_only": "dropped",
}


def test_the_body_is_the_public_document_and_the_same_bytes_every_time() -> None:
    occurred = datetime(2026, 12, 7, 6, 0, 1, 5, tzinfo=timezone(timedelta(hours=3)))
    first = signing.body("purchase.recorded", occurred, PAYLOAD)
    assert first == signing.body("purchase.recorded", occurred, dict(reversed(PAYLOAD.items())))
    document = json.loads(first)
    assert document["type"] == "purchase.created"
    assert document["timestamp"] == "2026-12-07T03:00:01.000005Z"
    assert "internal_only" not in document["data"]


def test_each_live_secret_signs_id_timestamp_and_body() -> None:
    old, new = secrets.new_secret(), secrets.new_secret()
    content = signing.body("purchase.recorded", datetime.now(UTC), PAYLOAD)
    now_s = int(datetime.now(UTC).timestamp())
    headers = signing.headers("msg_abc", now_s, content, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    expected = [
        "v1,"
        + base64.b64encode(
            hmac.new(
                secrets.key_bytes(s), f"msg_abc.{now_s}.".encode() + content, hashlib.sha256
            ).digest()
        ).decode()
        for s in (new, old)
    ]
    assert signatures == expected
    for secret in (old, new):
        Webhook(secret).verify(content, headers)


def test_a_pinned_request_names_the_address_and_keeps_the_host_for_host_header_and_sni() -> None:
    target = ssrf.Target(
        url="https://hooks.example.com/in?x=1",
        scheme="https",
        host="hooks.example.com",
        port=443,
        addresses=(ipaddress.ip_address("93.184.216.34"),),
    )
    request = delivery.pinned(target)
    assert request.url == "https://93.184.216.34:443/in?x=1"
    assert request.host_header == "hooks.example.com"
    assert request.sni_hostname == "hooks.example.com"
    plain = delivery.pinned(
        ssrf.Target(
            url="http://127.0.0.1:8080",
            scheme="http",
            host="127.0.0.1",
            port=8080,
            addresses=(ipaddress.ip_address("127.0.0.1"),),
        )
    )
    assert (plain.url, plain.host_header, plain.sni_hostname) == (
        "http://127.0.0.1:8080/",
        "127.0.0.1:8080",
        None,
    )
