"""Fixtures for console tests: the real server, Debian's Chromium driven by Playwright, users.

Chromium is /usr/bin/chromium (apt-get install chromium); Playwright never downloads one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from gateway.console import users
from gateway.tokens import Role, SigningKey, load_or_create
from tests.console.browser import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
)
from tests.support.server import running_server, server_settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    async with running_server(server_settings(database_url, data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


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
