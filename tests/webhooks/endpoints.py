"""Endpoints and secrets written straight into the schema, as the endpoint API writes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infra.db import Conn
from partners import keybox
from partners.keybox import KeyBox
from partners.webhooks import secrets

PURCHASES = ("purchase.created",)


def network_box(data_dir: Path) -> KeyBox:
    """The KeyBox the server builds from the same data dir (no COALITION_MASTER_KEY)."""
    return keybox.load_or_create(data_dir, None)


async def add_secret(conn: Conn, box: KeyBox, endpoint_id: int) -> str:
    secret = secrets.new_secret()
    secret_id = secrets.new_public_id(secrets.SECRET_ID_PREFIX)
    await conn.execute(
        "INSERT INTO webhooks.endpoint_secret (secret_id, endpoint_id, secret_sealed)"
        " VALUES ($1, $2, $3)",
        secret_id,
        endpoint_id,
        secrets.seal(box, secret_id, secret),
    )
    return secret


async def add_endpoint(
    conn: Conn,
    box: KeyBox,
    partner_id: int,
    url: str,
    event_types: Sequence[str] = PURCHASES,
) -> tuple[int, str]:
    """A new enabled endpoint with its current secret: (endpoint_id, secret)."""
    endpoint_id: int = await conn.fetchval(
        "INSERT INTO webhooks.endpoint (public_id, partner_id, url, event_types)"
        " VALUES ($1, $2, $3, $4) RETURNING endpoint_id",
        secrets.new_public_id("ep_"),
        partner_id,
        url,
        list(event_types),
    )
    return endpoint_id, await add_secret(conn, box, endpoint_id)


async def rotate(conn: Conn, box: KeyBox, endpoint_id: int) -> str:
    """What rotate-secret writes: the current secret expires in 24 h, a new one is current."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE webhooks.endpoint_secret"
            " SET expires_at = now() + make_interval(secs => $2)"
            " WHERE endpoint_id = $1 AND expires_at IS NULL",
            endpoint_id,
            float(secrets.ROTATION_OVERLAP_S),
        )
        return await add_secret(conn, box, endpoint_id)
