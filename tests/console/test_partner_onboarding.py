"""An admin onboards a partner and adds pricing versions in the console: a form, a confirmation
page that changes nothing, then the same service functions as POST /v1/operator/partners and
POST .../pricing, audited (`partner.create`, `partner.pricing`). Bad input is refused in the
form's words and changes nothing; other roles see no form and a forged POST answers 403."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from gateway.tokens import Role, SigningKey
from tests.console.browser import csrf_token, sign_in
from tests.console.conftest import make_user
from tests.support.partner_network import admin_headers, onboard

NEW_PARTNER = {
    "name": "Corner Bakery",
    "slug": "corner-bakery",
    "rate_limit_per_s": "40",
    "issue_price_micros": "12000",
    "redemption_price_micros": "9000",
    "earn_points": "2",
    "earn_spend_minor": "100",
}
TERMS = ("issue_price_micros", "redemption_price_micros", "earn_points", "earn_spend_minor")


@pytest.fixture(scope="module")
async def partner_id(http: httpx.AsyncClient, signing_key: SigningKey) -> int:
    return (await onboard(http, signing_key, "console-pricing")).partner_id


async def _partner_count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM partners")
        return count


async def _versions(pool: asyncpg.Pool, partner_id: int) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT version, effective_at, issue_price_micros, redemption_price_micros,"
            " earn_points, earn_spend_minor FROM partner_pricing_versions"
            " WHERE partner_id = $1 ORDER BY version",
            partner_id,
        )


async def _audits(pool: asyncpg.Pool, action: str, subject: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT actor, before, after FROM console.audit_log"
            " WHERE action = $1 AND subject = $2 ORDER BY audit_id",
            action,
            subject,
        )


def _minutes(moment: datetime) -> str:
    """A time as a datetime-local input types it (UTC, to the minute)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


async def _fill(page: Page, values: dict[str, str]) -> None:
    labels = {
        "name": "Name",
        "slug": "Slug",
        "rate_limit_per_s": "Rate limit (calls per second per key)",
        "issue_price_micros": "Issue price (micro-units per point)",
        "redemption_price_micros": "Redemption price (micro-units per point)",
        "earn_points": "Points earned",
        "earn_spend_minor": "Per spend of (minor units)",
        "effective_at": "Takes effect at (UTC)",
    }
    for name, value in values.items():
        await page.get_by_label(labels[name], exact=True).fill(value)


async def _post(
    context: BrowserContext, page: Page, path: str, fields: dict[str, str]
) -> tuple[int, str]:
    answer = await context.request.post(
        path, form={"_csrf_token": await csrf_token(page), **fields}, max_redirects=0
    )
    return answer.status, await answer.text()


# ---- onboarding ------------------------------------------------------------------------------


async def test_admin_onboards_a_partner_after_confirming(
    context: BrowserContext, admin: str, pool: asyncpg.Pool
) -> None:
    page = await sign_in(context, admin)
    await page.goto("/console/partners")
    await _fill(page, NEW_PARTNER)
    await page.get_by_role("button", name="Onboard…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Onboard this partner?")
    await expect(page.locator("#new-partner")).to_contain_text("corner-bakery")
    await expect(page.locator("#new-partner")).to_contain_text("12,000 micro-units per point")
    async with pool.acquire() as conn:  # the confirmation page creates nothing
        assert await conn.fetchval("SELECT id FROM partners WHERE slug = 'corner-bakery'") is None

    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Confirm onboarding").click()
    assert (await posted.value).status == 303
    await expect(page.get_by_role("status")).to_have_text(
        "Corner Bakery is onboarded with pricing version 1."
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("Corner Bakery")

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, name, rate_limit_per_s, created_by FROM partners"
            " WHERE slug = 'corner-bakery'"
        )
    assert row is not None
    assert (row["name"], row["rate_limit_per_s"], row["created_by"]) == ("Corner Bakery", 40, admin)
    assert page.url.endswith(f"/console/partners/{row['id']}?created=true")
    [version] = await _versions(pool, row["id"])
    assert [version[t] for t in TERMS] == [12_000, 9_000, 2, 100]

    [entry] = await _audits(pool, "partner.create", f"partner:{row['id']}")
    assert entry["actor"] == admin
    assert entry["before"] is None
    after = json.loads(entry["after"])
    assert (after["id"], after["name"], after["slug"]) == (
        row["id"],
        "Corner Bakery",
        "corner-bakery",
    )
    assert [after["pricing"][0][t] for t in TERMS] == [12_000, 9_000, 2, 100]

    # The same confirmation posted again: the slug is taken, nothing more is created.
    status, text = await _post(context, page, "/console/partners/onboard", NEW_PARTNER)
    assert status == 409
    assert "partner_slug_taken" in text
    assert len(await _audits(pool, "partner.create", f"partner:{row['id']}")) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Name is required."),
        ("name", "x" * 201, "Name must be 1 to 200 characters, on one line."),
        ("name", "x" * 5_000, "Name is longer than 1,000 characters."),
        ("slug", "Corner Bakery", "Slug must be 2 to 63 lowercase letters, digits or hyphens"),
        (
            "rate_limit_per_s",
            "-5",
            "Rate limit (calls per second per key) must be a whole number from 1 to 100,000.",
        ),
        ("rate_limit_per_s", "2.5", "Rate limit (calls per second per key) must be a whole number"),
        ("issue_price_micros", "1e3", "Issue price (micro-units per point) must be a whole number"),
        ("earn_spend_minor", "0", "Per spend of (minor units) must be a whole number from 1 to"),
    ],
)
async def test_bad_input_is_shown_again_with_the_error_and_creates_nothing(
    context: BrowserContext,
    admin: str,
    pool: asyncpg.Pool,
    field: str,
    value: str,
    message: str,
) -> None:
    before = await _partner_count(pool)
    page = await sign_in(context, admin)
    fields = {**NEW_PARTNER, "slug": "refused-partner", field: value}
    answer = await page.goto(f"/console/partners/onboard?{urlencode(fields)}")
    assert answer is not None
    assert answer.status == 400
    await expect(page.get_by_role("alert")).to_contain_text(message)
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was created.")
    # The form is shown again with what was typed, the refused field marked.
    await expect(page.locator(f'input[name="{field}"]')).to_have_attribute("aria-invalid", "true")
    if len(value) <= 1_000:
        await expect(page.locator(f'input[name="{field}"]')).to_have_value(value)

    # The POST validates the same contract: a forged body is refused too.
    status, text = await _post(context, page, "/console/partners/onboard", fields)
    assert status == 400
    assert message in text
    assert await _partner_count(pool) == before


