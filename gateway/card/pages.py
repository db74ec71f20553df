"""The card page's routes: sign-in (a link from a partner's app, or a code by email), the
card, history, consent per partner, the NPS question, erasure, the language switch, and the
page behind an email's unsubscribe link.

Every handler reads or writes through service functions (`views`, `sessions`, `shoppers.*`)
inside `in_transaction`; no SQL here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from contracts.email import UNSUBSCRIBE_TOKEN_CHARS_MAX
from contracts.shoppers import NPS_COMMENT_CHARS_MAX, NpsAnswer
from gateway.card import state, views, web
from gateway.card.i18n import LOCALES
from gateway.card.qr import card_svg
from gateway.card.sessions import (
    CODE_TTL_S,
    IssuedCode,
    Session,
    SignInRefused,
    end_session,
    end_sessions_of,
    exchange_token,
    issue_code,
    live_session,
    normalize_email,
    open_session,
    redeem_code,
)
from gateway.routes import email as email_routes
from gateway.routes._common import in_transaction
from gateway.state import AppState
from gateway.tokens import TokenRejected, verify_shopper
from infra.db import Conn
from shoppers import account, erasure, partner_consent
from shoppers.errors import HistoryCursorInvalid, ShopperErased, ShopperNotFound
from shoppers.mail import unsubscribe
from shoppers.partner_consent import PartnerUnknown

Page = Template | Redirect
EMAIL_CHARS_MAX = 254
SIGN_IN = "/card/sign-in"


# ---- sign-in ---------------------------------------------------------------------------


@get("/sign-in")
async def sign_in(request: Request[Any, Any, Any], token: FromQuery[str | None] = None) -> Page:
    """The sign-in page; with `?token=` a partner app's shopper token, exchanged once."""
    if token is None:
        csrf, cookie = web.anon_csrf(request)
        return web.page(request, "sign_in", csrf=csrf, cookies=[cookie] if cookie else None)
    app_state: AppState = request.app.state.app
    try:
        claims = verify_shopper(token[: web.FORM_CHARS_MAX], app_state.verification_keys)
    except TokenRejected as exc:
        return web.error_page(request, exc.code, status_code=401)

    async def exchange(conn: Conn) -> Session:
        await account.live_shopper_id(conn, claims.shopper_id)  # an erased shopper is refused
        return await exchange_token(conn, claims)

    try:
        session = await in_transaction(request, exchange)
    except SignInRefused as exc:
        return web.error_page(request, exc.code, status_code=401)
    except (ShopperErased, ShopperNotFound):
        return web.error_page(request, "token_invalid", status_code=401)
    return web.redirect("/card", cookies=[web.session_cookie(request, session)])


@post("/sign-in/email")
async def send_code(request: Request[Any, Any, Any]) -> Page:
    form = await web.form_of(request)
    if not web.anon_csrf_ok(request, form):
        return web.error_page(request, "csrf_invalid", status_code=403)
    email = normalize_email(form.get("email", ""))
    csrf = form[web.CSRF_FIELD]
    if not 3 <= len(email) <= EMAIL_CHARS_MAX or "@" not in email.strip("@"):
        return web.page(request, "sign_in", status_code=400, csrf=csrf, error="email_invalid")
    mail = state.code_mail(request)
    hasher = state.code_hasher(request)

    async def issue(conn: Conn) -> tuple[int, IssuedCode] | None:
        shopper_id = await mail.shopper_for_email(conn, email)
        if shopper_id is None:
            return None  # the same answer as for a known address: the page names no one
        try:
            return shopper_id, await issue_code(conn, hasher, email, shopper_id)
        except SignInRefused:
            return None  # rate limited: nothing is sent, and the answer still names no one

    issued = await in_transaction(request, issue)
    if issued is not None:  # sent once the code's row has committed
        shopper_id, code = issued
        app_state: AppState = request.app.state.app
        await mail.send_code(
            app_state.require_pool(),
            shopper_id=shopper_id,
            code=code.code,
            request_key=f"card-code:{code.code_id}",
            ttl_s=CODE_TTL_S,
        )
    return web.page(request, "code", csrf=csrf, email=email)


