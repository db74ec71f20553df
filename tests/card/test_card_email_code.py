"""Sign-in by a one-time code read from a real SMTP server (aiosmtpd): the code opens a
session once; wrong codes count, and after five the code is dead even when right."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import async_playwright

from gateway.tokens import SigningKey
from shoppers.mail import contacts
from tests.card.support import csrf_of, network, shopper_with_points
from tests.card.test_card_browser import shoot, violations
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.support.server import free_port, running_server, server_settings

CODE = re.compile(r"\b(\d{6})\b")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def code_for(self, address: str) -> str:
        sent = [m for m in self.messages if m["To"] == address]
        assert sent, f"a message to {address}"
        part = sent[-1].get_body(("plain",))
        assert part is not None
        found = CODE.search(part.get_content())
        assert found is not None, "the message holds a 6-digit code"
        return found.group(1)


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def base_url(
    database_url: str, data_dir: Path, smtp: tuple[Inbox, int]
) -> AsyncIterator[str]:
    settings = server_settings(database_url, data_dir, smtp_url=f"smtp://127.0.0.1:{smtp[1]}")
    async with running_server(settings) as url:
        yield url


async def with_address(database_url: str, shopper_id: int, email: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await contacts.set_shopper_contact(
            conn, shopper_id, email=email, locale="en", email_given=True, locale_given=True
        )
    finally:
        await conn.close()


async def ask_code(client: httpx.AsyncClient, email: str) -> str:
    csrf = csrf_of((await client.get("/card/sign-in")).text)
    sent = await client.post("/card/sign-in/email", data={"csrf": csrf, "email": email})
    assert sent.status_code == 200, sent.text
    return csrf


async def test_a_code_from_the_mailbox_signs_in_once(
    base_url: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    database_url: str,
    smtp: tuple[Inbox, int],
) -> None:
    grocer, fuel = await network(http, signing_key, "mailcode")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 7_700)
    await with_address(database_url, shopper.shopper_id, "ann@shop.example")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        csrf = await ask_code(client, "Ann@Shop.example")
        code = smtp[0].code_for("ann@shop.example")
        form = {"csrf": csrf, "email": "ann@shop.example", "code": code}
        signed = await client.post("/card/sign-in/code", data=form)
        assert signed.status_code == 303, signed.text
        page = await client.get("/card")
        assert 'data-balance="77"' in page.text
        again = await client.post("/card/sign-in/code", data=form)
        assert again.status_code == 400
        assert 'data-code="code_invalid"' in again.text


async def test_five_wrong_tries_kill_the_code(
    base_url: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    database_url: str,
    smtp: tuple[Inbox, int],
) -> None:
    grocer, fuel = await network(http, signing_key, "mailtries")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    await with_address(database_url, shopper.shopper_id, "bob@shop.example")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        csrf = await ask_code(client, "bob@shop.example")
        code = smtp[0].code_for("bob@shop.example")
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            refused = await client.post(
                "/card/sign-in/code",
                data={"csrf": csrf, "email": "bob@shop.example", "code": wrong},
            )
            assert 'data-code="code_invalid"' in refused.text
        right = await client.post(
            "/card/sign-in/code", data={"csrf": csrf, "email": "bob@shop.example", "code": code}
        )
        assert right.status_code == 400
        assert 'data-code="code_tries_exhausted"' in right.text
        assert "card_session" not in client.cookies


async def test_in_chromium_a_shopper_signs_in_with_the_mailed_code(
    base_url: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    database_url: str,
    smtp: tuple[Inbox, int],
) -> None:
    grocer, fuel = await network(http, signing_key, "mailbrowser")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 3_300)
    await with_address(database_url, shopper.shopper_id, "cy@shop.example")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=PHONE, bypass_csp=True)
        page = await context.new_page()
        await page.goto(f"{base_url}/card")
        assert page.url == f"{base_url}/card/sign-in"
        await page.get_by_label("Email").fill("cy@shop.example")
        await page.get_by_role("button", name="Email me a code").click()
        await page.get_by_label("Code").fill(smtp[0].code_for("cy@shop.example"))
        assert await violations(page) == []
        await shoot(page, "code-phone")
        await page.get_by_role("button", name="Sign in").click()
        assert page.url == f"{base_url}/card"
        assert await page.locator("[data-balance]").get_attribute("data-balance") == "33"
        await browser.close()
