"""Console users: argon2id passwords, sessions kept as digests, a lockout after failures,
and a TOTP second step (gateway/console/totp.py).

A session id is 32 random bytes shown once, in the cookie; the database keeps its SHA-256, so
a copy of the sessions table opens nothing. Failed sign-ins are counted per typed email, known
or not, and a locked email is refused even with the right password until the window passes.

A session has a stage. Past the password, a user enrolled in TOTP gets a short 'totp' session
that opens only the code step; a user whose role requires TOTP and who has not enrolled gets an
'enrol' session that opens only the enrolment page. A wrong code counts as a failed sign-in.
Either way the full session is a new id, so a pending session's cookie never becomes one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from contracts.errors import DomainError
from gateway.console import _queries as q
from gateway.console import _totp_queries as tq
from gateway.console import totp
from gateway.tokens import Role
from infra.db import Conn
from partners.keybox import KeyBox

SESSION_TTL_S = 8 * 3600
SESSION_ID_BYTES = 32
FAILURES_MAX = 5
LOCKOUT_WINDOW_S = 15 * 60
PASSWORD_CHARS_MIN = 10
PASSWORD_CHARS_MAX = 1_000
EMAIL_CHARS_MAX = 254
PENDING_TTL_S = 10 * 60  # the code step or the enrolment, right after the password
STAGE_FULL = "full"
STAGE_TOTP = "totp"
STAGE_ENROL = "enrol"

_hasher = PasswordHasher()
# Verified against when the email is unknown, so an unknown email costs what a known one does.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserInvalid(DomainError):
    """A user could not be created (bad email, role or password, or the email exists)."""

    code = "console_user_invalid"


@dataclass(frozen=True)
class ConsoleUser:
    user_id: int
    email: str
    role: Role
    stage: str = STAGE_FULL


@dataclass(frozen=True)
class Session:
    token: str  # goes to the cookie only
    user: ConsoleUser
    expires_at: datetime

    @property
    def ttl_s(self) -> int:
        return SESSION_TTL_S if self.user.stage == STAGE_FULL else PENDING_TTL_S


@dataclass(frozen=True)
class Refused:
    locked: bool  # True: too many failures in the window, whatever the password


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_new_user(email: str, password: str) -> str:
    """The normalized email, or UserInvalid saying what is wrong."""
    email = normalize_email(email)
    local, at, domain = email.partition("@")
    if not (local and at and domain) or len(email) > EMAIL_CHARS_MAX or " " in email:
        raise UserInvalid(f"{email!r} is not an email address")
    if not PASSWORD_CHARS_MIN <= len(password) <= PASSWORD_CHARS_MAX:
        raise UserInvalid(f"the password needs {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} chars")
    return email


async def create_user(
    conn: Conn, email: str, role: Role, password: str, *, created_by: str
) -> ConsoleUser:
    email = check_new_user(email, password)
    row = await conn.fetchrow(q.INSERT_USER, email, role.value, _hasher.hash(password), created_by)
    if row is None:
        raise UserInvalid(f"a console user {email} exists already")
    return ConsoleUser(row["user_id"], row["email"], Role(row["role"]))


async def sign_in(conn: Conn, email: str, password: str, *, now: datetime) -> Session | Refused:
    """A new session, or why not. Runs in the caller's transaction."""
    email = normalize_email(email)[:EMAIL_CHARS_MAX]
    window_start = now - timedelta(seconds=LOCKOUT_WINDOW_S)
    await conn.execute(q.FORGET_OLD_FAILURES, window_start)
    failures = await conn.fetchval(q.RECENT_FAILURES, email, window_start)
    if failures >= FAILURES_MAX:
        return Refused(locked=True)
    row = await conn.fetchrow(q.USER_BY_EMAIL, email)
    if row is None or not _verify(row["password_hash"], password[:PASSWORD_CHARS_MAX]):
        await conn.execute(q.RECORD_FAILURE, email, now)
        return Refused(locked=failures + 1 >= FAILURES_MAX)
    if _hasher.check_needs_rehash(row["password_hash"]):
        await conn.execute(q.SET_PASSWORD_HASH, row["user_id"], _hasher.hash(password))
    user = ConsoleUser(row["user_id"], row["email"], Role(row["role"]))
    if await totp.is_enrolled(conn, user.user_id):
        stage = STAGE_TOTP  # the failures stay counted until the code is right
    elif await totp.is_required(conn, user.role):
        stage = STAGE_ENROL
    else:
        stage = STAGE_FULL
        await conn.execute(q.FORGET_FAILURES, email)
    return await _new_session(conn, ConsoleUser(user.user_id, user.email, user.role, stage), now)


async def _new_session(conn: Conn, user: ConsoleUser, now: datetime) -> Session:
    await conn.execute(q.FORGET_EXPIRED_SESSIONS, now)
    token = secrets.token_urlsafe(SESSION_ID_BYTES)
    ttl_s = SESSION_TTL_S if user.stage == STAGE_FULL else PENDING_TTL_S
    expires_at = now + timedelta(seconds=ttl_s)
    await conn.execute(
        tq.INSERT_STAGED_SESSION, _digest(token), user.user_id, now, expires_at, user.stage
    )
    return Session(token=token, user=user, expires_at=expires_at)


async def second_step(
    conn: Conn, box: KeyBox, token: str, code: str, *, now: datetime
) -> Session | Refused | None:
    """The code after the password: a full session, a refusal (counted like a wrong
    password), or None when `token` is no pending code step."""
    user = await session_user(conn, token, now=now)
    if user is None or user.stage != STAGE_TOTP:
        return None
    window_start = now - timedelta(seconds=LOCKOUT_WINDOW_S)
    failures = await conn.fetchval(q.RECENT_FAILURES, user.email, window_start)
    if failures >= FAILURES_MAX:
        await sign_out(conn, token)
        return Refused(locked=True)
    if not await totp.check_code(conn, box, user.user_id, code, now=now):
        await conn.execute(q.RECORD_FAILURE, user.email, now)
        if failures + 1 >= FAILURES_MAX:
            await sign_out(conn, token)
            return Refused(locked=True)
        return Refused(locked=False)
    await conn.execute(q.FORGET_FAILURES, user.email)
    return await promote(conn, token, user, now=now)


async def promote(conn: Conn, token: str, user: ConsoleUser, *, now: datetime) -> Session:
    """The pending session replaced by a full one (a new id)."""
    await sign_out(conn, token)
    if user.stage == STAGE_ENROL:
        await conn.execute(q.FORGET_FAILURES, user.email)
    return await _new_session(conn, ConsoleUser(user.user_id, user.email, user.role), now)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def session_user(conn: Conn, token: str, *, now: datetime) -> ConsoleUser | None:
    row = await conn.fetchrow(tq.SESSION_USER_STAGED, _digest(token), now)
    if row is None:
        return None
    return ConsoleUser(row["user_id"], row["email"], Role(row["role"]), row["stage"])


async def sign_out(conn: Conn, token: str) -> None:
    await conn.execute(q.DELETE_SESSION, _digest(token))
