"""The console's plumbing: the session cookie, the signed-in user, pages and refusals.

Every console request but the sign-in page passes `load_user` first: no valid session, a
redirect to /console/login. A page checks its area with `require`; a refusal is a 403 page,
a business error (a statement in the wrong state) a page naming it with the API's status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from contracts.errors import DomainError
from gateway.console import users
from gateway.console.access import NAV, Area, home_of, may
from gateway.console.users import ConsoleUser
from gateway.errors import DOMAIN_STATUS_DEFAULT, STATUS_BY_DOMAIN_CODE
from gateway.routes._common import in_transaction

SESSION_COOKIE = "coalition_console"
COOKIE_PATH = "/console"
LOGIN_PATH = "/console/login"
PUBLIC_PATHS = frozenset({LOGIN_PATH})
LOGOUT_PATH = "/console/logout"
LOGIN_CODE_PATH = "/console/login/code"
ENROL_PATH = "/console/security/totp"
# What a session past the password but short of the second factor may open (first: where to).
STAGE_PATHS: dict[str, tuple[str, ...]] = {
    users.STAGE_TOTP: (LOGIN_CODE_PATH, LOGOUT_PATH),
    users.STAGE_ENROL: (ENROL_PATH, LOGOUT_PATH),
}
USER_KEY = "console_user"
TOKEN_KEY = "console_token"  # noqa: S105 (a state key, not a secret)
# Pages show what is true now: no cache may keep them (they carry balances and keys).
NO_STORE = {"Cache-Control": "no-store"}


class Forbidden(Exception):
    """The signed-in user's role may not open this page or do this."""

    def __init__(self, user: ConsoleUser, area: Area) -> None:
        super().__init__(f"{user.role.value} may not open {area.value}")
        self.user = user
        self.area = area


async def load_user(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """before_request: put the session's user in the request state, or send to sign-in."""
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token:
        user = await in_transaction(
            request, lambda conn: users.session_user(conn, token, now=datetime.now(UTC))
        )
    if user is not None:
        request.state[USER_KEY] = user
        request.state[TOKEN_KEY] = token
        allowed = STAGE_PATHS.get(user.stage)
        if allowed is not None and request.url.path not in allowed:
            return Redirect(allowed[0], status_code=303)
        return None
    if request.url.path in PUBLIC_PATHS:
        return None
    return Redirect(LOGIN_PATH, status_code=303)


def current_user(request: Request[Any, Any, Any]) -> ConsoleUser:
    user = request.state.get(USER_KEY)
    assert isinstance(user, ConsoleUser), "load_user runs before every signed-in page"
    return user


def require(request: Request[Any, Any, Any], area: Area) -> ConsoleUser:
    user = current_user(request)
    if not may(user.role, area):
        raise Forbidden(user, area)
    return user


def nav_for(user: ConsoleUser | None) -> list[tuple[str, str]]:
    if user is None or user.stage != users.STAGE_FULL:
        return []
    return [(label, path) for label, path, area in NAV if may(user.role, area)]


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    title: str,
    active: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    user = request.state.get(USER_KEY)
    return Template(
        template_name=template,
        context={
            "user": user,
            "nav": nav_for(user),
            "active": active,
            "home": home_of(user.role) if user is not None else LOGIN_PATH,
            "title": title,
            "may": (lambda area: user is not None and may(user.role, Area(area))),
            **context,
        },
        status_code=status_code,
        headers=NO_STORE,
    )


def forbidden_page(request: Request[Any, Any, Any], exc: Forbidden) -> Template:
    return page(
        request,
        "error.html",
        title="Not allowed",
        status_code=403,
        heading="Not allowed",
        message=f"Your role ({exc.user.role.value}) may not do this.",
    )


def domain_error_page(request: Request[Any, Any, Any], exc: DomainError) -> Template:
    status = STATUS_BY_DOMAIN_CODE.get(exc.code, DOMAIN_STATUS_DEFAULT)
    return page(
        request,
        "error.html",
        title="Refused",
        status_code=status,
        heading="The action was refused",
        message=str(exc) or exc.code,
        code=exc.code,
    )


def http_error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    # CSRF refusals (403) and bad paths (404, 400) as pages, not problem+json.
    messages = {
        403: "The form expired or did not come from this console. Go back, reload and retry.",
        404: "There is no such page or record.",
    }
    return page(
        request,
        "error.html",
        title="Refused",
        status_code=exc.status_code,
        heading="Not found" if exc.status_code == 404 else "Refused",
        message=messages.get(exc.status_code, exc.detail),
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Forbidden: forbidden_page,
    DomainError: domain_error_page,
    HTTPException: http_error_page,
}
