"""A partner's webhooks in the console: its endpoints and failed deliveries (really failed: the
delivery worker sent them to a receiver answering 500), and Retry… for admin and support (a
confirmation page, then the retry route's service function, audited `webhook.retry`). Finance
and auditors see the page without the button and are refused the confirmation and the POST."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, expect

from gateway.console.pages_webhooks import FAILED_SHOWN_MAX
from gateway.tokens import SigningKey
from tests.console.browser import DESKTOP, csrf_token, sign_in
from tests.support.server import running_server, server_settings
from tests.webhooks.conftest import Api
from tests.webhooks.failing import Failed, failed_deliveries, message_state
from tests.webhooks.receiver import receiving

_slugs = itertools.count(1)


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    """The console's server, allowing the receiver's loopback URL (as the demo does)."""
    settings = server_settings(database_url, data_dir, webhooks_allow_loopback=True)
    async with running_server(settings) as url:
        yield url


async def _failed(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
    purchases: int = 2,
) -> Failed:
    with receiving(lambda _: 500) as receiver:
        return await failed_deliveries(
            http,
            base_url,
            signing_key,
            pool,
            data_dir,
            receiver,
            f"console-hooks-{next(_slugs)}",
            purchases,
        )


def _retry_path(shop: Failed, message_id: str, endpoint_id: str | None = None) -> str:
    endpoint = endpoint_id or shop.endpoint["id"]
    return (
        f"/console/partners/{shop.partner.partner_id}/webhooks/{endpoint}"
        f"/deliveries/{message_id}/retry"
    )


async def test_support_sees_failed_deliveries_and_retries_one_after_confirming(
    context: BrowserContext,
    support: str,
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    shop = await _failed(http, base_url, signing_key, pool, data_dir)
    target, untouched = shop.messages
    page = await sign_in(context, support)
    await page.goto(f"/console/partners/{shop.partner.partner_id}")
    await page.get_by_role("link", name="Webhook endpoints and failed deliveries").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Webhooks of {shop.partner.slug.title()}"
    )
    await expect(page.get_by_role("heading", level=2)).to_have_text(shop.endpoint["url"])
    rows = page.locator(f"#failed-{shop.endpoint['id']} tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text(target)  # newest first
    await expect(rows.first).to_contain_text("purchase.created")
    await expect(rows.first).to_contain_text("HTTP 500")

    await page.get_by_role("link", name=f"Retry delivery {target}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Retry this delivery?")
    await expect(page.locator("#message-id")).to_have_text(target)
    await expect(page.locator("#delivery-state")).to_have_text("failed")
    assert (await message_state(pool, target))["state"] == "failed"  # confirming is a step

    await page.get_by_role("button", name="Confirm the retry").click()
    await expect(page.get_by_role("status")).to_have_text(f"Delivery {target} is queued again.")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(untouched)
    assert await message_state(pool, target) == {
        "state": "pending",
        "next_trigger": "manual",
        "due": True,
        "attempts_made": 1,
    }
    assert (await message_state(pool, untouched))["state"] == "failed"

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT actor, role, before, after FROM console.audit_log"
            " WHERE action = 'webhook.retry' AND subject = $1",
            f"partner:{shop.partner.partner_id}",
        )
    assert row is not None
    assert (row["actor"], row["role"]) == (support, "support")
    before, after = json.loads(row["before"]), json.loads(row["after"])
    assert before["message_id"] == after["message_id"] == target
    assert before["endpoint_id"] == shop.endpoint["id"]
    assert (before["state"], after["state"]) == ("failed", "pending")
    assert (before["next_attempt_at"], after["next_trigger"]) == (None, "manual")
    assert after["next_attempt_at"] is not None


async def test_finance_and_auditors_see_the_failures_but_may_not_retry(
    browser: Browser,
    finance: str,
    auditor: str,
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    shop = await _failed(http, base_url, signing_key, pool, data_dir, purchases=1)
    (target,) = shop.messages
    for email in (finance, auditor):
        context = await browser.new_context(base_url=base_url, viewport=DESKTOP)
        page = await sign_in(context, email)
        await page.goto(f"/console/partners/{shop.partner.partner_id}/webhooks")
        rows = page.locator(f"#failed-{shop.endpoint['id']} tbody tr")
        await expect(rows).to_contain_text(target)
        await expect(page.get_by_role("link", name=f"Retry delivery {target}")).to_have_count(0)

        confirm = await page.goto(_retry_path(shop, target))
        assert confirm is not None
        assert confirm.status == 403, email
        forged = await context.request.post(
            _retry_path(shop, target), form={"_csrf_token": await csrf_token(page)}, max_redirects=0
        )
        assert forged.status == 403, email
        await context.close()
    assert (await message_state(pool, target))["state"] == "failed"


async def test_another_partners_delivery_and_a_bad_id_answer_404(
    context: BrowserContext,
    admin: str,
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    shop = await _failed(http, base_url, signing_key, pool, data_dir, purchases=1)
    other = await _failed(http, base_url, signing_key, pool, data_dir, purchases=1)
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{shop.partner.partner_id}/webhooks")
    token = await csrf_token(page)
    crossed = [
        _retry_path(shop, other.messages[0], other.endpoint["id"]),  # their endpoint, our path
        _retry_path(shop, other.messages[0]),  # their delivery under our endpoint
    ]
    for path in crossed:
        forged = await context.request.post(path, form={"_csrf_token": token}, max_redirects=0)
        assert forged.status == 404, path
    assert (await message_state(pool, other.messages[0]))["state"] == "failed"
    bad = await page.goto(_retry_path(shop, "msg_nope"))
    assert bad is not None
    assert bad.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("webhook delivery")


async def test_an_endpoint_shows_its_newest_failures_and_says_when_there_are_more(
    context: BrowserContext,
    admin: str,
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    shop = await _failed(http, base_url, signing_key, pool, data_dir, FAILED_SHOWN_MAX + 1)
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{shop.partner.partner_id}/webhooks")
    rows = page.locator(f"#failed-{shop.endpoint['id']} tbody tr")
    await expect(rows).to_have_count(FAILED_SHOWN_MAX)
    await expect(rows.first).to_contain_text(shop.messages[0])
    await expect(page.locator("p.more")).to_contain_text("More failed deliveries")
    await expect(page.get_by_text(shop.messages[-1])).to_have_count(0)  # the oldest is left out


async def test_a_disabled_endpoints_failure_has_no_retry_and_a_forged_one_is_refused(
    context: BrowserContext,
    support: str,
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    shop = await _failed(http, base_url, signing_key, pool, data_dir, purchases=1)
    (target,) = shop.messages
    off = await Api(http, base_url, shop.partner).call(
        "PATCH", f"/v1/webhook-endpoints/{shop.endpoint['id']}", {"enabled": False}
    )
    assert off.status_code == 200, off.text
    page = await sign_in(context, support)
    await page.goto(f"/console/partners/{shop.partner.partner_id}/webhooks")
    await expect(page.get_by_text("disabled", exact=True)).to_be_visible()
    await expect(page.get_by_text("(by the partner)")).to_be_visible()
    await expect(page.get_by_role("link", name=f"Retry delivery {target}")).to_have_count(0)
    await page.goto(_retry_path(shop, target))
    await expect(page.get_by_role("button", name="Confirm the retry")).to_have_count(0)
    token = await csrf_token(page)
    forged = await context.request.post(
        _retry_path(shop, target), form={"_csrf_token": token}, max_redirects=0
    )
    assert forged.status == 409
    assert (await message_state(pool, target))["state"] == "failed"
    async with pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM console.audit_log WHERE action = 'webhook.retry'"
            " AND subject = $1",
            f"partner:{shop.partner.partner_id}",
        )
    assert audited == 0
