"""How /schema says each operation authenticates: three security schemes, one per caller.

- operators: `Authorization: Bearer <JWT>` (EdDSA, `aud=coalition-operator`, a role per route);
- shoppers: `Authorization: Bearer <JWT>` (EdDSA, `aud=coalition-shopper`, at most 1 h);
- partners: an RFC 9421 HTTP message signature. OpenAPI has no scheme for it, so it is declared
  as an API key in the `Signature` header whose description says what must accompany it.

`SecurityRequirements` sets each operation's requirement from the caller its route serves, the
same rule the guards follow, so a route added later is documented without being listed here.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

OPERATOR_SCHEME = "operatorToken"
SHOPPER_SCHEME = "shopperToken"
PARTNER_SCHEME = "partnerSignature"

PARTNER_SIGNATURE_DESCRIPTION = (
    "An RFC 9421 HTTP message signature made with the API key's secret (HMAC-SHA256). Send "
    '`Signature-Input: coalition=("@method" "@target-uri" "content-digest");created=<unix s>;'
    'keyid="<key id>";alg="hmac-sha256";nonce="<random>"` and `Signature: coalition=:<base64>:`'
    "; with a body, also `Content-Digest: sha-256=:<base64 of the body's SHA-256>:` (RFC 9530)"
    ', covered by the signature (without a body, cover only "@method" "@target-uri"). '
    "`created` must be within 300 s of the server's clock and a nonce is accepted once. Every "
    "POST also needs an `Idempotency-Key` header. `contracts/signing.py` and the SDK "
    "(`contracts/sdk.py`) build all of it. Calls are limited per key (the partner's "
    "`rate_limit_per_s`, default 100 per second): beyond, 429 with `Retry-After`."
)

COMPONENTS = Components(
    security_schemes={
        OPERATOR_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An operator token (EdDSA JWT, `aud=coalition-operator`, "
            "`typ=operator+jwt`) with the role the operation names.",
        ),
        SHOPPER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="A shopper token (EdDSA JWT, `aud=coalition-shopper`, "
            "`typ=shopper+jwt`, at most 1 h) issued by `POST /v1/shopper-tokens`.",
        ),
        PARTNER_SCHEME: SecurityScheme(
            type="apiKey",
            name="Signature",
            security_scheme_in="header",
            description=PARTNER_SIGNATURE_DESCRIPTION,
        ),
    }
)


def scheme_for(handler: HTTPRouteHandler, path: str, *, is_partner: bool) -> str | None:
    """The security scheme an operation needs, or None for a public one."""
    if is_partner:
        return PARTNER_SCHEME
    if not handler.resolve_guards():
        return None
    if path.startswith("/v1/operator/"):
        return OPERATOR_SCHEME
    if path == "/v1/me" or path.startswith("/v1/me/"):
        return SHOPPER_SCHEME
    raise AssertionError(f"a guarded route outside the three callers' paths: {path}")


class SecurityRequirements(ReceiveRoutePlugin):
    """Sets every documented operation's `security` from the caller its route serves."""

    def __init__(self, is_partner: Callable[[HTTPRouteHandler], bool]) -> None:
        self.is_partner = is_partner

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema() or handler.security:
                continue
            scheme = scheme_for(handler, route.path, is_partner=self.is_partner(handler))
            if scheme is not None:
                handler.security = [{scheme: []}]