@post("/sign-in/code")
async def enter_code(request: Request[Any, Any, Any]) -> Page:
    form = await web.form_of(request)
    if not web.anon_csrf_ok(request, form):
        return web.error_page(request, "csrf_invalid", status_code=403)
    email = normalize_email(form.get("email", ""))
    code = form.get("code", "").strip().replace(" ", "")
    hasher = state.code_hasher(request)

    async def try_code(conn: Conn) -> Session | str:
        outcome = await redeem_code(conn, hasher, email, code)
        if outcome.shopper_id is None:
            assert outcome.refusal is not None
            return outcome.refusal  # committed: the try counts
        return await open_session(conn, outcome.shopper_id)

    result = await in_transaction(request, try_code)
    if isinstance(result, str):
        csrf = form[web.CSRF_FIELD]
        return web.page(request, "code", status_code=400, csrf=csrf, email=email, error=result)
    return web.redirect("/card", cookies=[web.session_cookie(request, result)])


@post("/sign-out")
async def sign_out(request: Request[Any, Any, Any]) -> Page:
    session = await _session(request)
    if session is not None:
        form = await web.form_of(request)
        if not web.session_csrf_ok(session, form):
            return web.error_page(request, "csrf_invalid", status_code=403)
        await in_transaction(request, lambda conn: end_session(conn, session.session_id))
    return web.redirect(SIGN_IN, cookies=[web.cleared_session_cookie(request)])


# ---- the card ---------------------------------------------------------------------------


@get("/")
async def card(request: Request[Any, Any, Any], saved: FromQuery[str | None] = None) -> Page:
    session = await _session(request)
    if session is None:
        return _signed_out(request)
    t = web.words(request)
    try:
        view = await in_transaction(
            request,
            lambda conn: views.card_view(conn, session.shopper_id, now=datetime.now(UTC)),
        )
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    qr = None
    if view.card is not None:
        number = view.card.card_number
        qr = card_svg(number, title=t("qr_title", number=number))
    share = f"{_origin(request)}/card/invite/{view.referral_code}"
    return web.page(
        request,
        "card",
        view=view,
        qr=qr,
        share_link=share,
        csrf=session.csrf_token,
        saved=saved,
        currency=_currency(request),
        nps_comment_max=NPS_COMMENT_CHARS_MAX,
    )


@get("/history")
async def history(request: Request[Any, Any, Any], cursor: FromQuery[str | None] = None) -> Page:
    session = await _session(request)
    if session is None:
        return _signed_out(request)
    try:
        view = await in_transaction(
            request,
            lambda conn: views.history_view(
                conn, session.shopper_id, cursor=(cursor or None) and cursor[:512]
            ),
        )
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    except HistoryCursorInvalid:  # a forged cursor: the service's own refusal
        return web.error_page(request, "form_invalid", status_code=400)
    names = {consent.partner_id: consent.name for consent in view.consents}
    return web.page(request, "history", history=view.history, names=names, csrf=session.csrf_token)


@post("/consent")
async def set_consent(request: Request[Any, Any, Any]) -> Page:
    session, form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert session is not None
    partner = form.get("partner_id", "")
    granted = form.get("granted")
    if not partner.isdigit() or len(partner) > 18 or granted not in {"true", "false"}:
        return web.error_page(request, "form_invalid", status_code=400)
    try:
        await in_transaction(
            request,
            lambda conn: partner_consent.set_partner_consent(
                conn, session.shopper_id, int(partner), granted=granted == "true"
            ),
        )
    except PartnerUnknown:
        return web.error_page(request, "form_invalid", status_code=404)
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    return web.redirect("/card?saved=consent#consent")


@post("/nps")
async def answer_nps(request: Request[Any, Any, Any]) -> Page:
    session, form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert session is not None
    score = form.get("score", "")
    comment = form.get("comment", "").strip() or None
    if not score.isdigit() or not 0 <= int(score) <= 10:
        return web.error_page(request, "form_invalid", status_code=400)
    if comment is not None and len(comment) > NPS_COMMENT_CHARS_MAX:
        return web.error_page(request, "form_invalid", status_code=400)
    answer = NpsAnswer(score=int(score), comment=comment)
    try:
        await in_transaction(
            request, lambda conn: account.answer_nps(conn, session.shopper_id, answer)
        )
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    return web.redirect("/card?saved=nps#nps")


@get("/erase")
async def confirm_erasure(request: Request[Any, Any, Any]) -> Page:
    session = await _session(request)
    if session is None:
        return _signed_out(request)
    try:
        points = await in_transaction(
            request, lambda conn: views.points_of(conn, session.shopper_id, now=datetime.now(UTC))
        )
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    return web.page(request, "erase", csrf=session.csrf_token, points=points)


