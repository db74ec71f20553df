"""An admin revokes a partner's API key in the console: a confirmation page, the same service
function as DELETE /v1/operator/partners/{id}/keys/{key_id}, and an audit entry with the key's
state before and after. Other roles are refused the page and a forged POST."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from gateway.tokens import SigningKey
from tests.console.browser import csrf_token, sign_in
from tests.support.partner_network import admin_headers, onboard


@pytest.fixture(scope="module")
async def partner_id(http: httpx.AsyncClient, signing_key: SigningKey) -> int:
    return (await onboard(http, signing_key, "console-revoke")).partner_id


async def _new_key(http: httpx.AsyncClient, signing_key: SigningKey, partner_id: int) -> str:
    answer = await http.post(
        f"/v1/operator/partners/{partner_id}/keys", headers=admin_headers(signing_key)
    )
    assert answer.status_code == 201, answer.text
    key_id: str = answer.json()["key_id"]
    return key_id


async def _revoked_at(pool: asyncpg.Pool, key_id: str) -> object:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT revoked_at FROM partner_api_keys WHERE key_id = $1", key_id
        )


async def test_admin_revokes_a_key_after_confirming(
    context: BrowserContext,
    admin: str,
    partner_id: int,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
) -> None:
    key_id = await _new_key(http, signing_key, partner_id)
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner_id}")
    await page.get_by_role("link", name=f"Revoke key {key_id}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Revoke this API key?")
    await expect(page.locator("#key-id")).to_have_text(key_id)
    assert await _revoked_at(pool, key_id) is None  # the confirmation page changes nothing

    await page.get_by_role("button", name="Confirm revocation").click()
    await expect(page.get_by_role("status")).to_have_text(f"Key {key_id} is revoked.")
    await expect(page.get_by_role("link", name=f"Revoke key {key_id}")).to_have_count(0)
    assert await _revoked_at(pool, key_id) is not None

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT actor, action, before, after FROM console.audit_log"
            " WHERE action = 'api_key.revoke' AND subject = $1 ORDER BY audit_id DESC LIMIT 1",
            f"partner:{partner_id}",
        )
    assert row is not None
    assert row["actor"] == admin
    assert json.loads(row["before"]) == {"key_id": key_id, "revoked_at": None}
    assert json.loads(row["after"])["revoked_at"] is not None


async def test_finance_is_refused_the_revocation_page_and_a_forged_post(
    context: BrowserContext,
    finance: str,
    partner_id: int,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
) -> None:
    key_id = await _new_key(http, signing_key, partner_id)
    page = await sign_in(context, finance)
    await page.goto(f"/console/partners/{partner_id}")
    await expect(page.get_by_role("link", name=f"Revoke key {key_id}")).to_have_count(0)
    token = await csrf_token(page)

    confirm = await page.goto(f"/console/partners/{partner_id}/keys/{key_id}/revoke")
    assert confirm is not None
    assert confirm.status == 403
    forged = await context.request.post(
        f"/console/partners/{partner_id}/keys/{key_id}/revoke",
        form={"_csrf_token": token},
        max_redirects=0,
    )
    assert forged.status == 403
    assert await _revoked_at(pool, key_id) is None


async def test_another_partners_key_answers_404(
    context: BrowserContext,
    admin: str,
    partner_id: int,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
) -> None:
    other = (await onboard(http, signing_key, "console-revoke-other")).partner_id
    key_id = await _new_key(http, signing_key, other)
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner_id}")
    forged = await context.request.post(
        f"/console/partners/{partner_id}/keys/{key_id}/revoke",
        form={"_csrf_token": await csrf_token(page)},
        max_redirects=0,
    )
    assert forged.status == 404
    assert await _revoked_at(pool, key_id) is None
