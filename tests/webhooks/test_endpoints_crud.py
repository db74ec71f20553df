"""Webhook endpoints over the signed partner API: create, read, list, change, delete, rotate;
the secret shown once; another partner's ids answer 404 everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from contracts.webhooks import ENDPOINTS_PER_PARTNER_MAX
from gateway.tokens import SigningKey
from partners.keybox import load_or_create
from partners.webhooks import secrets
from tests.support.partner_network import onboard
from tests.webhooks.conftest import PUBLIC_URL, Api

BASE = "/v1/webhook-endpoints"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def shop_a(http: httpx.AsyncClient, base_url: str, signing_key: SigningKey) -> Api:
    return Api(http, base_url, await onboard(http, signing_key, "hooks-a"))


@pytest.fixture(scope="module")
async def shop_b(http: httpx.AsyncClient, base_url: str, signing_key: SigningKey) -> Api:
    return Api(http, base_url, await onboard(http, signing_key, "hooks-b"))


async def test_a_round_trip_create_read_change_delete(shop_a: Api) -> None:
    created = await shop_a.create(
        events=["purchase.refunded", "purchase.created", "purchase.created"],
        description="orders service",
    )
    assert created["id"].startswith("ep_")
    assert created["secret"].startswith("whsec_")
    assert len(secrets.key_bytes(created["secret"])) == secrets.SECRET_BYTES
    # each type once, in catalogue order
    assert created["events"] == ["purchase.created", "purchase.refunded"]
    assert created["url"] == PUBLIC_URL
    assert created["description"] == "orders service"
    assert created["enabled"] is True
    assert created["disabled_reason"] is None

    path = f"{BASE}/{created['id']}"
    read = await shop_a.call("GET", path)
    assert read.status_code == 200, read.text
    assert "secret" not in read.json()
    assert {k: v for k, v in created.items() if k != "secret"} == read.json()

    changed = await shop_a.call(
        "PATCH",
        path,
        {"url": "https://93.184.215.15/v2", "events": ["hold.expired"], "description": ""},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://93.184.215.15/v2"
    assert changed.json()["events"] == ["hold.expired"]
    assert changed.json()["description"] == ""
    assert "secret" not in changed.json()
    assert (await shop_a.call("GET", path)).json() == changed.json()

    deleted = await shop_a.call("DELETE", path, idempotency_key="delete-1")
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    again = await shop_a.call("DELETE", path, idempotency_key="delete-1")
    assert again.status_code == 204, again.text
    assert again.headers["idempotency-replayed"] == "true"
    gone = await shop_a.call("GET", path)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_found"


async def test_the_secret_is_shown_once_and_stored_sealed(
    shop_a: Api, db: asyncpg.Connection, data_dir: Path
) -> None:
    created = await shop_a.create()
    assert "no-store" in (await _create_raw(shop_a)).headers["cache-control"]
    listed = await shop_a.call("GET", BASE + "?limit=200")
    assert all("secret" not in item for item in listed.json()["items"])
    assert created["secret"] not in listed.text
    assert created["secret"] not in (await shop_a.call("GET", f"{BASE}/{created['id']}")).text
    row = await db.fetchrow(
        """SELECT s.secret_id, s.secret_sealed, s.expires_at FROM webhooks.endpoint_secret s
           JOIN webhooks.endpoint e USING (endpoint_id) WHERE e.public_id = $1""",
        created["id"],
    )
    assert row is not None
    assert row["expires_at"] is None
    assert created["secret"].encode() not in bytes(row["secret_sealed"])
    box = load_or_create(data_dir, None)  # the server's master key, in its data dir
    assert (
        secrets.open_sealed(box, row["secret_id"], bytes(row["secret_sealed"]))
        == (created["secret"])
    )


async def _create_raw(api: Api) -> httpx.Response:
    answer = await api.call("POST", BASE, {"url": PUBLIC_URL, "events": ["hold.voided"]})
    assert answer.status_code == 201, answer.text
    return answer


async def test_a_replayed_create_answers_the_same_endpoint_and_makes_one(
    shop_a: Api, db: asyncpg.Connection
) -> None:
    body = {"url": PUBLIC_URL, "events": ["statement.ready"], "description": "replayed"}
    first = await shop_a.call("POST", BASE, body, idempotency_key="create-once")
    second = await shop_a.call("POST", BASE, body, idempotency_key="create-once")
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotency-replayed"] == "true"
    assert first.json() == second.json()
    count = await db.fetchval(
        "SELECT count(*) FROM webhooks.endpoint WHERE description = 'replayed'"
    )
    assert count == 1


async def test_patch_and_delete_need_an_idempotency_key(shop_a: Api) -> None:
    created = await shop_a.create()
    path = f"{BASE}/{created['id']}"
    for method, body in (("PATCH", {"description": "x"}), ("DELETE", None)):
        answer = await shop_a.call(method, path, body, idempotency_key=None)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "idempotency_key_required"
    assert (await shop_a.call("GET", path)).json()["description"] == ""


async def test_disabling_and_enabling(shop_a: Api, db: asyncpg.Connection) -> None:
    created = await shop_a.create()
    path = f"{BASE}/{created['id']}"
    disabled = await shop_a.call("PATCH", path, {"enabled": False})
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabled_reason"] == "partner"
    # as the delivery worker leaves an endpoint it disabled for failing
    await db.execute(
        """UPDATE webhooks.endpoint SET disabled_reason = 'failing',
           failing_since = now() - interval '5 days' WHERE public_id = $1""",
        created["id"],
    )
    described = await shop_a.call("PATCH", path, {"description": "still off"})
    assert described.json()["enabled"] is False
    assert described.json()["disabled_reason"] == "failing"
    enabled = await shop_a.call("PATCH", path, {"enabled": True})
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None
    assert enabled.json()["failing_since"] is None
    # enabling an enabled endpoint keeps its failure run (it cannot reset the clock)
    await db.execute(
        "UPDATE webhooks.endpoint SET failing_since = now() WHERE public_id = $1", created["id"]
    )
    kept = await shop_a.call("PATCH", path, {"enabled": True})
    assert kept.json()["failing_since"] is not None


async def test_unknown_event_types_are_refused_with_their_code(
    shop_a: Api, db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT count(*) FROM webhooks.endpoint")
    answer = await shop_a.call("POST", BASE, {"url": PUBLIC_URL, "events": ["purchase.made"]})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == "webhook_event_type_unknown"
    assert "purchase.made" in answer.json()["detail"]
    internal = await shop_a.call("POST", BASE, {"url": PUBLIC_URL, "events": ["tier.changed"]})
    assert internal.json()["code"] == "webhook_event_type_unknown"
    created = await shop_a.create()
    patched = await shop_a.call(
        "PATCH", f"{BASE}/{created['id']}", {"events": ["hold.voided", "nope"]}
    )
    assert patched.status_code == 422
    assert patched.json()["code"] == "webhook_event_type_unknown"
    assert await db.fetchval("SELECT count(*) FROM webhooks.endpoint") == before + 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL},
        {"url": PUBLIC_URL, "events": ["hold.voided"], "colour": "red"},
        {"url": PUBLIC_URL, "events": ["hold.voided"], "description": "x" * 501},
    ],
    ids=["no-events", "events-missing", "unknown-field", "description-long"],
)
async def test_malformed_bodies_are_validation_problems(shop_a: Api, body: object) -> None:
    answer = await shop_a.call("POST", BASE, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "validation_failed"


async def test_listing_pages_through_the_partners_endpoints_only(
    shop_b: Api, signing_key: SigningKey, http: httpx.AsyncClient, base_url: str
) -> None:
    shop_c = Api(http, base_url, await onboard(http, signing_key, "hooks-c"))
    made = [(await shop_c.create(description=f"n{n}"))["id"] for n in range(5)]
    await shop_b.create()  # someone else's
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await shop_c.call("GET", BASE + query)
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 2
        seen += [item["id"] for item in page.json()["items"]]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 3
    bad = await shop_c.call("GET", BASE + "?cursor=bm90LW91cnM")
    assert bad.status_code == 400
    assert bad.json()["code"] == "cursor_invalid"


async def test_a_partner_has_at_most_the_limit_of_endpoints(
    signing_key: SigningKey, http: httpx.AsyncClient, base_url: str
) -> None:
    shop = Api(http, base_url, await onboard(http, signing_key, "hooks-many"))
    for _ in range(ENDPOINTS_PER_PARTNER_MAX):
        await shop.create()
    refused = await shop.call("POST", BASE, {"url": PUBLIC_URL, "events": ["hold.voided"]})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "webhook_endpoint_limit_reached"
    assert refused.json()["endpoints_max"] == ENDPOINTS_PER_PARTNER_MAX
    first = (await shop.call("GET", BASE + "?limit=1")).json()["items"][0]
    assert (await shop.call("DELETE", f"{BASE}/{first['id']}")).status_code == 204
    await shop.create()


async def test_rotation_keeps_the_old_secret_signing_for_24_hours(
    shop_a: Api, db: asyncpg.Connection
) -> None:
    created = await shop_a.create()
    path = f"{BASE}/{created['id']}/rotate-secret"
    rotated = await shop_a.call("POST", path)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    body = rotated.json()
    assert body["endpoint_id"] == created["id"]
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    expires = datetime.fromisoformat(body["previous_expires_at"])
    made = datetime.fromisoformat(body["created_at"])
    assert expires - made == timedelta(seconds=secrets.ROTATION_OVERLAP_S)

    rows = await _secrets(db, created["id"])
    assert [r["signing"] for r in rows] == [True, True]
    assert rows[1]["expires_at"] is None
    # the rotation's now() is the new secret's created_at (one transaction)
    assert rows[0]["expires_at"] - rows[1]["created_at"] == timedelta(hours=24)

    # a second rotation: the overlapping one stops now, the current one overlaps
    second = await shop_a.call("POST", path)
    assert second.json()["secret"] not in (created["secret"], body["secret"])
    rows = await _secrets(db, created["id"])
    assert [r["signing"] for r in rows] == [False, True, True]
    assert rows[0]["expires_at"] == rows[2]["created_at"]
    assert rows[1]["expires_at"] - rows[2]["created_at"] == timedelta(hours=24)
    assert rows[2]["expires_at"] is None
    endpoint = await shop_a.call("GET", f"{BASE}/{created['id']}")
    assert second.json()["secret"] not in endpoint.text


async def _secrets(db: asyncpg.Connection, public_id: str) -> list[asyncpg.Record]:
    """An endpoint's secrets, oldest first; `signing` as the delivery worker chooses them."""
    return await db.fetch(
        """SELECT s.created_at, s.expires_at,
                  s.expires_at IS NULL OR s.expires_at > now() AS signing
           FROM webhooks.endpoint_secret s JOIN webhooks.endpoint e USING (endpoint_id)
           WHERE e.public_id = $1 ORDER BY s.created_at""",
        public_id,
    )


