"""The shopper card page at `/card`: server-rendered pages over the `/v1/me` services."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import ResponseHeader
from litestar.static_files import create_static_files_router

from gateway.card import pages

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"  # template names are prefixed `card/`
STATIC_DIR = HERE / "static"
STATIC_PATH = "/card/static"

# No script, no frames, no third party: a page that is only HTML and CSS can say so.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="Referrer-Policy", value="no-referrer"),  # keeps ?token= to ourselves
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]


def router() -> Router:
    return Router(
        path="/card",
        route_handlers=[
            pages.sign_in,
            pages.send_code,
            pages.enter_code,
            pages.sign_out,
            pages.card,
            pages.history,
            pages.set_consent,
            pages.answer_nps,
            pages.confirm_erasure,
            pages.erase,
            pages.invite,
            pages.unsubscribe_page,
            pages.unsubscribe_confirmed,
            pages.switch_language,
        ],
        response_headers=HEADERS,
        include_in_schema=False,
    )


def static_files() -> Router:
    return create_static_files_router(
        path=STATIC_PATH, directories=[STATIC_DIR], name="card_static", include_in_schema=False
    )
