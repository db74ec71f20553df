"""Roles, CSRF and the lockout, in the browser: what each role sees and what a forged or
token-less POST gets; the JSON API beside the console is unaffected by its CSRF check."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from gateway.console import users
from gateway.tokens import Role, SigningKey
from tests.console.browser import PASSWORD, csrf_token, nav_labels_js, sign_in
from tests.support import program
from tests.support.partner_network import admin_headers, onboard


@pytest.fixture(scope="module")
async def partner_id(http: httpx.AsyncClient, signing_key: SigningKey) -> int:
    return (await onboard(http, signing_key, "console-keys")).partner_id


async def _key_count(pool: asyncpg.Pool, partner_id: int) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM partner_api_keys WHERE partner_id = $1", partner_id
        )
        return count


async def test_finance_cannot_create_keys_in_the_page_or_by_a_forged_post(
    context: BrowserContext, finance: str, partner_id: int, pool: asyncpg.Pool
) -> None:
    page = await sign_in(context, finance)
    await page.goto(f"/console/partners/{partner_id}")
    await expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    await expect(page.get_by_role("button", name="Create an API key")).to_have_count(0)
    await expect(page.locator("#keys-refused")).to_contain_text("cannot create API keys")
    before = await _key_count(pool, partner_id)

    # A valid session and CSRF token, a POST the page never offered: refused all the same.
    forged = await context.request.post(
        f"/console/partners/{partner_id}/keys",
        form={"_csrf_token": await csrf_token(page)},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "may not do this" in await forged.text()
    assert await _key_count(pool, partner_id) == before


async def test_admin_creates_a_key_and_sees_its_secret_once(
    context: BrowserContext, admin: str, partner_id: int, pool: asyncpg.Pool
) -> None:
    before = await _key_count(pool, partner_id)
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner_id}")
    await page.get_by_role("button", name="Create an API key").click()
    await expect(page.locator("#key-secret")).to_have_text(re.compile(r"^sk_[A-Za-z0-9_-]{20,}$"))
    key_id = await page.locator("#key-id").text_content()
    assert await _key_count(pool, partner_id) == before + 1
    await page.goto(f"/console/partners/{partner_id}")
    await expect(page.locator("table").last).to_contain_text(key_id or "missing")
    await expect(page.locator("body")).not_to_contain_text("sk_")  # the secret is gone


async def test_a_form_post_without_the_csrf_token_is_refused(
    context: BrowserContext, admin: str, partner_id: int, pool: asyncpg.Pool
) -> None:
    await sign_in(context, admin)
    before = await _key_count(pool, partner_id)
    bare = await context.request.post(
        f"/console/partners/{partner_id}/keys", form={"note": "no token"}, max_redirects=0
    )
    wrong = await context.request.post(
        f"/console/partners/{partner_id}/keys",
        form={"_csrf_token": "0" * 128},
        max_redirects=0,
    )
    assert (bare.status, wrong.status) == (403, 403)
    assert "did not come from this console" in await bare.text()
    assert await _key_count(pool, partner_id) == before


async def test_the_operator_api_needs_no_csrf_token(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    # A bearer-token POST with no CSRF cookie or token: the console's check is not in its way.
    created = await http.post(
        "/v1/operator/partners",
        json={
            "name": "Api Only",
            "slug": "api-only",
            "issue_price_micros": 10_000,
            "redemption_price_micros": 8_000,
            "earn_points": 1,
            "earn_spend_minor": 100,
        },
        headers=admin_headers(signing_key),
    )
    assert created.status_code == 201, created.text
    assert "coalition_console_csrf" not in created.headers.get("set-cookie", "")


async def test_each_role_sees_only_its_pages(
    context: BrowserContext,
    support: str,
    partner_id: int,
    pool: asyncpg.Pool,
) -> None:
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, partner_id, holder.card_number, 4_200)
    page = await sign_in(context, support)
    assert await page.evaluate(nav_labels_js()) == ["Partners", "Shoppers", "Campaigns"]
    await page.goto(f"/console/partners/{partner_id}")
    await expect(page.get_by_role("heading", name="API keys")).to_have_count(0)
    assert (await page.goto("/console/settlements")).status == 403  # type: ignore[union-attr]

    await page.goto("/console/shoppers")
    await page.get_by_label("Card number").fill(holder.card_number)
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#result")).to_contain_text(f"Shopper {holder.shopper_id}")
    await expect(page.locator("#result")).to_contain_text("42")  # 4,200 minor units -> 42 pts
    await expect(page.locator("#result")).to_contain_text("Console-Keys")


async def test_a_page_without_a_session_sends_to_sign_in(context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto("/console/settlements")
    assert page.url.endswith("/console/login")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_signing_out_ends_the_session(context: BrowserContext, admin: str) -> None:
    page = await sign_in(context, admin)
    await page.get_by_role("button", name="Sign out").click()
    await page.goto("/console/partners")
    assert page.url.endswith("/console/login")


async def test_five_failures_lock_the_email_even_for_the_right_password(
    context: BrowserContext, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await users.create_user(conn, "lou@ops.test", Role.FINANCE, PASSWORD, created_by="t")
        await users.create_user(conn, "liz@ops.test", Role.FINANCE, PASSWORD, created_by="t")
    for _ in range(users.FAILURES_MAX):
        page = await sign_in(context, "lou@ops.test", "not the password")
        await expect(page.get_by_role("alert")).to_be_visible()
        await page.close()
    page = await sign_in(context, "lou@ops.test")
    await expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    assert page.url.endswith("/console/login")
    other = await sign_in(context, "liz@ops.test")  # another email is not locked
    await expect(other.get_by_role("heading", level=1)).to_have_text("Dashboard")
