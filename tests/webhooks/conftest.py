"""Webhook endpoint API tests: a real server per module, really signed partner calls."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.tokens import SigningKey, load_or_create
from tests.support.partner_network import Onboarded, signed
from tests.support.server import running_server, server_settings

PUBLIC_URL = "https://93.184.215.14/hooks"  # a literal public address: nothing is resolved
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
def allow_loopback() -> bool:
    """What COALITION_WEBHOOKS_ALLOW_LOOPBACK is for the module's server (override per module)."""
    return False


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path, allow_loopback: bool) -> AsyncIterator[str]:
    settings = server_settings(database_url, data_dir, webhooks_allow_loopback=allow_loopback)
    async with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@dataclass(frozen=True)
class Api:
    """Signed calls of one partner, any method (the SDK has no webhook calls)."""

    http: httpx.AsyncClient
    base_url: str
    partner: Onboarded

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | bool | None = True,
    ) -> httpx.Response:
        """`idempotency_key=True` sends a fresh key on a mutating call, False/None sends none."""
        content = b"" if body is None else json.dumps(body).encode()
        key: str | None
        if idempotency_key is True:
            key = f"wh-{next(_keys)}" if method != "GET" else None
        else:
            key = idempotency_key or None
        headers = signed(
            self.partner, method, f"{self.base_url}{path}", content, idempotency_key=key
        )
        return await self.http.request(method, path, content=content, headers=headers)

    async def create(self, url: str = PUBLIC_URL, **fields: Any) -> dict[str, Any]:
        body = {"url": url, "events": ["purchase.created"], **fields}
        answer = await self.call("POST", "/v1/webhook-endpoints", body)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created
