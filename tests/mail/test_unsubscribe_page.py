"""The page behind an email's unsubscribe link (`/card/unsubscribe`): a person clicking it sees
what the button does, in their language, and nothing changes until they press it; the email's
body links there while `List-Unsubscribe` keeps the RFC 8058 one-click API URL. Driven in
Chromium against a real server; axe finds nothing serious; screenshots at both sizes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from playwright.async_api import async_playwright

from shoppers.mail import unsubscribe
from shoppers.mail.unsubscribe import Unsubscribes
from tests.mail.test_email_e2e import MASTER_KEY, new_shopper
from tests.support.chromium import AXE, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE
from tests.support.chromium import BLOCKING_IMPACTS as BLOCKING
from tests.support.server import running_server, server_settings

SHOTS = Path("/tmp/card-shots")


async def test_a_person_unsubscribes_from_the_page_in_the_email(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('unsub-p', 'Unsub', 't') "
            "RETURNING id"
        )
        shopper_id = await new_shopper(
            conn, partner_id, email="ru@shop.example", locale="ru", consent=True
        )
    settings = server_settings(database_url, tmp_path, master_key=MASTER_KEY.hex())
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    async with running_server(settings) as base, async_playwright() as playwright:
        links = Unsubscribes.from_master_key(MASTER_KEY, base)
        assert links.page_url(shopper_id).startswith(f"{base}/card/unsubscribe?token=")
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
                context = await browser.new_context(viewport=size, locale="ru-RU")
                page = await context.new_page()
                await page.goto(links.page_url(shopper_id))
                await page.screenshot(path=str(SHOTS / f"unsubscribe-{name}.png"), full_page=True)
                await page.evaluate(AXE.read_text())
                result = await page.evaluate("async () => await axe.run(document)")
                blocking = [v["id"] for v in result["violations"] if v["impact"] in BLOCKING]
                assert blocking == [], blocking
                await context.close()
            async with pool.acquire() as conn:  # looking changed nothing
                assert not await unsubscribe.is_unsubscribed(conn, shopper_id)

            context = await browser.new_context(viewport=PHONE, locale="ru-RU")
            page = await context.new_page()
            await page.goto(links.page_url(shopper_id))
            await page.get_by_role("link", name="English").click()  # keeps the token
            await page.get_by_role("heading", name="Unsubscribe from emails").wait_for()
            await page.get_by_role("link", name="Русский").click()
            await page.get_by_role("button", name="Отписаться").click()
            await page.get_by_role("heading", name="Вы отписаны").wait_for()
            await page.screenshot(path=str(SHOTS / "unsubscribed-phone.png"), full_page=True)
            async with pool.acquire() as conn:
                assert await unsubscribe.is_unsubscribed(conn, shopper_id)
            await page.goto(links.page_url(shopper_id))  # again: nothing more to do
            assert await page.get_by_role("button").count() == 0
            assert "уже отписаны" in await page.inner_text("main")

            forged = await page.goto(f"{base}/card/unsubscribe?token={shopper_id}.{'A' * 43}")
            assert forged is not None
            assert forged.status == 400
            assert await page.get_attribute("[data-code]", "data-code") == (
                "unsubscribe_token_invalid"
            )
            await context.close()
        finally:
            await browser.close()