async def test_another_partners_endpoint_answers_404_on_every_route(
    shop_a: Api, shop_b: Api, db: asyncpg.Connection
) -> None:
    created = await shop_a.create()
    path = f"{BASE}/{created['id']}"
    message = "msg_" + "a" * 24
    attempts = [
        ("GET", path, None),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("POST", f"{path}/rotate-secret", None),
        ("GET", f"{path}/deliveries", None),
        ("GET", f"{path}/deliveries/{message}", None),
        ("POST", f"{path}/deliveries/{message}/retry", None),
        ("POST", f"{path}/replay", {"since": datetime.now().astimezone().isoformat()}),
    ]
    secrets_before = await db.fetchval("SELECT count(*) FROM webhooks.endpoint_secret")
    for method, route, body in attempts:
        for who, target in ((shop_b, route), (shop_a, route.replace(created["id"], "ep_x"))):
            answer = await who.call(method, target, body)
            assert answer.status_code == 404, (method, target, answer.text)
            assert answer.json()["code"] == "not_found"
    unchanged = await shop_a.call("GET", path)
    assert unchanged.json() == {k: v for k, v in created.items() if k != "secret"}
    assert await db.fetchval("SELECT count(*) FROM webhooks.endpoint_secret") == secrets_before
    listed = await shop_b.call("GET", BASE + "?limit=200")
    assert created["id"] not in listed.text
