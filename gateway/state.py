"""What the running app holds: settings, the pool, the signing keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from gateway.tokens import SigningKey
from infra.settings import Settings


@dataclass
class AppState:
    settings: Settings
    signing_key: SigningKey
    pool: asyncpg.Pool | None = None
    verification_keys: dict[str, SigningKey] = field(default_factory=dict)

    def require_pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "the pool is opened in the app's lifespan"
        return self.pool
