"""`coalition card-link CARD`: a one-time sign-in link to a shopper's card page, for the demo
and for support (what a partner's app does with `POST /v1/shopper-tokens`)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from gateway.card import queries
from gateway.tokens import SHOPPER_TTL_S_MAX, load_or_create, mint_shopper
from infra import db, embedded
from infra.settings import Settings
from shoppers import service

DatabaseFn = Callable[[Settings], tuple[str, embedded.EmbeddedPostgres | None]]
LINK_TTL_S = 900


def register(sub: Any, database: DatabaseFn) -> None:
    link = sub.add_parser("card-link", help="print a one-time sign-in link to a card's page")
    link.add_argument("card_number")
    link.add_argument("--base-url", default=None, help="default: http://HOST:PORT")
    link.set_defaults(handler=lambda args, settings: _card_link(args, settings, database))


async def _holder(dsn: str, card_number: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        holder = await service.resolve_card(conn, card_number)
        partner_id = await conn.fetchval(queries.ENROLLING_PARTNER, holder.shopper_id)
    finally:
        await conn.close()
    return holder.shopper_id, int(partner_id)


def _card_link(args: argparse.Namespace, settings: Settings, database: DatabaseFn) -> int:
    assert LINK_TTL_S <= SHOPPER_TTL_S_MAX
    dsn, server = database(settings)
    try:
        shopper_id, partner_id = asyncio.run(_holder(dsn, args.card_number))
    finally:
        if server is not None:
            server.stop()
    key = load_or_create(settings.data_dir, settings.jwt_private_key_pem)
    token = mint_shopper(key, shopper_id=shopper_id, partner_id=partner_id, ttl_s=LINK_TTL_S)
    base = args.base_url or f"http://{settings.host}:{settings.port}"
    print(f"{base.rstrip('/')}/card/sign-in?token={token}")
    return 0
