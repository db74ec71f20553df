"""`coalition verify` on a live database: 0 when the books hold, non-zero naming the break."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from ledger import service as ledger
from tests.e2e.test_cli import base_env


def run_verify(database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = base_env(data_dir, DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "verify"],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_verify_passes_on_sound_books_and_names_a_tampered_posting(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    async with pool.acquire() as conn:
        await ledger.earn(
            conn,
            idempotency_key="cli-verify-1",
            shopper_id=1,
            partner_id=1,
            points=100,
            issue_price_micros=10_000,
            expires_at=datetime.now(UTC) + timedelta(days=30),
        )
        await ledger.seal_blocks(conn)
    sound = await asyncio.to_thread(run_verify, database_url, tmp_path)
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "every invariant holds" in sound.stdout

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE ledger.posting SET amount = amount + 1 "
            "WHERE posting_id = (SELECT min(posting_id) FROM ledger.posting)"
        )
    broken = await asyncio.to_thread(run_verify, database_url, tmp_path)
    assert broken.returncode != 0
    assert "invariant 1" in broken.stdout
    assert "problem(s) found" in broken.stderr


def run_settle(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(data_dir, DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "settle", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_settle_until_closes_once_and_then_is_a_no_op(
    database_url: str, tmp_path: Path
) -> None:
    await asyncio.sleep(1.1)  # the earn above lands strictly before a whole-second period end
    until = datetime.now(UTC).replace(microsecond=0).isoformat()
    first = await asyncio.to_thread(run_settle, database_url, tmp_path, "--until", until)
    again = await asyncio.to_thread(run_settle, database_url, tmp_path, "--until", until)
    assert first.returncode == 0, first.stderr
    assert "closed periods: none" not in first.stdout
    assert again.returncode == 0, again.stderr
    assert "closed periods: none" in again.stdout


async def test_settle_refuses_a_time_without_offset(tmp_path: Path, database_url: str) -> None:
    result = await asyncio.to_thread(run_settle, database_url, tmp_path, "--until", "2026-01-01")
    assert result.returncode != 0
    assert "needs a UTC offset" in result.stderr


async def test_settle_refuses_a_future_time_with_one_line(
    tmp_path: Path, database_url: str
) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    result = await asyncio.to_thread(run_settle, database_url, tmp_path, "--until", future)
    assert result.returncode != 0
    assert "in the future" in result.stderr
    assert "Traceback" not in result.stderr