@post("/erase")
async def erase(request: Request[Any, Any, Any]) -> Page:
    session, form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert session is not None
    if form.get("confirm") != "yes":
        return web.redirect("/card/erase")

    async def erase_all(conn: Conn) -> None:
        erased = await erasure.erase(conn, session.shopper_id, now=datetime.now(UTC))
        # sessions opened before a merge name the absorbed id: both go
        for shopper_id in {session.shopper_id, erased.shopper_id}:
            await end_sessions_of(conn, shopper_id)

    try:
        await in_transaction(request, erase_all)
    except (ShopperErased, ShopperNotFound):
        return await _ended(request, session)
    return web.page(request, "erased", cookies=[web.cleared_session_cookie(request)])


# ---- public pages -----------------------------------------------------------------------


@get("/unsubscribe")
async def unsubscribe_page(
    request: Request[Any, Any, Any], token: FromQuery[str | None] = None
) -> Page:
    """The page behind the link in an email's body: says what the button does and changes
    nothing (link scanners GET); the signed token is the only credential, as for the API."""
    shopper_id = _unsubscriber(request, token)
    if shopper_id is None:
        return web.error_page(request, "unsubscribe_token_invalid", status_code=400)
    assert token is not None, "a shopper was read from it"
    done = await in_transaction(request, lambda conn: unsubscribe.is_unsubscribed(conn, shopper_id))
    # the language switch comes back here with the token (it only accepts /card paths)
    here = f"/card/unsubscribe?token={quote(token)}"
    return web.page(request, "unsubscribe", token=token, already=done, path=here)


@post("/unsubscribe")
async def unsubscribe_confirmed(request: Request[Any, Any, Any]) -> Page:
    form = await request.form()
    token = form.get("token")
    shopper_id = _unsubscriber(request, token if isinstance(token, str) else None)
    if shopper_id is None:
        return web.error_page(request, "unsubscribe_token_invalid", status_code=400)
    await in_transaction(
        request, lambda conn: unsubscribe.apply(conn, shopper_id, now=datetime.now(UTC))
    )
    return web.page(request, "unsubscribed")


def _unsubscriber(request: Request[Any, Any, Any], token: str | None) -> int | None:
    if token is None or len(token) > UNSUBSCRIBE_TOKEN_CHARS_MAX:
        return None
    try:
        return email_routes.signer(request).shopper_of(token)
    except unsubscribe.UnsubscribeTokenInvalid:
        return None


@get("/invite/{code:str}")
async def invite(request: Request[Any, Any, Any], code: FromPath[str]) -> Page:
    """The referral share link's page: the code to give at enrollment (nothing is looked up)."""
    if not code.isalnum() or len(code) > 32:
        return web.error_page(request, "form_invalid", status_code=404)
    return web.page(request, "invite", code=code.upper())


@get("/lang/{locale:str}")
async def switch_language(
    request: Request[Any, Any, Any], locale: FromPath[str], next: FromQuery[str | None] = None
) -> Page:
    """The language switch: a link, as choosing a language changes nothing on the server."""
    if locale not in LOCALES:
        return web.error_page(request, "form_invalid", status_code=404)
    return web.redirect(web.safe_next(next), cookies=[web.lang_cookie(request, locale)])


# ---- helpers ----------------------------------------------------------------------------


async def _session(request: Request[Any, Any, Any]) -> Session | None:
    session_id = request.cookies.get(web.SESSION_COOKIE)
    if not session_id or len(session_id) > web.FORM_CHARS_MAX:
        return None
    return await in_transaction(request, lambda conn: live_session(conn, session_id))


async def _signed_form(
    request: Request[Any, Any, Any],
) -> tuple[Session | None, dict[str, str], Page | None]:
    """The session and form of a signed-in POST, or the page refusing it."""
    session = await _session(request)
    if session is None:
        return None, {}, web.error_page(request, "session_ended", status_code=401)
    form = await web.form_of(request)
    if not web.session_csrf_ok(session, form):
        return session, form, web.error_page(request, "csrf_invalid", status_code=403)
    return session, form, None


def _signed_out(request: Request[Any, Any, Any]) -> Redirect:
    cookies: list[Cookie] = []
    if request.cookies.get(web.SESSION_COOKIE):
        cookies.append(web.cleared_session_cookie(request))
    return web.redirect(SIGN_IN, cookies=cookies)


async def _ended(request: Request[Any, Any, Any], session: Session) -> Page:
    """The shopper was erased (or never existed) since the session opened: it ends now."""
    await in_transaction(request, lambda conn: end_session(conn, session.session_id))
    return web.error_page(
        request, "session_ended", status_code=401, cookies=[web.cleared_session_cookie(request)]
    )


def _origin(request: Request[Any, Any, Any]) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _currency(request: Request[Any, Any, Any]) -> str:
    app_state: AppState = request.app.state.app
    return app_state.settings.currency
