"""The console's TOTP second factor (RFC 6238 via pyotp): enrolment, checking a code, the
per-role policy.

The secret is sealed with the master key (partners.keybox, AES-GCM, the user id bound in as
associated data), shown once while enrolling and never again; it is never logged. A code is
accepted for the time step before, at or after now, and only at a step later than the last
one accepted, so an observed code cannot be replayed within its window.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

from gateway.console import _totp_queries as q
from gateway.tokens import Role
from infra.db import Conn
from partners.keybox import KeyBox

ISSUER = "Coalition console"
CODE_DIGITS = 6
STEP_S = 30
DRIFT_STEPS = 1  # a phone's clock a step off still signs in
QR_SCALE = 4


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for manual entry: on the enrolment page only
    uri: str
    qr_svg: str


def _key_id(user_id: int) -> str:
    return f"console-totp:{user_id}"


def _qr_svg(uri: str) -> str:
    svg: str = segno.make(uri, error="m").svg_inline(scale=QR_SCALE, title="TOTP enrolment QR code")
    return svg


def enrolment_of(secret: str, email: str) -> Enrolment:
    uri = pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_S).provisioning_uri(
        name=email, issuer_name=ISSUER
    )
    return Enrolment(secret=secret, uri=uri, qr_svg=_qr_svg(uri))


async def is_enrolled(conn: Conn, user_id: int) -> bool:
    return bool(await conn.fetchval(q.IS_ENROLLED, user_id))


async def start_enrolment(conn: Conn, box: KeyBox, user_id: int, email: str) -> Enrolment:
    """The pending secret (a new one if none): it takes effect once a code confirms it."""
    sealed = await conn.fetchval(q.PENDING, user_id)
    if sealed is None:
        secret = pyotp.random_base32()
        await conn.execute(q.SET_PENDING, user_id, box.seal(_key_id(user_id), secret))
    else:
        secret = box.open(_key_id(user_id), sealed)
    return enrolment_of(secret, email)


def _matching_step(secret: str, code: str, *, now: datetime, after_step: int | None) -> int | None:
    if len(code) != CODE_DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=CODE_DIGITS, interval=STEP_S)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if after_step is not None and step <= after_step:
            continue  # used already, or older than a code used already
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def confirm_enrolment(
    conn: Conn, box: KeyBox, user_id: int, code: str, *, now: datetime
) -> bool:
    """The pending secret becomes the user's when `code` is valid for it."""
    sealed = await conn.fetchval(q.PENDING, user_id)
    if sealed is None:
        return False
    step = _matching_step(box.open(_key_id(user_id), sealed), code, now=now, after_step=None)
    if step is None:
        return False
    await conn.execute(q.CONFIRM, user_id, now, step)
    return True


async def check_code(conn: Conn, box: KeyBox, user_id: int, code: str, *, now: datetime) -> bool:
    """True once per time step for a valid code of the user's enrolled secret."""
    row = await conn.fetchrow(q.ENROLLED_FOR_UPDATE, user_id)
    if row is None or row["totp_sealed"] is None:
        return False
    secret = box.open(_key_id(user_id), row["totp_sealed"])
    step = _matching_step(secret, code, now=now, after_step=row["totp_last_step"])
    if step is None:
        return False
    await conn.execute(q.SET_LAST_STEP, user_id, step)
    return True


async def user_id_of(conn: Conn, email: str) -> int | None:
    user_id: int | None = await conn.fetchval(q.USER_ID_BY_EMAIL, email)
    return user_id


async def disable(conn: Conn, user_id: int) -> bool:
    """Forget the user's secret (enrolled or pending); False when there was none."""
    return bool(await conn.fetchval(q.DISABLE, user_id))


async def required_roles(conn: Conn) -> dict[Role, bool]:
    rows = {row["role"]: row["required"] for row in await conn.fetch(q.POLICY)}
    return {role: bool(rows.get(role.value, False)) for role in Role}


async def is_required(conn: Conn, role: Role) -> bool:
    return bool(await conn.fetchval(q.POLICY_OF, role.value))


async def set_required(conn: Conn, role: Role, required: bool, *, changed_by: str) -> None:
    await conn.execute(q.SET_POLICY, role.value, required, changed_by)
