"""Sign in and out: /console/login (Email, Password, Sign in), the TOTP code step at
/console/login/code for enrolled users, and /console/logout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from gateway.console import audit, users
from gateway.console.access import home_of
from gateway.console.forms import text_field
from gateway.console.pages_security import key_box
from gateway.console.totp import CODE_DIGITS
from gateway.console.web import (
    COOKIE_PATH,
    ENROL_PATH,
    LOGIN_CODE_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    SESSION_COOKIE,
    TOKEN_KEY,
    USER_KEY,
    page,
)
from gateway.routes._common import in_transaction
from infra.db import Conn


def _session_cookie(request: Request[Any, Any, Any], value: str, max_age_s: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path=COOKIE_PATH,
        max_age=max_age_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@get(LOGIN_PATH)
async def login_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = request.state.get(USER_KEY)
    if user is not None:
        return Redirect(home_of(user.role), status_code=303)
    return page(request, "login.html", title="Sign in")


@post(LOGIN_PATH, status_code=200)
async def login(request: Request[Any, Any, Any]) -> Template | Redirect:
    form = await request.form()
    email = text_field(form, "email", users.EMAIL_CHARS_MAX)
    password = text_field(form, "password", users.PASSWORD_CHARS_MAX, strip=False)

    async def attempt(conn: Conn) -> users.Session | users.Refused:
        outcome = await users.sign_in(conn, email, password, now=datetime.now(UTC))
        if isinstance(outcome, users.Session) and outcome.user.stage == users.STAGE_FULL:
            await audit.record(conn, outcome.user, "session.sign_in", f"user:{outcome.user.email}")
        return outcome

    outcome = await in_transaction(request, attempt)
    if isinstance(outcome, users.Refused):
        return _refused(request, outcome, email)
    next_path = {users.STAGE_TOTP: LOGIN_CODE_PATH, users.STAGE_ENROL: ENROL_PATH}.get(
        outcome.user.stage, home_of(outcome.user.role)
    )
    response = Redirect(next_path, status_code=303)
    response.set_cookie(_session_cookie(request, outcome.token, outcome.ttl_s))
    return response


def _refused(request: Request[Any, Any, Any], outcome: users.Refused, email: str) -> Template:
    message = (
        f"Too many failed sign-ins for this email. Try again in "
        f"{users.LOCKOUT_WINDOW_S // 60} minutes."
        if outcome.locked
        else "The email or the password is wrong."
    )
    return page(
        request,
        "login.html",
        title="Sign in",
        status_code=429 if outcome.locked else 401,
        error=message,
        email=email,
    )


@get(LOGIN_CODE_PATH)
async def code_form(request: Request[Any, Any, Any]) -> Template:
    return page(request, "login_code.html", title="Verification code", digits=CODE_DIGITS)


@post(LOGIN_CODE_PATH, status_code=200)
async def code_step(request: Request[Any, Any, Any]) -> Template | Redirect:
    form = await request.form()
    code = text_field(form, "code", 2 * CODE_DIGITS).replace(" ", "")
    token = request.state.get(TOKEN_KEY)
    if not isinstance(token, str):
        return Redirect(LOGIN_PATH, status_code=303)
    box = key_box(request)

    async def attempt(conn: Conn) -> users.Session | users.Refused | None:
        outcome = await users.second_step(conn, box, token, code, now=datetime.now(UTC))
        if isinstance(outcome, users.Session):
            await audit.record(
                conn,
                outcome.user,
                "session.sign_in",
                f"user:{outcome.user.email}",
                detail={"second_factor": "totp"},
            )
        return outcome

    outcome = await in_transaction(request, attempt)
    if outcome is None:
        return Redirect(LOGIN_PATH, status_code=303)
    if isinstance(outcome, users.Refused):
        if outcome.locked:  # the pending session is gone: back to the password
            refused = _refused(request, outcome, "")
            refused.set_cookie(_session_cookie(request, "", 0))
            return refused
        return page(
            request,
            "login_code.html",
            title="Verification code",
            status_code=401,
            digits=CODE_DIGITS,
            error="The code is wrong or was used already. Enter the current code.",
        )
    response = Redirect(home_of(outcome.user.role), status_code=303)
    response.set_cookie(_session_cookie(request, outcome.token, outcome.ttl_s))
    return response


@post(LOGOUT_PATH, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    token = request.state.get(TOKEN_KEY)
    if isinstance(token, str):
        await in_transaction(request, lambda conn: users.sign_out(conn, token))
    response = Redirect(LOGIN_PATH, status_code=303)
    response.set_cookie(_session_cookie(request, "", 0))
    return response


ROUTES = [login_form, login, logout, code_form, code_step]
