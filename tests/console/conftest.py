"""Fixtures for console tests: the real server, Debian's Chromium driven by Playwright, users.

Chromium is /usr/bin/chromium (tests/support/chromium.py); Playwright never downloads one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from gateway.console import users
from gateway.tokens import Role
from tests.console.browser import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
)
from tests.support.http_fixtures import base_url, data_dir, http, signing_key

__all__ = ["base_url", "data_dir", "http", "signing_key"]  # the fixtures, shared


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    created = await browser.new_context(base_url=base_url, viewport=DESKTOP)
    created.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield created
    finally:
        await created.close()


async def make_user(pool: asyncpg.Pool, email: str, role: Role) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await users.create_user(conn, email, role, PASSWORD, created_by="test")
    return email


@pytest.fixture(scope="module")
async def finance(pool: asyncpg.Pool) -> str:
    return await make_user(pool, "fiona@ops.test", Role.FINANCE)


@pytest.fixture(scope="module")
async def admin(pool: asyncpg.Pool) -> str:
    return await make_user(pool, "adam@ops.test", Role.ADMIN)


@pytest.fixture(scope="module")
async def support(pool: asyncpg.Pool) -> str:
    return await make_user(pool, "sam@ops.test", Role.SUPPORT)


@pytest.fixture(scope="module")
async def auditor(pool: asyncpg.Pool) -> str:
    return await make_user(pool, "ada@ops.test", Role.AUDITOR)
