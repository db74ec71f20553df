"""Card page sign-in: a shopper token exchanged once, or a one-time code sent by email; the
session that follows, held as a random id in an HttpOnly cookie and stored as its SHA-256.

Reads and writes of the card page's own tables only; what a shopper sees comes from the same
`shoppers` service functions the `/v1/me` API calls.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.card import queries
from gateway.tokens import LEEWAY_S, SHOPPER_TTL_S_MAX, ShopperClaims
from infra.db import Conn

SESSION_TTL_S = 8 * 3600  # a working day; the shopper signs in again by a link or a code
SESSION_ID_BYTES = 32
CODE_DIGITS = 6
CODE_TTL_S = 600
CODE_TRIES_MAX = 5
CODES_PER_EMAIL_MAX = 5  # within CODES_WINDOW_S: 25 guesses an hour at most, of a million
CODES_WINDOW_S = 3600
CSRF_INFO = b"coalition card csrf"


class SignInRefused(Exception):
    """A sign-in that does not open a session; `code` is shown on the page (stable)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Session:
    session_id: str  # the cookie's value; never stored
    shopper_id: int
    expires_at: datetime

    @property
    def csrf_token(self) -> str:
        return csrf_token(self.session_id)


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def csrf_token(session_id: str) -> str:
    """The hidden form token of a session: bound to it, so a token of another session fails."""
    return hmac.new(session_id.encode(), CSRF_INFO, hashlib.sha256).hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)


async def open_session(conn: Conn, shopper_id: int) -> Session:
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    await conn.execute(queries.INSERT_SESSION, session_hash(session_id), shopper_id, SESSION_TTL_S)
    row = await conn.fetchrow(queries.LIVE_SESSION, session_hash(session_id))
    assert row is not None, "a session just opened is live"
    return Session(session_id, shopper_id, row["expires_at"])


async def live_session(conn: Conn, session_id: str | None) -> Session | None:
    if not session_id:
        return None
    row = await conn.fetchrow(queries.LIVE_SESSION, session_hash(session_id))
    if row is None:
        return None
    return Session(session_id, int(row["shopper_id"]), row["expires_at"])


async def end_session(conn: Conn, session_id: str) -> None:
    await conn.execute(queries.END_SESSION, session_hash(session_id))


async def end_sessions_of(conn: Conn, shopper_id: int) -> None:
    """Erasure: every session and pending code of the shopper goes."""
    await conn.execute(queries.END_SESSIONS_OF, shopper_id)
    await conn.execute(queries.DELETE_CODES_OF, shopper_id)


async def exchange_token(conn: Conn, claims: ShopperClaims) -> Session:
    """A verified shopper token becomes a session, once: its `jti` is then spent."""
    if not claims.token_id or claims.token_id == "None":  # noqa: S105 (str(None) of a missing jti)
        raise SignInRefused("token_invalid")  # without a jti a link could not be spent
    await conn.execute(queries.FORGET_SPENT_LINKS)
    await conn.execute(queries.FORGET_OLD_SESSIONS)
    # Kept for longer than any token can live: a spent token is always still known.
    keep_until = datetime.fromtimestamp(
        datetime.now(UTC).timestamp() + SHOPPER_TTL_S_MAX + 2 * LEEWAY_S, UTC
    )
    if await conn.fetchval(queries.MARK_LINK_SPENT, claims.token_id, keep_until) is None:
        raise SignInRefused("token_spent")
    return await open_session(conn, claims.shopper_id)


class CodeHasher:
    """Keyed HMACs of email addresses and codes, under a key derived from the master key."""

    def __init__(self, key: bytes) -> None:
        assert len(key) >= 32, "a 256-bit key"
        self._key = key

    def email(self, email: str) -> bytes:
        return self._mac(b"email:" + normalize_email(email).encode())

    def code(self, email_hash: bytes, code: str) -> bytes:
        return self._mac(b"code:" + email_hash + b":" + code.encode())

    def _mac(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass(frozen=True)
class IssuedCode:
    code_id: int
    code: str  # sent, never stored


async def issue_code(conn: Conn, hasher: CodeHasher, email: str, shopper_id: int) -> IssuedCode:
    """A new code for the address, unless it had CODES_PER_EMAIL_MAX in the window."""
    email_hash = hasher.email(email)
    await conn.execute(queries.FORGET_OLD_CODES)
    sent = await conn.fetchval(queries.CODES_SENT_SINCE, email_hash, CODES_WINDOW_S)
    if sent >= CODES_PER_EMAIL_MAX:
        raise SignInRefused("code_rate_limited")
    code = new_code()
    code_id = await conn.fetchval(
        queries.INSERT_CODE, email_hash, shopper_id, hasher.code(email_hash, code), CODE_TTL_S
    )
    return IssuedCode(int(code_id), code)


@dataclass(frozen=True)
class CodeOutcome:
    """A code's try: the shopper it signs in, or the refusal. A refused try is committed, so
    it is an answer and not an exception (an exception would roll the count back)."""

    shopper_id: int | None
    refusal: str | None = None


async def redeem_code(conn: Conn, hasher: CodeHasher, email: str, code: str) -> CodeOutcome:
    """The shopper a correct code names; each try counts, a code dies after the last try."""
    email_hash = hasher.email(email)
    row = await conn.fetchrow(queries.LATEST_CODE, email_hash)
    if row is None:
        return CodeOutcome(None, "code_invalid")
    if row["tries"] >= CODE_TRIES_MAX:
        return CodeOutcome(None, "code_tries_exhausted")
    await conn.execute(queries.COUNT_TRY, row["code_id"])
    well_formed = len(code) == CODE_DIGITS and code.isdigit()
    if not well_formed or not hmac.compare_digest(
        bytes(row["code_hash"]), hasher.code(email_hash, code)
    ):
        return CodeOutcome(None, "code_invalid")
    await conn.execute(queries.USE_CODE, row["code_id"])
    return CodeOutcome(int(row["shopper_id"]))
