"""`coalition card-link CARD` prints a one-time link that opens the card's page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.tokens import SigningKey
from tests.card.support import network, shopper_with_points
from tests.e2e.test_cli import base_env, coalition


async def test_the_cli_link_signs_in_once(
    base_url: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    database_url: str,
    data_dir: Path,
) -> None:
    grocer, fuel = await network(http, signing_key, "clilink")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 2_000)
    env = base_env(data_dir, DATABASE_URL=database_url)
    printed = await asyncio.to_thread(
        coalition, "card-link", shopper.card_number, "--base-url", base_url, env=env
    )
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert link.startswith(f"{base_url}/card/sign-in?token=")
    async with httpx.AsyncClient(timeout=10) as client:
        opened = await client.get(link)
        assert opened.status_code == 303
        page = await client.get(f"{base_url}/card")
        assert 'data-balance="20"' in page.text
    assert (await http.get(link)).status_code == 401
