"""The card page in Debian's Chromium (Playwright): a shopper opens the link from a partner's
app, sees the balance and the QR code, sees a purchase arrive, turns a partner's consent on
and off, switches to Russian; axe finds no serious or critical violation; screenshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from gateway.tokens import SigningKey
from tests.card.support import network, purchase, shopper_with_points, sign_in_link
from tests.support.chromium import AXE, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE
from tests.support.chromium import BLOCKING_IMPACTS as BLOCKING

SHOTS = Path("/tmp/card-shots")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def violations(page: Page) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v.get("impact") in BLOCKING
    ]


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_a_shopper_uses_the_card_page(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, browser: Browser
) -> None:
    grocer, fuel = await network(http, signing_key, "browser")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 25_000)
    # axe is an injected script, which the page's CSP (no script at all) would refuse
    context = await browser.new_context(viewport=PHONE, locale="en-GB", bypass_csp=True)
    page = await context.new_page()

    await page.goto(f"{base_url}/card/sign-in")
    assert await page.locator("h1").inner_text() == "Sign in"
    assert await violations(page) == []
    await shoot(page, "sign-in-phone")

    await page.goto(await sign_in_link(http, base_url, shopper))
    assert page.url == f"{base_url}/card"
    balance = page.locator("[data-balance]")
    assert await balance.get_attribute("data-balance") == "250"
    assert await page.locator(".qr-box svg").count() == 1
    number = page.locator("[data-card-number]")
    assert await number.get_attribute("data-card-number") == shopper.card_number

    async with fuel.client(base_url) as at_fuel:  # a signed purchase at the other partner
        await at_fuel.purchase(purchase(shopper.card_number, 5_000))
    await page.reload()
    assert await balance.get_attribute("data-balance") == "300"
    assert "Browser-Fuel" in await page.locator("#history-h + ul").inner_text()

    row = page.locator(f'li[data-partner="{fuel.slug}"]')
    assert await row.get_attribute("data-granted") == "false"
    await row.get_by_role("button", name="Allow Browser-Fuel").click()
    assert await row.get_attribute("data-granted") == "true"
    assert await page.get_by_role("status").first.inner_text() == "Saved."
    assert await violations(page) == []
    await shoot(page, "card-phone")
    await row.get_by_role("button", name="Stop Browser-Fuel").click()
    assert await row.get_attribute("data-granted") == "false"

    await page.get_by_role("link", name="Русский").click()
    assert await page.locator("html").get_attribute("lang") == "ru"
    assert await page.locator("#balance-h").inner_text() == "Баланс"
    assert await violations(page) == []
    await shoot(page, "card-phone-ru")

    await page.set_viewport_size(DESKTOP)
    await page.get_by_role("link", name="English").click()
    await shoot(page, "card-desktop")
    await page.goto(f"{base_url}/card/erase")
    assert await violations(page) == []
    await shoot(page, "erase-desktop")
    await context.close()
