"""`coalition user create EMAIL --role ROLE` with the password on stdin: an argon2id hash,
the audit entry, clear refusals; and the sign-in rules below the form (unit-level, real DB)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from gateway.console import users
from gateway.console.formatting import money, points
from gateway.tokens import Role

COMMAND_TIMEOUT_S = 60


def _create(
    database_url: str, data_dir: Path, email: str, role: str, password: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.update({"DATABASE_URL": database_url, "COALITION_DATA_DIR": str(data_dir)})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "user", "create", email, "--role", role],
        input=password + "\n",
        env=env,
        text=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


async def test_the_cli_creates_a_user_who_can_sign_in(
    database_url: str, data_dir: Path, pool: asyncpg.Pool
) -> None:
    made = _create(database_url, data_dir, "Nora@Ops.test", "auditor", "a long passphrase")
    assert made.returncode == 0, made.stderr
    assert "nora@ops.test" in made.stdout
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT role, password_hash FROM console.users WHERE email = 'nora@ops.test'"
        )
        assert row is not None
        assert row["role"] == "auditor"
        assert row["password_hash"].startswith("$argon2id$")
        assert "a long passphrase" not in row["password_hash"]
        signed = await users.sign_in(
            conn, "nora@ops.test", "a long passphrase", now=datetime.now(UTC)
        )
        assert isinstance(signed, users.Session)
        assert signed.user.role is Role.AUDITOR
        audited = await conn.fetchval(
            "SELECT count(*) FROM console.audit_log WHERE action = 'user.create' "
            "AND subject = 'user:nora@ops.test'"
        )
        assert audited == 1


async def test_the_cli_refuses_a_short_password_and_a_second_user_with_one_email(
    database_url: str, data_dir: Path
) -> None:
    short = _create(database_url, data_dir, "oscar@ops.test", "admin", "short")
    assert short.returncode != 0
    assert "password needs" in short.stderr
    assert "Traceback" not in short.stderr
    first = _create(database_url, data_dir, "pia@ops.test", "finance", "a long passphrase")
    again = _create(database_url, data_dir, "pia@ops.test", "admin", "another passphrase")
    assert first.returncode == 0, first.stderr
    assert again.returncode != 0
    assert "exists already" in again.stderr


async def test_sessions_are_stored_hashed_and_expire(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await users.create_user(
            conn, "quin@ops.test", Role.SUPPORT, "a long passphrase", created_by="t"
        )
        signed = await users.sign_in(conn, "quin@ops.test", "a long passphrase", now=now)
        assert isinstance(signed, users.Session)
        stored = await conn.fetchval(
            "SELECT count(*) FROM console.sessions WHERE session_digest = $1::text::bytea",
            signed.token,
        )
        assert stored == 0  # the token itself is nowhere in the table
        assert await users.session_user(conn, signed.token, now=now) == signed.user
        later = now + timedelta(seconds=users.SESSION_TTL_S + 1)
        assert await users.session_user(conn, signed.token, now=later) is None
        await users.sign_out(conn, signed.token)
        assert await users.session_user(conn, signed.token, now=now) is None


async def test_an_unknown_email_counts_toward_its_own_lockout(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        outcomes = [
            await users.sign_in(conn, "nobody@ops.test", "guess", now=now)
            for _ in range(users.FAILURES_MAX + 1)
        ]
        later = now + timedelta(seconds=users.LOCKOUT_WINDOW_S + 1)
        after_window = await users.sign_in(conn, "nobody@ops.test", "guess", now=later)
    assert [o == users.Refused(locked=False) for o in outcomes[: users.FAILURES_MAX - 1]] == [
        True
    ] * (users.FAILURES_MAX - 1)
    assert outcomes[users.FAILURES_MAX - 1 :] == [users.Refused(locked=True)] * 2
    assert after_window == users.Refused(locked=False)


def test_money_and_points_read_as_people_write_them() -> None:
    assert money(5_340_000, "EUR") == "EUR 5.34"
    assert money(-1_785_000, "EUR") == "EUR \u22121.78"  # toward zero, to the cent
    assert money(123_456_789_000, "EUR") == "EUR 123,456.78"
    assert money(5_000_000, "JPY", 1_000_000) == "JPY 5"
    assert points(-12_345) == "\u221212,345"
