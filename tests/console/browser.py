"""Steps shared by the console's browser tests."""

from __future__ import annotations

from typing import Any

from playwright.async_api import BrowserContext, Page

from tests.support.chromium import (
    AXE,
    BLOCKING_IMPACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
)

__all__ = ["AXE", "BLOCKING_IMPACTS", "CHROMIUM", "CHROMIUM_ARGS", "DESKTOP", "PHONE"]

PASSWORD = "correct horse battery"
ACTION_TIMEOUT_MS = 10_000


async def sign_in(context: BrowserContext, email: str, password: str = PASSWORD) -> Page:
    page = await context.new_page()
    await page.goto("/console/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    return page


async def csrf_token(page: Page) -> str:
    """The token a page's forms carry (the double-submit cookie's signed twin)."""
    token = await page.locator('input[name="_csrf_token"]').first.get_attribute("value")
    assert token, "every console page with a form carries a CSRF token"
    return token


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # Evaluated over the DevTools protocol, not as an inline <script>: the page's CSP allows
    # only self-hosted scripts.
    await page.evaluate(AXE.read_text() + "\n;0")
    result: dict[str, Any] = await page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in BLOCKING_IMPACTS
    ]


def nav_labels_js() -> str:
    return "() => [...document.querySelectorAll('nav[aria-label=Main] a')].map(a => a.textContent)"
