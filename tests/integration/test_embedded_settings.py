"""The embedded cluster runs with infra.embedded.SETTINGS (`make run`, `coalition bench`)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from infra import embedded


async def test_a_fresh_embedded_cluster_runs_with_its_settings(tmp_path: Path) -> None:
    assert embedded.SETTINGS["wal_init_zero"] == "off"
    cluster = embedded.start(tmp_path, cleanup_mode="delete")
    try:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            for name, value in embedded.SETTINGS.items():
                assert await conn.fetchval("SELECT current_setting($1)", name) == value
        finally:
            await conn.close()
    finally:
        cluster.stop()
