"""Liveness, readiness and the public JWKS."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from contracts.health import Health, Readiness
from gateway import availability
from gateway.state import AppState
from gateway.tokens import jwks
from infra import migrations

READY_TIMEOUT_S = 2.0


@get("/healthz", include_in_schema=True, sync_to_thread=False, opt={"skip_rate_limit": True})
def healthz() -> Health:
    return Health(status="ok")


async def _readiness(pool: asyncpg.Pool) -> Readiness:
    async with pool.acquire(timeout=READY_TIMEOUT_S) as conn:
        todo = await migrations.pending(conn)
    names = [f"{m.version:04d}_{m.name}" for m in todo]
    return Readiness(
        status="ready" if not names else "migrating", database="up", migrations_pending=names
    )


@get(
    "/readyz",
    responses={
        503: ResponseSpec(
            data_container=Readiness,
            description="Not ready: the database is down or migrations are pending or failed.",
            generate_examples=False,
        )
    },
)
async def readyz(state: State) -> Response[Readiness]:
    app_state: AppState = state.app
    try:
        readiness = await asyncio.wait_for(_readiness(app_state.require_pool()), READY_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        availability.STATE.outage(exc)  # logged once per outage, as any request's
        down = Readiness(
            status="unavailable", database=f"down: {type(exc).__name__}", migrations_pending=[]
        )
        return Response(down, status_code=503)
    except migrations.MigrationError as exc:
        broken = Readiness(
            status="unavailable", database=f"migrations: {exc}", migrations_pending=[]
        )
        return Response(broken, status_code=503)
    await availability.STATE.mark_up()
    return Response(readiness, status_code=200 if readiness.status == "ready" else 503)


@get("/.well-known/jwks.json", sync_to_thread=False)
def jwks_document(state: State) -> dict[str, Any]:
    app_state: AppState = state.app
    return jwks(list(app_state.verification_keys.values()))


ROUTES = [healthz, readyz, jwks_document]
