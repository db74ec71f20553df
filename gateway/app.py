"""The Litestar app factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar, Response, Router, get
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from gateway import (
    card,
    console,
    errors,
    metrics_processes,
    openapi_security,
    rate_limit,
    replica,
    security_headers,
)
from gateway.auth.signatures import provide_caller, signed_partner
from gateway.availability import STATE as DATABASE_AVAILABILITY
from gateway.email_jobs import mail_jobs
from gateway.group_commit import GroupCommit
from gateway.json_body import StrictJSONRequest
from gateway.metrics_doc import METRICS_MEDIA_TYPE, METRICS_RESPONSE
from gateway.metrics_requests import RequestMetricsMiddleware
from gateway.partner_state import PartnerGateway
from gateway.replica import ReadReplica
from gateway.request_id import before_send, request_id_middleware
from gateway.routes import (
    campaigns,
    challenges,
    earn_rules,
    event_types,
    health,
    holds,
    insights,
    insights_retention,
    keys,
    me,
    me_challenges,
    me_membership,
    memberships,
    operator_analytics,
    operator_campaigns,
    operator_challenges,
    operator_finance,
    operator_membership,
    operator_program,
    operator_retention,
    operator_session,
    operator_settlements,
    operator_shoppers,
    operator_webhooks,
    partners,
    profile,
    purchase_batches,
    purchases,
    quotes,
    reconciliations,
    redemptions,
    refunds,
    shopper_tokens,
    shoppers,
    statements,
    transactions,
    webhook_endpoints,
)
from gateway.routes import email as email_routes
from gateway.state import AppState
from gateway.tokens import load_or_create
from gateway.workers import Scheduler, challenge_jobs, default_jobs, webhook_jobs
from infra import db
from infra import settings as settings_module
from infra.settings import Settings
from partners import keybox

log = logging.getLogger(__name__)

REQUEST_BODY_BYTES_MAX = 1_048_576
PARTNER_BODY_BYTES_MAX = 65_536
VERSION = "0.1.0"
PARTNER_TAG = "partner"


class MetricsController(PrometheusController):
    # Litestar's handler merges every worker's files when PROMETHEUS_MULTIPROC_DIR is set
    # (`serve --workers N`, gateway/metrics_processes.py), into a fresh registry per scrape.
    path = "/metrics"
    openmetrics_format = False

    # The same handler, documented as what it answers (Prometheus text), not as JSON.
    @get(media_type=METRICS_MEDIA_TYPE, responses={200: METRICS_RESPONSE})
    async def get(self) -> Response[bytes]:
        answer: Response[bytes] = await PrometheusController.get.fn(self)
        return answer


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or settings_module.load()
    if not settings.database_url:
        raise settings_module.ConfigError(
            "DATABASE_URL is unset: start the service with `coalition serve`, which provides "
            "the embedded PostgreSQL"
        )
    signing_key = load_or_create(settings.data_dir, settings.jwt_private_key_pem)
    state = AppState(
        settings=settings, signing_key=signing_key, verification_keys={signing_key.kid: signing_key}
    )
    partner_gateway = PartnerGateway(keybox.load_or_create(settings.data_dir, settings.master_key))
    prometheus = _prometheus_config()
    app = Litestar(
        route_handlers=[
            *health.ROUTES,
            *event_types.ROUTES,
            *operator_session.ROUTES,
            *partners.ROUTES,
            *keys.ROUTES,
            *operator_settlements.ROUTES,
            *operator_finance.ROUTES,
            *operator_shoppers.ROUTES,
            *operator_campaigns.ROUTES,
            *operator_analytics.ROUTES,
            *operator_retention.ROUTES,
            *operator_program.ROUTES,
            *me.ROUTES,
            *email_routes.ROUTES,
            *operator_membership.ROUTES,
            *me_membership.ROUTES,
            *operator_challenges.ROUTES,
            *me_challenges.ROUTES,
            *operator_webhooks.ROUTES,
            _partner_api(),
            MetricsController,
            console.router(settings),
            console.static_files(),
            card.router(),
            card.static_files(),
        ],
        middleware=[request_id_middleware, prometheus.middleware],
        plugins=[
            errors.plugin(),
            errors.ProblemResponses(rate_limited=_is_partner_call),
            openapi_security.SecurityRequirements(is_partner=_is_partner_call),
        ],
        before_send=[before_send, rate_limit.before_send, security_headers.before_send],
        lifespan=[_lifespan(state, settings, settings.database_url)],
        openapi_config=_openapi_config(),
        template_config=console.templates(card.TEMPLATE_DIR),
        request_max_body_size=REQUEST_BODY_BYTES_MAX,
        request_class=StrictJSONRequest,
        debug=settings.debug,
        logging_config=None,
        on_startup=[
            lambda app: setattr(app.state, "app", state),
            lambda app: setattr(app.state, "partner_gateway", partner_gateway),
        ],
    )
    _require_partner_routes_signed(app)
    return app


def _lifespan(
    state: AppState, settings: Settings, database_url: str
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The pool and the periodic jobs, for as long as the app serves."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        metrics_processes.worker_started()
        state.pool = await db.create_pool(
            database_url,
            size_min=settings.pool_size_min,
            size_max=settings.pool_size_max,
            reset_session=False,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            lock_timeout_ms=settings.db_lock_timeout_ms,
            acquire_timeout_s=settings.db_acquire_timeout_ms / 1000,
        )
        DATABASE_AVAILABILITY.watch(state.pool)
        if settings.replica_url:
            state.read_replica = await _read_replica(settings, settings.replica_url)
            state.read_replica.start(state.pool)
        if settings.group_commit_lanes > 0:
            state.group_commit = GroupCommit(
                state.pool,
                lanes=settings.group_commit_lanes,
                size_max=settings.group_commit_size_max,
            )
        jobs = (
            [*default_jobs(), *webhook_jobs(settings), *challenge_jobs()]
            if settings.workers_enabled
            else []
        )
        scheduler = Scheduler(state.pool, jobs)
        scheduler.start()
        mail_scheduler = Scheduler(
            state.pool, mail_jobs(settings) if settings.workers_enabled else []
        )
        mail_scheduler.start()
        # What exists now (modules, the app, the pool) lives as long as the process: keep the
        # collector from scanning it again and again under load (about 3% of the CPU).
        gc.freeze()
        try:
            yield
        finally:
            await scheduler.stop()
            await mail_scheduler.stop()
            if state.group_commit is not None:
                await state.group_commit.drain()
            await DATABASE_AVAILABILITY.stop()
            await state.pool.close()
            if state.read_replica is not None:
                await state.read_replica.close()
            metrics_processes.worker_stopped()

    return lifespan


async def _read_replica(settings: Settings, replica_url: str) -> ReadReplica:
    pool = await db.create_pool(
        replica_url,
        size_min=1,
        size_max=settings.pool_size_max,
        reset_session=False,
        application_name=replica.APPLICATION_NAME,
    )
    return ReadReplica(pool, lag_max_s=settings.replica_lag_max_s)


def _partner_api() -> Router:
    # Signed partner calls: the guard authenticates against the raw body before parsing.
    return Router(
        path="/",
        route_handlers=[
            *shoppers.ROUTES,
            *purchases.ROUTES,
            *purchase_batches.ROUTES,
            *redemptions.ROUTES,
            *holds.ROUTES,
            *refunds.ROUTES,
            *quotes.ROUTES,
            *transactions.ROUTES,
            *earn_rules.ROUTES,
            *campaigns.ROUTES,
            *statements.ROUTES,
            *reconciliations.ROUTES,
            *shopper_tokens.ROUTES,
            *profile.ROUTES,
            *insights.ROUTES,
            *insights_retention.ROUTES,
            *webhook_endpoints.ROUTES,
            *memberships.ROUTES,
            *challenges.ROUTES,
        ],
        before_request=signed_partner,
        dependencies={"caller": Provide(provide_caller)},
        request_max_body_size=PARTNER_BODY_BYTES_MAX,
        tags=[PARTNER_TAG],
    )


def _require_partner_routes_signed(app: Litestar) -> None:
    """Every partner route authenticates by `signed_partner`, not by a closer layer's hook."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or not _is_partner_call(handler):
                continue
            if handler.resolve_before_request() is not signed_partner:
                raise RuntimeError(f"partner route {route.path} is not signed by signed_partner")


def _is_partner_call(handler: HTTPRouteHandler) -> bool:
    # The partner router's tag: signed calls are rate limited per API key (429).
    return PARTNER_TAG in handler.resolve_tags()


def _prometheus_config() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="coalition",
        prefix="coalition",
        group_path=True,
        exclude=["/metrics"],
        middleware_class=RequestMetricsMiddleware,
    )


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Coalition",
        version=VERSION,
        path="/schema",
        components=openapi_security.COMPONENTS,
        render_plugins=[JsonRenderPlugin(path="/"), SwaggerRenderPlugin(path="/swagger")],
    )
