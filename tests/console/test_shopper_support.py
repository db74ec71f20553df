"""Shopper support in Chromium: support merges two cards and the balance page shows the sum;
a lost card is blocked and reissued; a goodwill credit moves the balance and is audited;
finance and auditor users are refused the pages and a forged POST."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from gateway.tokens import SigningKey
from ledger import verify
from partners import keybox
from shoppers import identity
from shoppers import support as shopper_support
from shoppers.identity import PhoneHasher
from tests.console.browser import csrf_token, sign_in
from tests.support import program
from tests.support.partner_network import onboard


@pytest.fixture(scope="module")
async def partner_id(http: httpx.AsyncClient, signing_key: SigningKey) -> int:
    grocer = await onboard(http, signing_key, "support-grocer")
    return grocer.partner_id


async def _shopper_with_points(pool: asyncpg.Pool, partner_id: int, amount_minor: int) -> str:
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, partner_id, holder.card_number, amount_minor)
    return holder.card_number


async def _audit(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT actor, subject, before, after, detail FROM console.audit_log "
                "WHERE action = $1 ORDER BY audit_id",
                action,
            )
        )


async def test_support_merges_two_cards_and_the_balance_page_shows_the_sum(
    context: BrowserContext, support: str, pool: asyncpg.Pool, partner_id: int
) -> None:
    first = await _shopper_with_points(pool, partner_id, 12_000)
    second = await _shopper_with_points(pool, partner_id, 3_500)
    first_points = await program.balance(pool, first)
    second_points = await program.balance(pool, second)
    assert first_points > 0
    assert second_points > 0

    page = await sign_in(context, support)
    await page.get_by_role("link", name="Shoppers").click()
    await page.get_by_label("Card number or phone").fill(first)
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#balance")).to_have_text(f"{first_points:,}")

    await page.get_by_label("Other card number").fill(second)
    await page.get_by_role("button", name="Merge…").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Merge cards")
    await page.get_by_label("Reason").fill("same person, two cards")
    await page.get_by_role("button", name="Confirm merge cards").click()

    await expect(page.get_by_role("status")).to_contain_text("merged")
    await expect(page.locator("#balance")).to_have_text(f"{first_points + second_points:,}")
    await expect(page.locator("#cards")).to_contain_text(second)
    assert await program.balance(pool, first) == first_points + second_points
    (entry,) = await _audit(pool, "shopper.merge")
    assert entry["actor"] == support
    assert '"absorbed_balance": ' + str(second_points) in entry["before"]


async def test_support_blocks_a_lost_card_and_reissues_it(
    context: BrowserContext, support: str, pool: asyncpg.Pool, partner_id: int
) -> None:
    lost = await _shopper_with_points(pool, partner_id, 8_000)
    points = await program.balance(pool, lost)
    page = await sign_in(context, support)
    await page.goto(f"/console/shoppers?q={lost}")
    await page.get_by_role("link", name=f"Block and reissue {lost}").click()
    await page.get_by_label("Reason").fill("reported lost")
    await page.get_by_role("button", name="Confirm block and reissue").click()

    notice = page.get_by_role("status")
    await expect(notice).to_contain_text("New card: ")
    new_card = (await notice.text_content() or "").split("New card: ")[1].rstrip(".")
    assert new_card != lost
    await expect(page.locator("#cards")).to_contain_text("replaced")
    assert await program.balance(pool, new_card) == points  # the wallet carried over
    with pytest.raises(Exception, match="replaced"):
        await program.balance(pool, lost)
    (entry,) = [e for e in await _audit(pool, "card.replace") if lost in e["before"]]
    assert new_card in entry["after"]


async def test_goodwill_credit_changes_the_balance_and_is_audited(
    context: BrowserContext, support: str, pool: asyncpg.Pool, partner_id: int
) -> None:
    card = await _shopper_with_points(pool, partner_id, 5_000)
    points = await program.balance(pool, card)
    page = await sign_in(context, support)
    await page.goto(f"/console/shoppers?q={card}")
    await page.get_by_label("Points (1 to").fill("250")
    await page.get_by_label("Reason").fill("late delivery")
    await page.get_by_role("button", name="Credit…").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Goodwill credit")
    form_action = page.url.split("?")[0]
    request_id = await page.locator('input[name="request_id"]').get_attribute("value")
    token = await csrf_token(page)
    await page.get_by_role("button", name="Confirm goodwill credit").click()
    await expect(page.locator("#balance")).to_have_text(f"{points + 250:,}")
    await expect(page.locator("#lots")).to_contain_text("goodwill")

    # The same confirmation posted again (a double click, a reload) credits once.
    again = await page.request.post(
        form_action,
        form={
            "_csrf_token": token,
            "points": "250",
            "reason": "late delivery",
            "request_id": request_id or "",
        },
    )
    assert again.ok
    assert await program.balance(pool, card) == points + 250
    (entry,) = [e for e in await _audit(pool, "shopper.goodwill") if "late delivery" in e["detail"]]
    assert entry["actor"] == support
    assert f'"balance": {points}' in entry["before"]
    assert f'"balance": {points + 250}' in entry["after"]

    page2 = await context.new_page()
    await page2.goto(f"/console/shoppers?q={card}")
    over = shopper_support.GOODWILL_POINTS_MAX + 1
    answer = await page2.goto(page2.url + f"/goodwill?points={over}&reason=too+much")
    assert answer is not None
    assert answer.status == 400


@pytest.mark.parametrize("who", ["finance", "auditor"])
async def test_finance_and_auditor_are_refused_the_page_and_a_forged_post(
    context: BrowserContext,
    finance: str,
    auditor: str,
    who: str,
    pool: asyncpg.Pool,
    partner_id: int,
) -> None:
    email = {"finance": finance, "auditor": auditor}[who]
    card = await _shopper_with_points(pool, partner_id, 2_000)
    points = await program.balance(pool, card)
    page = await sign_in(context, email)
    assert "Shoppers" not in await page.locator("nav").inner_text()
    answer = await page.goto(f"/console/shoppers?q={card}")
    assert answer is not None
    assert answer.status == 403
    token = await csrf_token(page)  # the sign-out form's: a valid token, the wrong role
    async with pool.acquire() as conn:
        shopper_id = await conn.fetchval(
            "SELECT shopper_id FROM shopper_cards WHERE card_number = $1", card
        )
    forged = await page.request.post(
        f"/console/shoppers/{shopper_id}/goodwill",
        form={"_csrf_token": token, "points": "500", "reason": "forged", "request_id": "x1"},
    )
    assert forged.status == 403
    assert await program.balance(pool, card) == points


async def test_support_finds_a_shopper_by_phone_and_erases_them_at_their_request(
    context: BrowserContext,
    support: str,
    pool: asyncpg.Pool,
    partner_id: int,
    base_url: str,
    data_dir: Path,
) -> None:
    card = await _shopper_with_points(pool, partner_id, 4_000)
    # The server's master key keys the phone hash: link the phone as the API would.
    master = keybox.parse_master_key((data_dir / keybox.KEY_FILE_NAME).read_text())
    async with pool.acquire() as conn, conn.transaction():
        shopper_id = await conn.fetchval(
            "SELECT shopper_id FROM shopper_cards WHERE card_number = $1", card
        )
        await identity.link_phone(conn, PhoneHasher(master), shopper_id, "+44 20 7946 0123")

    page = await sign_in(context, support)
    await page.goto("/console/shoppers")
    await page.get_by_label("Card number or phone").fill("0044 20 7946 0123")
    await page.get_by_role("button", name="Find").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Shopper {shopper_id}")

    await page.get_by_role("link", name="Erase personal data…").click()
    await page.get_by_role("button", name="Confirm erase personal data").click()
    await expect(page.get_by_role("status")).to_have_text("The shopper's personal data is erased.")
    await page.get_by_label("Card number or phone").fill(card)
    await page.get_by_role("button", name="Find").click()
    await expect(page.get_by_role("alert")).to_contain_text("shopper_erased")

    async with pool.acquire() as conn:
        erased_at = await conn.fetchval("SELECT erased_at FROM shoppers WHERE id = $1", shopper_id)
    assert erased_at is not None
    (entry,) = [
        e for e in await _audit(pool, "shopper.erase") if e["subject"] == f"shopper:{shopper_id}"
    ]
    assert entry["actor"] == support


async def test_the_ledger_verifies_after_the_support_actions(pool: asyncpg.Pool) -> None:
    # Runs after the merge, reissue, goodwill and erasure above (same module, same database).
    async with pool.acquire() as conn:
        assert await verify.verify(conn) == []
