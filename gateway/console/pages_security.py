"""Security: each user's own TOTP (enrol with a QR code, confirm with a code, disable), and
the admin's per-role policy making TOTP mandatory (off by default). Every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from gateway.console import audit, totp, users
from gateway.console.access import Area, home_of
from gateway.console.forms import text_field
from gateway.console.users import ConsoleUser
from gateway.console.web import (
    COOKIE_PATH,
    ENROL_PATH,
    SESSION_COOKIE,
    TOKEN_KEY,
    current_user,
    page,
    require,
)
from gateway.routes._common import in_transaction
from gateway.tokens import Role
from infra.db import Conn
from partners import keybox

SECURITY_PATH = "/console/security"
_BOX_ATTR = "console_totp_box"
DONE = {
    "enrolled": "Two-step sign-in is on: the next sign-in asks for a code.",
    "disabled": "Two-step sign-in is off.",
    "policy": "The policy is saved.",
}


def key_box(request: Request[Any, Any, Any]) -> keybox.KeyBox:
    """The master key's box (built once per app), which seals the TOTP secrets."""
    box = getattr(request.app.state, _BOX_ATTR, None)
    if isinstance(box, keybox.KeyBox):
        return box
    settings = request.app.state.app.settings
    box = keybox.load_or_create(settings.data_dir, settings.master_key)
    setattr(request.app.state, _BOX_ATTR, box)
    return box


def _code(form: Any) -> str:
    return text_field(form, "code", 2 * totp.CODE_DIGITS).replace(" ", "")


@get(SECURITY_PATH)
async def security(
    request: Request[Any, Any, Any],
    done: Annotated[str | None, QueryParameter(max_length=16)] = None,
) -> Template:
    user = current_user(request)

    async def read(conn: Conn) -> tuple[bool, dict[Role, bool]]:
        return await totp.is_enrolled(conn, user.user_id), await totp.required_roles(conn)

    enrolled, policy = await in_transaction(request, read)
    return page(
        request,
        "security.html",
        title="Security",
        enrolled=enrolled,
        required=policy[user.role],
        policy=policy,
        roles=list(Role),
        done=DONE.get(done or ""),
    )


@get(ENROL_PATH)
async def enrol_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = current_user(request)
    box = key_box(request)

    async def start(conn: Conn) -> totp.Enrolment | None:
        if await totp.is_enrolled(conn, user.user_id):
            return None
        return await totp.start_enrolment(conn, box, user.user_id, user.email)

    enrolment = await in_transaction(request, start)
    if enrolment is None:
        return Redirect(SECURITY_PATH, status_code=303)
    return _enrol_page(request, user, enrolment)


def _enrol_page(
    request: Request[Any, Any, Any],
    user: ConsoleUser,
    enrolment: totp.Enrolment,
    *,
    error: str | None = None,
) -> Template:
    return page(
        request,
        "totp.html",
        title="Set up two-step sign-in",
        status_code=400 if error else 200,
        e=enrolment,
        mandatory=user.stage == users.STAGE_ENROL,
        digits=totp.CODE_DIGITS,
        error=error,
    )


@post(ENROL_PATH, status_code=303)
async def enrol(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = current_user(request)
    code = _code(await request.form())
    box = key_box(request)
    token = request.state.get(TOKEN_KEY)
    now = datetime.now(UTC)

    async def confirm(conn: Conn) -> users.Session | totp.Enrolment | None:
        if not await totp.confirm_enrolment(conn, box, user.user_id, code, now=now):
            return await totp.start_enrolment(conn, box, user.user_id, user.email)
        await audit.record(conn, user, "totp.enrol", f"user:{user.email}", after={"totp": "on"})
        if user.stage == users.STAGE_ENROL and isinstance(token, str):
            return await users.promote(conn, token, user, now=now)
        return None

    outcome = await in_transaction(request, confirm)
    if isinstance(outcome, totp.Enrolment):
        return _enrol_page(request, user, outcome, error="The code is wrong. Try the current one.")
    if isinstance(outcome, users.Session):  # the mandatory enrolment was the last step
        response = Redirect(home_of(user.role), status_code=303)
        response.set_cookie(
            key=SESSION_COOKIE,
            value=outcome.token,
            path=COOKIE_PATH,
            max_age=outcome.ttl_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response
    return Redirect(f"{SECURITY_PATH}?done=enrolled", status_code=303)


@post(f"{SECURITY_PATH}/totp/disable", status_code=303)
async def disable(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = current_user(request)
    code = _code(await request.form())
    box = key_box(request)
    now = datetime.now(UTC)

    async def work(conn: Conn) -> str | None:
        if await totp.is_required(conn, user.role):
            return f"Your role ({user.role.value}) requires two-step sign-in."
        if not await totp.check_code(conn, box, user.user_id, code, now=now):
            return "The code is wrong or was used already."
        await totp.disable(conn, user.user_id)
        await audit.record(
            conn,
            user,
            "totp.disable",
            f"user:{user.email}",
            before={"totp": "on"},
            after={"totp": "off"},
        )
        return None

    refusal = await in_transaction(request, work)
    if refusal is not None:
        return page(
            request,
            "error.html",
            title="Refused",
            status_code=409,
            heading="Two-step sign-in stays on",
            message=refusal,
        )
    return Redirect(f"{SECURITY_PATH}?done=disabled", status_code=303)


@post(f"{SECURITY_PATH}/policy", status_code=303)
async def set_policy(request: Request[Any, Any, Any]) -> Redirect:
    user = require(request, Area.SECURITY_POLICY)
    form = await request.form()
    wanted = {role: form.get(f"required_{role.value}") == "on" for role in Role}

    async def work(conn: Conn) -> None:
        before = await totp.required_roles(conn)
        for role, required in wanted.items():
            if before[role] != required:
                await totp.set_required(conn, role, required, changed_by=user.email)
        if before != wanted:
            await audit.record(
                conn,
                user,
                "totp.policy",
                "totp_policy",
                before={r.value: v for r, v in before.items()},
                after={r.value: v for r, v in wanted.items()},
            )

    await in_transaction(request, work)
    return Redirect(f"{SECURITY_PATH}?done=policy", status_code=303)


ROUTES = [security, enrol_form, enrol, disable, set_policy]
