"""The card page's challenges and badges in Chromium: progress of a running challenge, a
completed one with its badge, a revoked badge after a refund, in English and Russian; axe
finds no serious or critical violation; screenshots at phone and desktop sizes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from contracts.partners import RefundRequest
from gateway.tokens import SigningKey
from tests.card.support import network, purchase, shopper_with_points, sign_in_link
from tests.support.challenges import drain, retire_all
from tests.support.chromium import AXE, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE
from tests.support.chromium import BLOCKING_IMPACTS as BLOCKING
from tests.support.partner_network import admin_headers

SHOTS = Path("/tmp/card-shots")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(autouse=True)
async def only_these_challenges(pool: asyncpg.Pool) -> AsyncIterator[None]:
    await retire_all(pool)
    yield
    await retire_all(pool)


async def violations(page: Page) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v.get("impact") in BLOCKING
    ]


async def challenge(http: httpx.AsyncClient, signing_key: SigningKey, name: str, goal: int) -> int:
    now = datetime.now(UTC)
    created = await http.post(
        "/v1/operator/challenges",
        json={
            "name": name,
            "kind": "distinct_partners",
            "goal": goal,
            "reward_points": 100,
            "budget_points": 10_000,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(days=20)).isoformat(),
        },
        headers=admin_headers(signing_key),
    )
    assert created.status_code == 201, created.text
    challenge_id: int = created.json()["id"]
    return challenge_id


async def test_the_card_shows_challenge_progress_and_badges(
    base_url: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    browser: Browser,
    pool: asyncpg.Pool,
) -> None:
    pair = await challenge(http, signing_key, "Two partners this month", 2)
    trio = await challenge(http, signing_key, "Three partners this month", 3)
    grocer, fuel = await network(http, signing_key, "badges")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 10_000)
    fuel_buy = purchase(shopper.card_number, 2_000)
    async with fuel.client(base_url) as at_fuel:
        await at_fuel.purchase(fuel_buy)
    await drain(pool)

    context = await browser.new_context(viewport=PHONE, locale="en-GB", bypass_csp=True)
    page = await context.new_page()
    await page.goto(await sign_in_link(http, base_url, shopper))
    done = page.locator(f'li[data-challenge="{pair}"]')
    assert await done.get_attribute("data-completed") == "true"
    running = page.locator(f'li[data-challenge="{trio}"]')
    assert await running.get_attribute("data-progress") == "2"
    assert "2 of 3" in await running.inner_text()
    badge = page.locator(f'li[data-badge="{pair}"]')
    assert await badge.get_attribute("data-state") == "active"
    assert await page.locator("[data-balance]").get_attribute("data-balance") == "220"
    assert await violations(page) == []
    await page.locator("#challenges").screenshot(path=str(SHOTS / "challenges-phone.png"))
    await page.screenshot(path=str(SHOTS / "card-challenges-phone.png"), full_page=True)

    await page.get_by_role("link", name="Русский").click()
    assert await page.locator("#challenges-h").inner_text() == "Задания"
    assert "2 из 3" in await running.inner_text()
    assert await violations(page) == []
    await page.locator("#challenges").screenshot(path=str(SHOTS / "challenges-phone-ru.png"))

    # the fuel purchase is refunded: progress falls to 1 and the badge is withdrawn
    async with fuel.client(base_url) as at_fuel:
        await at_fuel.refund(
            RefundRequest(
                partner_ref=f"rf-{uuid.uuid4().hex[:20]}",
                original_partner_ref=fuel_buy.partner_ref,
            )
        )
    await drain(pool)
    await page.set_viewport_size(DESKTOP)
    await page.get_by_role("link", name="English").click()
    assert await badge.get_attribute("data-state") == "revoked"
    assert await running.get_attribute("data-progress") == "1"
    # 100 from the grocer's purchase is all that is left
    assert await page.locator("[data-balance]").get_attribute("data-balance") == "100"
    assert await violations(page) == []
    await page.locator("#challenges").screenshot(path=str(SHOTS / "challenges-desktop.png"))
    await page.screenshot(path=str(SHOTS / "card-challenges-desktop.png"), full_page=True)
    await context.close()
