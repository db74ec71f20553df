"""What the running app holds: settings, the pool, the signing keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from gateway.group_commit import GroupCommit
from gateway.replica import ReadReplica
from gateway.tokens import SigningKey
from infra.settings import Settings


@dataclass
class AppState:
    settings: Settings
    signing_key: SigningKey
    pool: asyncpg.Pool | None = None
    group_commit: GroupCommit | None = None  # None: every call commits alone
    verification_keys: dict[str, SigningKey] = field(default_factory=dict)
    read_replica: ReadReplica | None = None  # COALITION_REPLICA_URL; None: reads on the primary

    def require_pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "the pool is opened in the app's lifespan"
        return self.pool

    def read_pool(self) -> asyncpg.Pool | None:
        """The replica's pool while it is within its lag bound; None: read on the primary."""
        replica = self.read_replica
        return replica.pool if replica is not None and replica.fresh() else None