@pytest.mark.parametrize("role", ["support", "auditor", "finance"])
async def test_other_roles_see_no_form_and_a_forged_post_is_refused(
    context: BrowserContext, pool: asyncpg.Pool, partner_id: int, role: str
) -> None:
    email = await make_user(pool, f"{role}.onboard@ops.test", Role(role))
    before, versions = await _partner_count(pool), len(await _versions(pool, partner_id))
    page = await sign_in(context, email)
    await page.goto("/console/partners")
    await expect(page.get_by_role("heading", name="Onboard a partner")).to_have_count(0)
    await expect(page.get_by_role("button", name="Onboard…")).to_have_count(0)
    confirm = await page.goto(f"/console/partners/onboard?{urlencode(NEW_PARTNER)}")
    assert confirm is not None
    assert confirm.status == 403
    fields = {**NEW_PARTNER, "slug": f"forged-by-{role}"}
    assert (await _post(context, page, "/console/partners/onboard", fields))[0] == 403

    await page.goto(f"/console/partners/{partner_id}")
    await expect(page.get_by_role("heading", name="Add a pricing version")).to_have_count(0)
    await expect(page.get_by_role("button", name="Add version…")).to_have_count(0)
    terms = {t: "5000" for t in TERMS} | {"next_version": str(versions + 1)}
    confirm = await page.goto(f"/console/partners/{partner_id}/pricing?{urlencode(terms)}")
    assert confirm is not None
    assert confirm.status == 403
    assert (await _post(context, page, f"/console/partners/{partner_id}/pricing", terms))[0] == 403

    assert await _partner_count(pool) == before
    assert len(await _versions(pool, partner_id)) == versions


# ---- pricing versions ------------------------------------------------------------------------


def _row(page: Page, version: int) -> Any:
    return page.locator("#pricing-history tbody tr").nth(version - 1)


