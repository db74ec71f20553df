"""A network campaign's console page: its facts, the budget burn-down chart (Chart.js) and the
same figures as a table, which is there without JavaScript too; every role opens it, as every
operator role reads GET /v1/operator/campaigns/{id}/burn-down, whose days the table shows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from contracts.campaigns import Campaign
from gateway.tokens import Role, SigningKey
from tests.console.browser import DESKTOP, sign_in
from tests.support import program
from tests.support.partner_network import admin_headers, onboard

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
async def campaign(
    http: httpx.AsyncClient, signing_key: SigningKey, pool: asyncpg.Pool
) -> Campaign:
    """Started two days ago; 40 points awarded yesterday, nothing on the other days."""
    shop = await onboard(http, signing_key, "burn-shop")
    starts_at = datetime.combine(TODAY - timedelta(days=2), time(9), tzinfo=UTC)
    created = await program.campaign(
        pool, None, bonus_points=40, budget_points=1_000, starts_at=starts_at
    )
    holder = await program.shopper(pool, shop.partner_id)
    bought = await program.buy(pool, shop.partner_id, holder.card_number, 1_500)
    await pool.execute(
        "UPDATE partner_transactions SET created_at = $2 WHERE id = $1::uuid",
        bought.transaction_id,
        datetime.combine(TODAY - timedelta(days=1), time(15), tzinfo=UTC),
    )
    return created


async def _table(page: Page) -> list[list[str]]:
    cells: list[list[str]] = await page.locator("#burn-down tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    return cells


EXPECTED_ROWS = [
    [(TODAY - timedelta(days=2)).isoformat(), "0", "0", "1,000"],
    [(TODAY - timedelta(days=1)).isoformat(), "40", "0", "960"],
    [TODAY.isoformat(), "0", "0", "960"],
]


async def test_the_page_shows_facts_chart_and_table(
    context: BrowserContext, support: str, campaign: Campaign
) -> None:
    page = await sign_in(context, support)  # the least-privileged role sees campaigns too
    await page.goto("/console/campaigns")
    await page.get_by_role("link", name=campaign.name).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(campaign.name)
    assert page.url.endswith(f"/console/campaigns/{campaign.id}")
    await expect(page.locator("#budget-left")).to_have_text("960")
    await expect(page.get_by_text("40 bonus points")).to_be_visible()
    assert [row[:4] for row in await _table(page)] == EXPECTED_ROWS
    drawn = await page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('burn-down-chart'));"
        " return c ? c.data.datasets.map(d => d.data) : null; }"
    )
    assert drawn is not None, "Chart.js drew the burn-down"
    assert drawn[0] == [1_000, 960, 960]
    ideal = drawn[1]  # the even spend: from the budget down, never up, never below 0
    assert ideal == sorted(ideal, reverse=True)
    assert 0 <= ideal[-1] <= ideal[0] <= 1_000


async def test_without_javascript_the_table_carries_the_figures(
    browser: Browser, base_url: str, auditor: str, campaign: Campaign
) -> None:
    plain = await browser.new_context(
        base_url=base_url, viewport=DESKTOP, java_script_enabled=False
    )
    try:
        page = await sign_in(plain, auditor)
        await page.goto(f"/console/campaigns/{campaign.id}")
        assert [row[:4] for row in await _table(page)] == EXPECTED_ROWS
    finally:
        await plain.close()


async def test_the_api_route_answers_the_same_days_and_404s(
    context: BrowserContext,
    finance: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    campaign: Campaign,
) -> None:
    path = f"/v1/operator/campaigns/{campaign.id}/burn-down"
    answer = await http.get(path, headers=admin_headers(signing_key, Role.AUDITOR))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["budget_points"] == 1_000
    assert [(d["day"], d["awarded_points"], d["budget_left_points"]) for d in body["days"]] == [
        (row[0], int(row[1]), int(row[3].replace(",", ""))) for row in EXPECTED_ROWS
    ]
    missing = await http.get(
        "/v1/operator/campaigns/999999/burn-down", headers=admin_headers(signing_key)
    )
    assert missing.status_code == 404
    page = await sign_in(context, finance)
    unknown = await page.goto("/console/campaigns/999999")
    assert unknown is not None
    assert unknown.status == 404
