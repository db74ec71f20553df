"""The delivery worker on real PostgreSQL and a real local receiver: retries on the schedule,
signatures that `standardwebhooks` verifies, manual tries, leases, 410 and failing endpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import asyncpg
import pytest
from standardwebhooks import Webhook

from partners.webhooks import delivery
from partners.webhooks.telemetry import WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINTS_DISABLED
from tests.support import program
from tests.webhooks.endpoints import add_endpoint, network_box, rotate
from tests.webhooks.receiver import receiving
from tests.webhooks.support import attempts, state_of, worker_for


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("webhooks-data"))


async def shop_with_card(pool: asyncpg.Pool, slug: str) -> tuple[int, str]:
    partner_id = await program.partner(pool, slug)
    holder = await program.shopper(pool, partner_id)
    return partner_id, holder.card_number


async def test_a_message_is_retried_until_a_2xx_with_the_same_id_body_and_valid_signatures(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "retry-shop")
    with receiving(lambda tries: 500 if tries <= 2 else 204) as receiver:
        async with pool.acquire() as conn:
            endpoint_id, secret = await add_endpoint(
                conn, network_box(data_dir), partner_id, receiver.url
            )
        purchase = await program.buy(pool, partner_id, card, 1_250)
        delivered_before = WEBHOOK_DELIVERIES.labels("delivered")._value.get()
        retried_before = WEBHOOK_DELIVERIES.labels("failed_attempt")._value.get()
        worker = worker_for(data_dir, schedule_s=(0, 0, 0))
        assert await worker.fan_out(pool) == 1
        await worker.deliver(pool)  # retries at once: the schedule is all zeros

    (message,) = await state_of(pool, endpoint_id)
    assert message["state"] == "delivered"
    assert message["attempts_made"] == 3
    tries = await attempts(pool, message["message_id"])
    assert [t["response_status"] for t in tries] == [500, 500, 204]
    assert {t["trigger"] for t in tries} == {"scheduled"}
    assert WEBHOOK_DELIVERIES.labels("delivered")._value.get() == delivered_before + 1
    assert WEBHOOK_DELIVERIES.labels("failed_attempt")._value.get() == retried_before + 2
    assert tries[0]["response_body"] == '{"error": "try again"}'

    assert len(receiver.requests) == 3
    assert {r.webhook_id for r in receiver.requests} == {message["public_id"]}
    assert len({r.body for r in receiver.requests}) == 1  # byte-stable across retries
    for request in receiver.requests:
        document = Webhook(secret).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
        assert request.host_header == f"127.0.0.1:{receiver.port}"
    assert document["type"] == "purchase.created"
    assert document["data"]["transaction_id"] == purchase.transaction_id
    assert document["data"]["amount_minor"] == 1_250
    assert document["timestamp"].endswith("Z")


async def test_after_a_rotation_both_secrets_sign_and_either_verifies(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "rotate-shop")
    box = network_box(data_dir)
    with receiving() as receiver:
        async with pool.acquire() as conn:
            endpoint_id, old = await add_endpoint(conn, box, partner_id, receiver.url)
            new = await rotate(conn, box, endpoint_id)
        await program.buy(pool, partner_id, card, 500)
        worker = worker_for(data_dir)
        await worker.fan_out(pool)
        await worker.deliver(pool)
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(f"whsec_{'A' * 43}=").verify(request.body, request.headers)


async def test_the_last_scheduled_failure_fails_the_message_and_a_manual_try_is_one_try(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "fail-shop")
    with receiving(lambda _: 503) as receiver:
        async with pool.acquire() as conn:
            endpoint_id, _ = await add_endpoint(
                conn, network_box(data_dir), partner_id, receiver.url
            )
        await program.buy(pool, partner_id, card, 700)
        worker = worker_for(data_dir, schedule_s=(0, 0))
        await worker.fan_out(pool)
        await worker.deliver(pool)
        (message,) = await state_of(pool, endpoint_id)
        assert (message["state"], message["attempts_made"]) == ("failed", 2)
        failing_since = await pool.fetchval(
            "SELECT failing_since FROM webhooks.endpoint WHERE endpoint_id = $1", endpoint_id
        )
        assert failing_since is not None

        # What POST .../retry writes: the same row back to pending, recorded as manual.
        await pool.execute(
            "UPDATE webhooks.message SET state = 'pending', next_trigger = 'manual',"
            " next_attempt_at = now() WHERE message_id = $1",
            message["message_id"],
        )
        await worker.deliver(pool)
    (after,) = await state_of(pool, endpoint_id)
    assert (after["state"], after["attempts_made"]) == ("failed", 3)
    tries = await attempts(pool, message["message_id"])
    assert [t["trigger"] for t in tries] == ["scheduled", "scheduled", "manual"]
    assert len(receiver.requests) == 3
    assert failing_since == await pool.fetchval(  # the run of failures started once
        "SELECT failing_since FROM webhooks.endpoint WHERE endpoint_id = $1", endpoint_id
    )


async def test_a_success_ends_the_endpoints_run_of_failures(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "recover-shop")
    with receiving() as receiver:
        async with pool.acquire() as conn:
            endpoint_id, _ = await add_endpoint(
                conn, network_box(data_dir), partner_id, receiver.url
            )
            await conn.execute(
                "UPDATE webhooks.endpoint SET failing_since = now() - interval '2 days'"
                " WHERE endpoint_id = $1",
                endpoint_id,
            )
        await program.buy(pool, partner_id, card, 700)
        worker = worker_for(data_dir)
        await worker.fan_out(pool)
        await worker.deliver(pool)
    row = await pool.fetchrow(
        "SELECT enabled, failing_since FROM webhooks.endpoint WHERE endpoint_id = $1", endpoint_id
    )
    assert row is not None
    assert (row["enabled"], row["failing_since"]) == (True, None)
    assert len(receiver.requests) == 1


async def test_an_endpoint_failing_for_five_days_is_disabled_and_the_operator_told(
    pool: asyncpg.Pool, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    partner_id, card = await shop_with_card(pool, "dead-shop")
    with receiving(lambda _: 500) as receiver:
        async with pool.acquire() as conn:
            young, _ = await add_endpoint(conn, network_box(data_dir), partner_id, receiver.url)
            old, _ = await add_endpoint(conn, network_box(data_dir), partner_id, receiver.url)
            await conn.execute(
                "UPDATE webhooks.endpoint SET failing_since = now() - $2::text::interval"
                " WHERE endpoint_id = $1",
                young,
                "4 days 23 hours",
            )
            await conn.execute(
                "UPDATE webhooks.endpoint SET failing_since = now() - $2::text::interval"
                " WHERE endpoint_id = $1",
                old,
                "5 days 1 hour",
            )
        await program.buy(pool, partner_id, card, 900)
        disabled_before = WEBHOOK_ENDPOINTS_DISABLED.labels("failing")._value.get()
        worker = worker_for(data_dir, schedule_s=(0, 3600))
        await worker.fan_out(pool)
        with caplog.at_level(logging.WARNING, logger="partners.webhooks.worker"):
            await worker.deliver(pool)

    rows = {
        r["endpoint_id"]: r
        for r in await pool.fetch(
            "SELECT endpoint_id, public_id, enabled, disabled_reason FROM webhooks.endpoint"
            " WHERE endpoint_id = ANY($1)",
            [young, old],
        )
    }
    assert (rows[young]["enabled"], rows[young]["disabled_reason"]) == (True, None)
    assert (rows[old]["enabled"], rows[old]["disabled_reason"]) == (False, "failing")
    events = await pool.fetch(
        "SELECT partner_id, payload FROM event_outbox"
        " WHERE event_type = 'webhook_endpoint.disabled'"
    )
    assert len(events) == 1
    assert events[0]["partner_id"] == partner_id
    payload = json.loads(events[0]["payload"])
    assert payload["endpoint_id"] == rows[old]["public_id"]
    assert payload["reason"] == "failing"
    assert WEBHOOK_ENDPOINTS_DISABLED.labels("failing")._value.get() == disabled_before + 1
    notices = [r for r in caplog.records if r.getMessage() == "webhook endpoint disabled"]
    assert [getattr(r, "endpoint", None) for r in notices] == [rows[old]["public_id"]]
    assert notices[0].levelno == logging.WARNING
    # The internal event is never published: nothing fans it out to an endpoint.
    await worker.fan_out(pool)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM webhooks.message m JOIN event_outbox o USING (event_id)"
            " WHERE o.event_type = 'webhook_endpoint.disabled'"
        )
        == 0
    )


async def test_410_gone_disables_the_endpoint_at_once(pool: asyncpg.Pool, data_dir: Path) -> None:
    partner_id, card = await shop_with_card(pool, "gone-shop")
    with receiving(lambda _: 410) as receiver:
        async with pool.acquire() as conn:
            endpoint_id, _ = await add_endpoint(
                conn, network_box(data_dir), partner_id, receiver.url
            )
        await program.buy(pool, partner_id, card, 900)
        worker = worker_for(data_dir, schedule_s=(0, 0, 0))
        await worker.fan_out(pool)
        await worker.deliver(pool)
    row = await pool.fetchrow(
        "SELECT enabled, disabled_reason FROM webhooks.endpoint WHERE endpoint_id = $1",
        endpoint_id,
    )
    assert row is not None
    assert (row["enabled"], row["disabled_reason"]) == (False, "gone")
    assert len(receiver.requests) == 1  # a disabled endpoint is not tried again
    (message,) = await state_of(pool, endpoint_id)
    assert message["state"] == "pending"  # kept: re-enabling the endpoint resumes it


async def test_an_expired_lease_is_claimed_again_and_the_late_worker_changes_nothing(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "lease-shop")
    async with pool.acquire() as conn:
        endpoint_id, _ = await add_endpoint(
            conn, network_box(data_dir), partner_id, "http://127.0.0.1:9/never"
        )
    await program.buy(pool, partner_id, card, 900)
    await worker_for(data_dir).fan_out(pool)

    (first,) = await delivery.claim(pool, limit=10, per_endpoint_max=4)  # then "dies"
    assert await delivery.claim(pool, limit=10, per_endpoint_max=4) == []  # leased
    await pool.execute(
        "UPDATE webhooks.message SET lease_until = now() - interval '1 second'"
        " WHERE message_id = $1",
        first.message_id,
    )
    (second,) = await delivery.claim(pool, limit=10, per_endpoint_max=4)
    assert second.message_id == first.message_id
    assert second.lease_until != first.lease_until

    late = delivery.Outcome(200, 5, None, "ok")
    lost = await delivery.record(
        pool, first, late, state="delivered", retry_in_s=0, failing_limit_s=1e9
    )
    assert not lost.recorded
    (message,) = await state_of(pool, endpoint_id)
    assert message["state"] == "sending"  # still the second claim's
    kept = await delivery.record(
        pool, second, late, state="delivered", retry_in_s=0, failing_limit_s=1e9
    )
    assert kept.recorded
    (message,) = await state_of(pool, endpoint_id)
    assert (message["state"], message["attempts_made"]) == ("delivered", 1)
    assert len(await attempts(pool, first.message_id)) == 2  # both tries happened


async def test_claims_take_turns_across_endpoints_and_cap_each_endpoint(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id, card = await shop_with_card(pool, "turns-shop")
    box = network_box(data_dir)
    async with pool.acquire() as conn:
        busy, _ = await add_endpoint(conn, box, partner_id, "http://127.0.0.1:9/busy")
        quiet, _ = await add_endpoint(conn, box, partner_id, "http://127.0.0.1:9/quiet")
    for amount in range(100, 1_100, 100):
        await program.buy(pool, partner_id, card, amount)
    await worker_for(data_dir).fan_out(pool)

    first = await delivery.claim(pool, limit=6, per_endpoint_max=4)
    assert sorted(c.endpoint_id for c in first) == sorted([busy] * 3 + [quiet] * 3)
    second = await delivery.claim(pool, limit=64, per_endpoint_max=4)
    assert sorted(c.endpoint_id for c in second) == sorted([busy, quiet])  # the cap: 4 each
    assert await delivery.claim(pool, limit=64, per_endpoint_max=4) == []
    oldest_first = [c.message_id for c in first if c.endpoint_id == busy]
    assert oldest_first == sorted(oldest_first)
