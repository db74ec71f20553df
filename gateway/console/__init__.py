"""The operator console at /console: server-rendered pages over the API's service functions.

`router()` is the console's own Router: the CSRF middleware (scoped to it, so the partner and
operator JSON APIs never see it), the session check before every page, and refusals rendered
as pages. `templates()` is the app's Jinja2 template config; `static_files()` serves the CSS and
the vendored JavaScript under /console/static.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Router
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from gateway.console import (
    pages_campaigns,
    pages_dashboard,
    pages_onboarding,
    pages_partners,
    pages_reconciliation,
    pages_records,
    pages_security,
    pages_session,
    pages_settlements,
    pages_shoppers,
    pages_webhooks,
)
from gateway.console.formatting import FILTERS
from gateway.console.web import COOKIE_PATH, EXCEPTION_HANDLERS, load_user
from infra.settings import Settings
from partners import keybox

HERE = Path(__file__).parent
CSRF_COOKIE = "coalition_console_csrf"
CSRF_KEY_INFO = b"coalition console csrf"
CSRF_KEY_BYTES = 32


def _register_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(FILTERS)


def templates(*other_dirs: Path) -> TemplateConfig[JinjaTemplateEngine]:
    """The app's one Jinja2 config: the console's templates, then other pages' (the card
    page's names are prefixed `card/`), with the console's filters."""
    return TemplateConfig(
        directory=[HERE / "templates", *other_dirs],
        engine=JinjaTemplateEngine,
        engine_callback=_register_filters,
    )


def csrf_secret(settings: Settings) -> str:
    """Derived from the master key, so every server process signs tokens alike."""
    keybox.load_or_create(settings.data_dir, settings.master_key)  # writes the key file if new
    text = settings.master_key or (settings.data_dir / keybox.KEY_FILE_NAME).read_text()
    master = keybox.parse_master_key(text)
    derived = HKDF(
        algorithm=hashes.SHA256(), length=CSRF_KEY_BYTES, salt=None, info=CSRF_KEY_INFO
    ).derive(master)
    return derived.hex()


def router(settings: Settings) -> Router:
    csrf = CSRFConfig(
        secret=csrf_secret(settings),
        cookie_name=CSRF_COOKIE,
        cookie_path=COOKIE_PATH,
        cookie_httponly=True,  # forms carry the token; no script needs to read the cookie
        cookie_samesite="strict",
    )
    return Router(
        path="/",
        route_handlers=[
            *pages_session.ROUTES,
            *pages_dashboard.ROUTES,
            *pages_partners.ROUTES,
            *pages_onboarding.ROUTES,
            *pages_settlements.ROUTES,
            *pages_records.ROUTES,
            *pages_shoppers.ROUTES,
            *pages_security.ROUTES,
            *pages_webhooks.ROUTES,
            *pages_campaigns.ROUTES,
            *pages_reconciliation.ROUTES,
        ],
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        before_request=load_user,
        exception_handlers=EXCEPTION_HANDLERS,
        include_in_schema=False,
    )


def static_files() -> Router:
    return create_static_files_router(
        path="/console/static", directories=[HERE / "static"], include_in_schema=False
    )