async def test_admin_adds_a_pricing_version_shown_in_the_history_and_audited(
    context: BrowserContext, admin: str, partner_id: int, pool: asyncpg.Pool
) -> None:
    start = len(await _versions(pool, partner_id))
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner_id}")
    await expect(_row(page, start)).to_contain_text("in effect")
    # The form starts from the pricing in effect.
    await expect(page.get_by_label("Points earned")).to_have_value("1")
    await _fill(page, {"issue_price_micros": "12500", "redemption_price_micros": "9500"})
    await page.get_by_role("button", name="Add version…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Add this pricing version?")
    await expect(page.locator("#new-issue")).to_have_text("12,500")
    await expect(page.get_by_role("table")).to_contain_text("10,000")  # the price now
    await expect(page.locator("#effective-at")).to_have_text("as soon as you confirm")
    assert len(await _versions(pool, partner_id)) == start  # the confirmation changes nothing

    await page.get_by_role("button", name="Confirm the new pricing").click()
    await expect(page.get_by_role("status")).to_have_text(f"Pricing version {start + 1} is added.")
    await expect(_row(page, start + 1)).to_contain_text("in effect")
    await expect(_row(page, start + 1)).to_contain_text("12,500 µ/pt")
    await expect(_row(page, start)).to_contain_text("replaced")
    added = (await _versions(pool, partner_id))[-1]
    assert [added[t] for t in TERMS] == [12_500, 9_500, 1, 100]

    entry = (await _audits(pool, "partner.pricing", f"partner:{partner_id}"))[-1]
    assert entry["actor"] == admin
    before, after = json.loads(entry["before"]), json.loads(entry["after"])
    assert (before["version"], before["issue_price_micros"]) == (start, 10_000)
    assert (after["version"], after["issue_price_micros"]) == (start + 1, 12_500)

    # A version for later is scheduled; the one in effect stays so.
    later = datetime.now(UTC) + timedelta(days=3)
    await _fill(page, {"issue_price_micros": "13000", "effective_at": _minutes(later)})
    await page.get_by_role("button", name="Add version…").click()
    await expect(page.locator("#effective-at")).to_have_text(later.strftime("%Y-%m-%d %H:%M UTC"))
    await page.get_by_role("button", name="Confirm the new pricing").click()
    await expect(page.get_by_role("status")).to_have_text(f"Pricing version {start + 2} is added.")
    await expect(_row(page, start + 2)).to_contain_text("scheduled")
    await expect(_row(page, start + 1)).to_contain_text("in effect")
    assert (await _versions(pool, partner_id))[-1]["effective_at"] == later.replace(
        second=0, microsecond=0
    )


async def test_duplicate_and_invalid_pricing_is_refused_and_adds_nothing(
    context: BrowserContext,
    admin: str,
    partner_id: int,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
) -> None:
    page = await sign_in(context, admin)
    await page.goto(f"/console/partners/{partner_id}")
    path = f"/console/partners/{partner_id}/pricing"
    start = len(await _versions(pool, partner_id))
    terms = {t: "7000" for t in TERMS}

    # One confirmation posted twice: the second finds a version added since and adds none.
    once = {**terms, "next_version": str(start + 1)}
    assert (await _post(context, page, path, once))[0] == 303
    status, text = await _post(context, page, path, once)
    assert status == 409, text
    assert "The pricing changed since this confirmation was shown" in text
    assert len(await _versions(pool, partner_id)) == start + 1

    # Two versions never start at the same moment (the console and the API alike).
    moment = _minutes(datetime.now(UTC) + timedelta(days=10))
    first = {**terms, "effective_at": moment, "next_version": str(start + 2)}
    assert (await _post(context, page, path, first))[0] == 303
    status, text = await _post(context, page, path, {**first, "next_version": str(start + 3)})
    assert status == 409
    assert "pricing_effective_taken" in text
    api = await http.post(
        f"/v1/operator/partners/{partner_id}/pricing",
        json={**{t: 7000 for t in TERMS}, "effective_at": moment + ":00Z"},
        headers=admin_headers(signing_key),
    )
    assert api.status_code == 409, api.text
    assert api.json()["code"] == "pricing_effective_taken"
    assert len(await _versions(pool, partner_id)) == start + 2

    # Invalid terms: shown again on the partner's page with the error, nothing added.
    for field, value, message in [
        (
            "redemption_price_micros",
            "-1",
            "Redemption price (micro-units per point) must be a whole number from 0",
        ),
        ("earn_points", "1.5", "Points earned must be a whole number"),
        (
            "effective_at",
            "next tuesday",
            "Takes effect at (UTC) must be a date and time (UTC), or empty.",
        ),
    ]:
        answer = await page.goto(f"{path}?{urlencode({**terms, field: value})}")
        assert answer is not None
        assert answer.status == 400, field
        await expect(page.get_by_role("alert")).to_contain_text(message)
        await expect(page.locator(f'input[name="{field}"]')).to_have_attribute(
            "aria-invalid", "true"
        )
        assert (
            await _post(
                context, page, path, {**terms, field: value, "next_version": str(start + 3)}
            )
        )[0] == 400

    # A time in the past is the service's refusal (as the API's), on a page.
    past = {**terms, "effective_at": _minutes(datetime.now(UTC) - timedelta(days=1))}
    status, text = await _post(context, page, path, {**past, "next_version": str(start + 3)})
    assert status == 422
    assert "never in the past" in text
    assert len(await _versions(pool, partner_id)) == start + 2
    assert len(await _audits(pool, "partner.pricing", f"partner:{partner_id}")) >= 2
