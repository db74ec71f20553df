"""An admin changes a partner's rate limit in the console (a confirmation page, then the same
service function as PUT /v1/operator/partners/{id}/rate-limit, audited before/after), and the
gateway applies the new limit to the partner's next calls. Other roles are refused."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from gateway.tokens import Role, SigningKey
from tests.console.browser import csrf_token, sign_in
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed


@pytest.fixture(scope="module")
async def partner(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "console-rate")


async def _limit(pool: asyncpg.Pool, partner_id: int) -> int:
    async with pool.acquire() as conn:
        value: int = await conn.fetchval(
            "SELECT rate_limit_per_s FROM partners WHERE id = $1", partner_id
        )
        return value


async def _statuses(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, calls: int
) -> list[int]:
    """`calls` signed reads sent at once (a second holds them all, or two seconds at most)."""

    async def one() -> int:
        url = f"{base_url}/v1/transactions"
        return (await http.get("/v1/transactions", headers=signed(who, "GET", url))).status_code

    return sorted(await asyncio.gather(*(one() for _ in range(calls))))


async def test_admin_changes_the_rate_limit_and_the_gateway_applies_it(
    context: BrowserContext,
    admin: str,
    partner: Onboarded,
    http: httpx.AsyncClient,
    base_url: str,
    pool: asyncpg.Pool,
) -> None:
    assert 429 not in await _statuses(http, base_url, partner, 6)  # the default 100/s
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner.partner_id}")
    await page.get_by_label("Rate limit (calls per second per key)").fill("2")
    await page.get_by_role("button", name="Change…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Change the rate limit?")
    await expect(page.locator("#new-limit")).to_have_text("2")
    assert await _limit(pool, partner.partner_id) == 100  # the confirmation changes nothing

    await page.get_by_role("button", name="Confirm the change").click()
    await expect(page.get_by_text("rate limit 2 calls/s")).to_be_visible()
    assert await _limit(pool, partner.partner_id) == 2
    # 6 calls within at most two one-second windows: at most 4 admitted, the rest 429
    assert (await _statuses(http, base_url, partner, 6)).count(429) >= 2

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT actor, before, after FROM console.audit_log"
            " WHERE action = 'partner.rate_limit' AND subject = $1",
            f"partner:{partner.partner_id}",
        )
    assert row is not None
    assert row["actor"] == admin
    assert json.loads(row["before"]) == {"rate_limit_per_s": 100}
    assert json.loads(row["after"]) == {"rate_limit_per_s": 2}

    bad = await page.goto(f"/console/partners/{partner.partner_id}/rate-limit?per_s=0")
    assert bad is not None
    assert bad.status == 400
    unicode_digit = await page.goto(f"/console/partners/{partner.partner_id}/rate-limit?per_s=²")
    assert unicode_digit is not None
    assert unicode_digit.status == 400


async def test_finance_is_refused_the_page_and_a_forged_post(
    context: BrowserContext, finance: str, partner: Onboarded, pool: asyncpg.Pool
) -> None:
    before = await _limit(pool, partner.partner_id)
    page = await sign_in(context, finance)
    await page.goto(f"/console/partners/{partner.partner_id}")
    await expect(page.get_by_role("button", name="Change…")).to_have_count(0)
    confirm = await page.goto(f"/console/partners/{partner.partner_id}/rate-limit?per_s=7")
    assert confirm is not None
    assert confirm.status == 403
    forged = await context.request.post(
        f"/console/partners/{partner.partner_id}/rate-limit",
        form={"_csrf_token": await csrf_token(page), "per_s": "7"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert await _limit(pool, partner.partner_id) == before


async def test_the_api_route_sets_it_and_refuses_bad_input(
    http: httpx.AsyncClient, signing_key: SigningKey, partner: Onboarded, pool: asyncpg.Pool
) -> None:
    path = f"/v1/operator/partners/{partner.partner_id}/rate-limit"
    admin = admin_headers(signing_key)
    done = await http.put(path, json={"rate_limit_per_s": 250}, headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["rate_limit_per_s"] == 250
    assert await _limit(pool, partner.partner_id) == 250
    for body in ({"rate_limit_per_s": 0}, {"rate_limit_per_s": "9"}, {"other": 1}):
        refused = await http.put(path, json=body, headers=admin)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    missing = await http.put(
        "/v1/operator/partners/999999/rate-limit", json={"rate_limit_per_s": 5}, headers=admin
    )
    assert missing.status_code == 404
    finance = await http.put(
        path, json={"rate_limit_per_s": 5}, headers=admin_headers(signing_key, Role.FINANCE)
    )
    assert finance.status_code == 403
    assert await _limit(pool, partner.partner_id) == 250
