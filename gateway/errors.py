"""The one place where errors become RFC 9457 problem documents.

Every error, expected or not, leaves as `application/problem+json` with a stable `code` and
the request id. Unexpected errors are logged with their traceback and answered without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.enums import HttpMethod
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.routes import BaseRoute, HTTPRoute

from contracts.errors import (
    PROBLEM_MEDIA_TYPE,
    DomainError,
    ErrorCode,
    Problem,
    problem_type,
)
from gateway import availability, metrics, request_id

log = logging.getLogger(__name__)

TITLE_BY_STATUS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# Domain errors carry a `code`; their HTTP status is decided here, not in the domain.
STATUS_BY_DOMAIN_CODE: dict[str, int] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CARD_UNKNOWN: 404,
    ErrorCode.PARTNER_SLUG_TAKEN: 409,
    ErrorCode.PRICING_EFFECTIVE_TAKEN: 409,
    ErrorCode.KEY_LIMIT_REACHED: 409,
    ErrorCode.CARD_NUMBER_TAKEN: 409,
    ErrorCode.PARTNER_REF_CONFLICT: 409,
    ErrorCode.HOLD_NOT_OPEN: 409,
    ErrorCode.CURSOR_INVALID: 400,
    ErrorCode.ANALYTICS_PERIOD_INVALID: 400,
    ErrorCode.CARD_BLOCKED: 422,
    ErrorCode.CARD_STATE_CONFLICT: 409,
    ErrorCode.SHOPPER_ERASED: 410,
    ErrorCode.MERGE_REFUSED: 409,
    ErrorCode.IDENTIFIER_TAKEN: 409,
    # ledger codes (ledger/errors.py), carried by partners.errors.LedgerRefused
    "hold_not_found": 404,
    "idempotency_conflict": 409,
    "holds_open": 409,
    # settlement and reconciliation (ledger/settlement.py, ledger/reconciliation.py)
    "period_end_before_last": 409,
    "statement_state_invalid": 409,
    "reconciliation_item_resolved": 409,
    "reconciliation_too_large": 413,
    # webhook endpoints (partners/webhooks/endpoints.py, deliveries.py)
    ErrorCode.WEBHOOK_ENDPOINT_LIMIT_REACHED: 409,
    ErrorCode.WEBHOOK_ENDPOINT_DISABLED: 409,
    ErrorCode.WEBHOOK_DELIVERY_SENDING: 409,
    # a service refusing an argument (ledger.settlement.InvalidInput, partners RulesInvalid):
    # the same 400 as a contract's validation, not an undocumented 422
    ErrorCode.VALIDATION_FAILED: 400,
    # paid membership (partners/membership)
    ErrorCode.MEMBERSHIP_PLAN_INVALID: 400,
    ErrorCode.MEMBERSHIP_PLAN_NOT_SELLABLE: 409,
    ErrorCode.MEMBERSHIP_ACTIVE: 409,
    ErrorCode.MEMBERSHIP_NOT_ACTIVE: 409,
    # everything else (insufficient_points, refund_exceeds_original, ...) is 422
}
DOMAIN_STATUS_DEFAULT = 422
CAUSE_DEPTH_MAX = 8


class ApiError(HTTPException):
    """An error raised by gateway code with an explicit stable code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.code = code
        self.fields = dict(extra or {})


