"""Every console page at desktop (1280x800) and phone (390x844) width: axe-core finds no
serious or critical violation, the navigation is the same everywhere, and a screenshot of each
is written (to $CONSOLE_SHOTS_DIR when set, else the test's temporary directory)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page

from gateway.tokens import Role, SigningKey
from ledger import reconciliation, settlement
from tests.console.browser import (
    DESKTOP,
    PHONE,
    nav_labels_js,
    serious_violations,
    sign_in,
)
from tests.console.conftest import make_user
from tests.support import program
from tests.support.partner_network import onboard
from tests.webhooks.failing import written_failure

NAV_ADMIN = [
    "Dashboard",
    "Partners",
    "Settlements",
    "Reconciliations",
    "Shoppers",
    "Campaigns",
    "Audit log",
]


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("CONSOLE_SHOTS_DIR")
    path = Path(configured) if configured else Path(tmp_path_factory.mktemp("shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
async def network(
    http: httpx.AsyncClient, signing_key: SigningKey, pool: asyncpg.Pool, base_url: str
) -> dict[str, str]:
    """Two partners with purchases and a redemption, a campaign, a closed period, an upload,
    a webhook endpoint with a failed delivery."""
    grocer = await onboard(http, signing_key, "fresh-grocer")
    fuel = await onboard(http, signing_key, "fuel-stop")
    holder = await program.shopper(pool, grocer.partner_id)
    for amount_minor in (4_250, 12_990, 799):
        await program.buy(pool, grocer.partner_id, holder.card_number, amount_minor)
    other_holder = await program.shopper(pool, fuel.partner_id)  # for the merge confirmation
    endpoint, message = await written_failure(http, base_url, grocer, pool)
    campaign = await program.campaign(pool, None, bonus_points=50, budget_points=10_000)
    start = datetime.now(UTC) - timedelta(hours=1)
    async with pool.acquire() as conn, conn.transaction():
        period = await settlement.close_period(
            conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
        )

    async def log() -> AsyncIterator[bytes]:
        yield (
            "partner_ref,type,card_number,points,amount_minor,occurred_at\r\n"
            f"not-ours,purchase,{holder.card_number},10,1000,{start.isoformat()}\r\n"
        ).encode()

    async with pool.acquire() as conn, conn.transaction():
        report = await reconciliation.reconcile(
            conn,
            partner_id=grocer.partner_id,
            period_start=start,
            period_end=datetime.now(UTC),
            source_format="csv",
            chunks=log(),
        )
    return {
        "card": holder.card_number,
        "shopper": str(holder.shopper_id),
        "card2": other_holder.card_number,
        "partner": str(grocer.partner_id),
        "other": str(fuel.partner_id),
        "period": str(period.period_id),
        "statement": str(period.statements[0].statement_id),
        "reconciliation": str(report.reconciliation_id),
        "key": grocer.key_id,
        "endpoint": endpoint,
        "message": message,
        "campaign": str(campaign.id),
    }


def _pages(n: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/console"),
        ("partners", "/console/partners"),
        ("partner", f"/console/partners/{n['partner']}"),
        ("settlements", "/console/settlements"),
        ("period", f"/console/settlements/{n['period']}"),
        ("statement", f"/console/statements/{n['statement']}"),
        ("close-confirm", "/console/settlements/close?period_end=2026-01-01T00:00"),
        ("reconciliations", "/console/reconciliations"),
        ("reconciliation", f"/console/reconciliations/{n['reconciliation']}"),
        ("shoppers", "/console/shoppers"),
        ("shopper", f"/console/shoppers?card={n['card']}"),
        ("shopper-merge", f"/console/shoppers/{n['shopper']}/merge?card={n['card2']}"),
        ("shopper-replace", f"/console/shoppers/{n['shopper']}/replace?card={n['card']}"),
        ("shopper-goodwill", f"/console/shoppers/{n['shopper']}/goodwill?points=50&reason=late"),
        ("shopper-erase", f"/console/shoppers/{n['shopper']}/erase"),
        ("campaigns", "/console/campaigns"),
        ("campaign", f"/console/campaigns/{n['campaign']}"),
        ("audit", "/console/audit"),
        ("key-revoke", f"/console/partners/{n['partner']}/keys/{n['key']}/revoke"),
        ("rate-limit", f"/console/partners/{n['partner']}/rate-limit?per_s=50"),
        ("webhooks", f"/console/partners/{n['partner']}/webhooks"),
        (
            "webhook-retry",
            f"/console/partners/{n['partner']}/webhooks/{n['endpoint']}"
            f"/deliveries/{n['message']}/retry",
        ),
        ("onboard-confirm", f"/console/partners/onboard?{urlencode(ONBOARD)}"),
        ("pricing-confirm", f"/console/partners/{n['partner']}/pricing?{urlencode(PRICING)}"),
    ]


ONBOARD = {
    "name": "Corner Bakery",
    "slug": "corner-bakery",
    "rate_limit_per_s": "40",
    "issue_price_micros": "12000",
    "redemption_price_micros": "9000",
    "earn_points": "2",
    "earn_spend_minor": "100",
}
PRICING = {k: ONBOARD[k] for k in list(ONBOARD)[3:]} | {"effective_at": "2030-01-01T00:00"}


def _refused_forms(n: dict[str, str]) -> list[tuple[str, str]]:
    """Forms shown again with a refused field (answered 400)."""
    no_name = urlencode(ONBOARD | {"name": ""})
    negative = urlencode(PRICING | {"earn_points": "-1"})
    return [
        ("onboard-refused", f"/console/partners/onboard?{no_name}"),
        ("pricing-refused", f"/console/partners/{n['partner']}/pricing?{negative}"),
    ]


async def _check(page: Page, name: str, shots_dir: Path, width: str) -> list[str]:
    problems = [f"{name} ({width}): {v}" for v in await serious_violations(page)]
    await page.screenshot(path=str(shots_dir / f"{name}-{width}.png"), full_page=True)
    return problems


@pytest.mark.parametrize(("width", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_every_page_passes_axe_and_has_the_same_navigation(
    browser: Browser,
    base_url: str,
    admin: str,
    finance: str,
    pool: asyncpg.Pool,
    network: dict[str, str],
    shots_dir: Path,
    width: str,
    viewport: dict[str, int],
) -> None:
    problems: list[str] = []
    anonymous = await browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    login = await anonymous.new_page()
    await login.goto("/console/login")
    problems += await _check(login, "login", shots_dir, width)
    await anonymous.close()

    context = await browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    page = await sign_in(context, admin)
    for name, path in _pages(network):
        answer = await page.goto(path)
        assert answer is not None
        assert answer.status == 200, (path, answer.status)
        assert await page.evaluate(nav_labels_js()) == NAV_ADMIN, path
        problems += await _check(page, name, shots_dir, width)
    for name, path in _refused_forms(network):
        answer = await page.goto(path)
        assert answer is not None
        assert answer.status == 400, (path, answer.status)
        problems += await _check(page, name, shots_dir, width)
    await page.goto(f"/console/statements/{network['statement']}/finalize")
    problems += await _check(page, "refused", shots_dir, width)  # admin may not finalize
    await context.close()

    context = await browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    page = await sign_in(context, finance)
    for action in ("finalize", "dispute"):
        await page.goto(f"/console/statements/{network['statement']}/{action}")
        problems += await _check(page, f"confirm-{action}", shots_dir, width)
    await page.goto(f"/console/reconciliations/{network['reconciliation']}/items/1/resolve")
    problems += await _check(page, "confirm-resolve", shots_dir, width)
    await context.close()

    problems += await _check_security_pages(browser, base_url, pool, shots_dir, width, viewport)
    assert problems == []


async def _check_security_pages(
    browser: Browser,
    base_url: str,
    pool: asyncpg.Pool,
    shots_dir: Path,
    width: str,
    viewport: dict[str, int],
) -> list[str]:
    """Security, TOTP enrolment and the code step, as a user of its own (enrolled here)."""
    problems: list[str] = []
    email = await make_user(pool, f"axe-{width}@ops.test", Role.ADMIN)
    context = await browser.new_context(base_url=base_url, viewport=viewport)  # type: ignore[arg-type]
    page = await sign_in(context, email)
    await page.goto("/console/security")
    problems += await _check(page, "security", shots_dir, width)
    await page.goto("/console/security/totp")
    problems += await _check(page, "totp-enrol", shots_dir, width)
    secret = (await page.locator("#secret").text_content() or "").strip()
    await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on").click()
    await page.get_by_role("button", name="Sign out").click()
    page = await sign_in(context, email)
    problems += await _check(page, "login-code", shots_dir, width)
    await context.close()
    return problems
