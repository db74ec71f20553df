"""The Content-Security-Policy breaks nothing: Chromium reports no violation on the console's
pages (the dashboard draws its chart with the vendored Chart.js, htmx loads) nor on the card's
sign-in page, at desktop and phone width; a screenshot of each goes to $CSP_SHOTS_DIR if set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.console.browser import DESKTOP, PHONE, sign_in
from tests.console.conftest import admin, browser
from tests.support.http_fixtures import base_url, data_dir, http, signing_key

__all__ = ["admin", "base_url", "browser", "data_dir", "http", "signing_key"]

# Every securitypolicyviolation event of the page, kept where the test can read it.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""
CHART_DRAWN = (
    "typeof Chart !== 'undefined' && !!Chart.getChart(document.getElementById('points-chart'))"
)
CONSOLE_PAGES = ("/console", "/console/partners", "/console/settlements", "/console/audit")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("CSP_SHOTS_DIR") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize(("width", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_no_page_reports_a_csp_violation(
    browser: Browser,
    base_url: str,
    admin: str,
    width: str,
    viewport: dict[str, int],
    shots: Path,
) -> None:
    context = await browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    await context.add_init_script(RECORD_VIOLATIONS)
    reports: dict[str, list[str]] = {}
    try:
        card = await context.new_page()
        await card.goto("/card/sign-in")
        await card.wait_for_load_state("networkidle")
        reports["/card/sign-in"] = await card.evaluate("window.__csp")
        await card.screenshot(path=str(shots / f"card-sign-in-{width}.png"), full_page=True)
        page = await sign_in(context, admin)
        for path in CONSOLE_PAGES:
            answer = await page.goto(path)
            assert answer is not None
            assert answer.headers.get("content-security-policy"), path
            await page.wait_for_load_state("networkidle")
            reports[path] = await page.evaluate("window.__csp")
            name = path.strip("/").replace("/", "-")
            await page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        await page.goto("/console")
        drawn = await page.evaluate(CHART_DRAWN)
        assert drawn, "the dashboard chart was not drawn"
        assert await page.evaluate("typeof htmx !== 'undefined'")
    finally:
        await context.close()
    assert {path: found for path, found in reports.items() if found} == {}