def _is_malformed_body(exc: BaseException) -> bool:
    """A body that is not JSON at all (msgspec's DecodeError), not one of the wrong shape."""
    seen: BaseException | None = exc
    for _ in range(CAUSE_DEPTH_MAX):
        if seen is None:
            return False
        if isinstance(seen, msgspec.DecodeError) and not isinstance(seen, msgspec.ValidationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _code_for_http(exc: HTTPException) -> str:
    if isinstance(exc, ApiError):
        return exc.code
    if exc.status_code == 400 and _is_malformed_body(exc):
        return ErrorCode.MALFORMED_JSON
    for kind, code in (
        (NotFoundException, ErrorCode.NOT_FOUND),
        (MethodNotAllowedException, ErrorCode.METHOD_NOT_ALLOWED),
        (ValidationException, ErrorCode.VALIDATION_FAILED),
        (RequestEntityTooLarge, ErrorCode.BODY_TOO_LARGE),
        (NotAuthorizedException, ErrorCode.UNAUTHENTICATED),
        (PermissionDeniedException, ErrorCode.FORBIDDEN),
        (TooManyRequestsException, ErrorCode.RATE_LIMITED),
    ):
        if isinstance(exc, kind):
            return code
    if exc.status_code == 400 and "json" in str(exc.detail).lower():
        return ErrorCode.MALFORMED_JSON
    if exc.status_code == 415:
        return ErrorCode.UNSUPPORTED_MEDIA_TYPE
    return ErrorCode.INTERNAL_ERROR if exc.status_code >= 500 else ErrorCode.VALIDATION_FAILED


class CoalitionProblem(ProblemDetailsException):
    """A problem that renders with the request id, the path and the contract's shape."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return render(request, self)


def _problem(status: int, code: str, detail: str, **extra: Any) -> ProblemDetailsException:
    return CoalitionProblem(
        status_code=status,
        title=TITLE_BY_STATUS.get(status, "Error"),
        type_=problem_type(code),
        detail=detail,
        extra={"code": code, **extra},
    )


def from_http(exc: HTTPException) -> ProblemDetailsException:
    code = _code_for_http(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ApiError):
        extra.update(exc.fields)
    if isinstance(exc.extra, list) and exc.extra:
        extra["errors"] = [
            {k: str(v) for k, v in item.items()} for item in exc.extra if isinstance(item, dict)
        ]
    detail = str(exc.detail) if exc.status_code < 500 else "the server failed to answer"
    problem = _problem(exc.status_code, code, detail, **extra)
    problem.headers = exc.headers
    return problem


def from_domain(exc: DomainError) -> ProblemDetailsException:
    status = STATUS_BY_DOMAIN_CODE.get(exc.code, DOMAIN_STATUS_DEFAULT)
    return _problem(status, exc.code, str(exc), **exc.details())


def from_untranslatable_text(
    exc: asyncpg.exceptions.CharacterNotInRepertoireError,
) -> ProblemDetailsException:
    """Text the database cannot store (a NUL character in a string) is the caller's error.

    PostgreSQL refuses U+0000 in text (SQLSTATE 22021); any request string can carry one.
    """
    return _problem(
        400, ErrorCode.VALIDATION_FAILED, "a text value contains a character that cannot be stored"
    )


def from_unencodable_argument(exc: asyncpg.exceptions.DataError) -> ProblemDetailsException:
    """A request value the driver cannot send (a date-time that is year 0 in UTC) is the
    caller's error; any other data exception (raised by the server) stays unexpected.

    asyncpg raises the base DataError itself, client-side, for such an argument; the server's
    data exceptions (division by zero, numeric overflow) are its subclasses.
    """
    if type(exc) is asyncpg.exceptions.DataError and str(exc).startswith(
        "invalid input for query argument"
    ):
        return _problem(
            400, ErrorCode.VALIDATION_FAILED, "a value is outside the range it can take"
        )
    return from_unexpected(exc)


def from_unexpected(exc: Exception) -> ProblemDetailsException:
    database = from_database(exc)
    if database is not None:
        return database
    log.error("unhandled error", exc_info=exc)
    return _problem(500, ErrorCode.INTERNAL_ERROR, "the server failed to answer")


def from_database(exc: Exception) -> ProblemDetailsException | None:
    """The database down or overloaded is the service's state, not a bug: 503, `Retry-After`,
    and no traceback (an outage logs one line when it begins and one when it ends,
    gateway/availability.py). None: `exc` says nothing about the database."""
    kind = availability.classify(exc)
    if kind is None:
        return None
    if kind is availability.Kind.UNREACHABLE:
        availability.STATE.mark_down(exc)
        code, detail = ErrorCode.DATABASE_UNAVAILABLE, "the database is unreachable; retry later"
    else:
        code, detail = ErrorCode.DATABASE_BUSY, "the database did not answer in time; retry later"
    problem = _problem(503, code, detail)
    problem.headers = {"Retry-After": str(availability.RETRY_AFTER_S)}
    return problem


def render(request: Request[Any, Any, Any], exc: ProblemDetailsException) -> Response[Any]:
    """Add the request id and instance, then answer problem+json."""
    body: dict[str, Any] = {
        "type": exc.type_ or problem_type(ErrorCode.INTERNAL_ERROR),
        "title": exc.title or TITLE_BY_STATUS.get(exc.status_code, "Error"),
        "status": exc.status_code,
        "detail": exc.detail,
        "instance": request.url.path,
        "request_id": request_id.ensure(request.scope),
    }
    if isinstance(exc.extra, Mapping):
        body.update(exc.extra)
    body.setdefault("code", ErrorCode.INTERNAL_ERROR)
    route = request.scope.get("path_template") or "unmatched"  # a template: bounded labels
    metrics.PROBLEMS.labels(code=str(body["code"]), route=route).inc()
    # Check our own output against the contract's members (a malformed problem is a bug);
    # extension members a domain error adds beyond the contract pass through unchecked.
    msgspec.convert({k: v for k, v in body.items() if k in Problem.__struct_fields__}, Problem)
    return Response(
        body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE, headers=exc.headers
    )


def plugin() -> ProblemDetailsPlugin:
    mapping: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
        HTTPException: from_http,
        DomainError: from_domain,
        asyncpg.exceptions.CharacterNotInRepertoireError: from_untranslatable_text,
        asyncpg.exceptions.DataError: from_unencodable_argument,
        Exception: from_unexpected,
    }
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(exception_handler=render, exception_to_problem_detail_map=mapping)
    )


# -- documentation: what /schema says about errors --------------------------------------------

MUTATING_METHODS = frozenset({HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE})
# Handler parameters that are not request inputs (the framework or a dependency supplies them).
NOT_INPUTS = frozenset({"request", "state", "scope", "headers", "cookies", "query", "socket"})
PROBLEM_CODES_BY_STATUS: dict[int, str] = {
    400: "validation_failed, malformed_json, cursor_invalid, analytics_period_invalid, ...",
    401: "unauthenticated, token_invalid, token_expired, signature_invalid, signature_expired, "
    "nonce_reused, digest_mismatch, key_unknown, key_revoked, idempotency_key_required",
    403: "forbidden, role_required",
    404: "not_found, card_unknown, hold_not_found, ...",
    409: "idempotency_in_progress, partner_ref_conflict, hold_not_open, ...",
    410: "shopper_erased",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "idempotency_mismatch, insufficient_points, and other refused operations",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable, database_unavailable, database_busy (with Retry-After)",
}


def problem_response(status: int) -> ResponseSpec:
    """An error answer as documented in /schema: a `Problem` as application/problem+json."""
    title = TITLE_BY_STATUS.get(status, "Error")
    codes = PROBLEM_CODES_BY_STATUS.get(status)
    return ResponseSpec(
        data_container=Problem,
        description=f"{title}: an RFC 9457 problem" + (f" (code: {codes})" if codes else ""),
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


def _has_inputs(handler: HTTPRouteHandler, route: HTTPRoute) -> bool:
    dependencies = handler.resolve_dependencies()
    names = set(handler.parsed_fn_signature.parameters) - NOT_INPUTS - set(dependencies)
    return bool(names or route.path_parameters)


def problem_statuses(
    handler: HTTPRouteHandler, route: HTTPRoute, *, rate_limited: bool
) -> list[int]:
    """The error statuses an operation can answer, from its inputs, authentication and method."""
    inputs = _has_inputs(handler, route)
    # Partner routes (the rate-limited ones) authenticate in a before_request hook, not a guard.
    authenticated = bool(handler.resolve_guards()) or rate_limited
    mutating = bool(MUTATING_METHODS & handler.http_methods)
    statuses = [500]
    if inputs:
        statuses.append(400)
    if route.path_parameters or (inputs and mutating):
        statuses.append(404)  # an unknown (or another partner's) resource, card or hold
    if authenticated:
        statuses.append(401)
        if route.path.startswith("/v1/operator/"):
            statuses.append(403)
    if mutating and authenticated:
        statuses += [409, 422]
        if inputs:
            statuses.append(413)
    if rate_limited:
        statuses.append(429)
    if authenticated and (route.path == "/v1/me" or route.path.startswith("/v1/me/")):
        statuses.append(410)  # shopper_erased: the token outlives the shopper's erasure
    return sorted(statuses)


class ProblemResponses(ReceiveRoutePlugin):
    """Documents every operation's error answers as `Problem` (application/problem+json).

    Replaces Litestar's default 400 (`ValidationException` as application/json, not what the
    gateway sends) and adds the other statuses the operation can answer. A handler's own
    `responses` win over these.
    """

    def __init__(self, rate_limited: Callable[[HTTPRouteHandler], bool]) -> None:
        self.rate_limited = rate_limited

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            statuses = problem_statuses(handler, route, rate_limited=self.rate_limited(handler))
            documented = {status: problem_response(status) for status in statuses}
            handler.responses = {**documented, **(handler.responses or {})}
