"""Request plumbing of the card page: cookies, the locale, CSRF checks, rendering."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from gateway.card import i18n
from gateway.card.sessions import SESSION_TTL_S, Session, csrf_ok

SESSION_COOKIE = "card_session"
ANON_CSRF_COOKIE = "card_csrf"  # double-submit token of the sign-in forms (no session yet)
COOKIE_PATH = "/card"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600
ANON_CSRF_MAX_AGE_S = 3600
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
FORM_CHARS_MAX = 4_000  # above every field the forms have (an NPS comment: 2,000)
CSRF_FIELD = "csrf"


def secure_cookies(request: Request[Any, Any, Any]) -> bool:
    """Secure everywhere but plain http on the loopback (the demo and the tests)."""
    return request.url.scheme == "https" or request.url.hostname not in LOOPBACK_HOSTS


def session_cookie(request: Request[Any, Any, Any], session: Session) -> Cookie:
    # Lax, not Strict: the sign-in link arrives from a partner's app (a cross-site
    # navigation) and redirects to /card, which must carry the cookie just set. Cross-site
    # POSTs still get no cookie, and every POST checks the session's CSRF token as well.
    return Cookie(
        key=SESSION_COOKIE,
        value=session.session_id,
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        secure=secure_cookies(request),
        samesite="lax",
    )


def cleared_session_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        max_age=0,
        path=COOKIE_PATH,
        httponly=True,
        secure=secure_cookies(request),
        samesite="lax",
    )


def anon_csrf(request: Request[Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The sign-in forms' token: the cookie's value, or a new one with its cookie."""
    current = request.cookies.get(ANON_CSRF_COOKIE)
    if current and len(current) <= FORM_CHARS_MAX:
        return current, None
    token = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=ANON_CSRF_COOKIE,
        value=token,
        max_age=ANON_CSRF_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        secure=secure_cookies(request),
        samesite="strict",
    )
    return token, cookie


def anon_csrf_ok(request: Request[Any, Any, Any], form: dict[str, str]) -> bool:
    return csrf_ok(request.cookies.get(ANON_CSRF_COOKIE, ""), form.get(CSRF_FIELD))


def session_csrf_ok(session: Session, form: dict[str, str]) -> bool:
    return csrf_ok(session.csrf_token, form.get(CSRF_FIELD))


def lang_cookie(request: Request[Any, Any, Any], locale: str) -> Cookie:
    return Cookie(
        key=i18n.LANG_COOKIE,
        value=locale,
        max_age=LANG_COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        secure=secure_cookies(request),
        samesite="lax",
    )


def words(request: Request[Any, Any, Any]) -> i18n.Words:
    locale = i18n.choose(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )
    return i18n.Words(locale)


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The urlencoded form as single strings, each bounded (a repeated field keeps its last)."""
    data = await request.form()
    form: dict[str, str] = {}
    for key, value in data.multi_items():
        if isinstance(value, str) and len(key) <= FORM_CHARS_MAX and len(value) <= FORM_CHARS_MAX:
            form[key] = value
    return form


def page(
    request: Request[Any, Any, Any],
    name: str,
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    t = words(request)
    return Template(
        template_name=f"card/{name}.html",
        context={"t": t, "lang": t.locale, "path": request.url.path, **context},
        status_code=status_code,
        cookies=cookies or [],
    )


def error_page(
    request: Request[Any, Any, Any],
    code: str,
    *,
    status_code: int,
    cookies: list[Cookie] | None = None,
) -> Template:
    """A refusal as an HTML page naming its stable code (also in `data-code` for tests)."""
    return page(request, "error", status_code=status_code, cookies=cookies, code=code)


def redirect(path: str, *, cookies: list[Cookie] | None = None) -> Redirect:
    return Redirect(path=path, status_code=303, cookies=cookies or [])


def safe_next(target: str | None) -> str:
    """Only a path of the card page: never an open redirect to another site."""
    if target and target.startswith(COOKIE_PATH) and "//" not in target and "\\" not in target:
        return target
    return COOKIE_PATH
