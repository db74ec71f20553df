"""Email routes (issue 16): one-click unsubscribe (RFC 8058, no login) and the operator's
partner finance contact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.email import (
    UNSUBSCRIBE_TOKEN_CHARS_MAX,
    FinanceContact,
    FinanceContactUpdate,
    Unsubscribed,
    UnsubscribePreview,
)
from contracts.errors import ErrorCode
from gateway.auth.operator import provide_operator, require_role
from gateway.email_jobs import unsubscribes
from gateway.errors import ApiError
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from infra.db import Conn
from shoppers.mail import contacts, unsubscribe
from shoppers.mail.unsubscribe import Unsubscribes, UnsubscribeTokenInvalid

Token = Annotated[str, Parameter(max_length=UNSUBSCRIBE_TOKEN_CHARS_MAX)]
OPERATOR = {"operator": Provide(provide_operator)}
_SIGNER_ATTR = "email_unsubscribes"


def signer(request: Request[Any, Any, Any]) -> Unsubscribes:
    """The app's unsubscribe token signer (also used by the card's unsubscribe page)."""
    signer = getattr(request.app.state, _SIGNER_ATTR, None)
    if isinstance(signer, Unsubscribes):
        return signer
    signer = unsubscribes(request.app.state.app.settings)
    setattr(request.app.state, _SIGNER_ATTR, signer)
    return signer


def _shopper_of(request: Request[Any, Any, Any], token: str) -> int:
    try:
        return signer(request).shopper_of(token)
    except UnsubscribeTokenInvalid as exc:
        raise ApiError(400, ErrorCode.UNSUBSCRIBE_TOKEN_INVALID, str(exc)) from None


@get("/v1/email/unsubscribe", tags=["email"])
async def preview_unsubscribe(request: Request[Any, Any, Any], token: Token) -> UnsubscribePreview:
    """What the link does; nothing changes until the one-click POST (link scanners GET)."""
    shopper_id = _shopper_of(request, token)
    done = await in_transaction(request, lambda conn: unsubscribe.is_unsubscribed(conn, shopper_id))
    return UnsubscribePreview(
        valid=True,
        already_unsubscribed=done,
        confirm_method="POST",
        confirm_url=str(request.url),
    )


@post("/v1/email/unsubscribe", status_code=200, tags=["email"])
async def one_click_unsubscribe(request: Request[Any, Any, Any], token: Token) -> Unsubscribed:
    """RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click` (the body is not
    needed: the signed token says who). Repeating it is harmless."""
    shopper_id = _shopper_of(request, token)
    at = await in_transaction(
        request, lambda conn: unsubscribe.apply(conn, shopper_id, now=datetime.now(UTC))
    )
    return Unsubscribed(unsubscribed=True, unsubscribed_at=at)


@get("/v1/operator/partners/{partner_id:int}/finance-contact", guards=[require_role(*Role)])
async def get_finance_contact(
    request: Request[Any, Any, Any], partner_id: PathId
) -> FinanceContact:
    async def read(conn: Conn) -> FinanceContact:
        found = await contacts.finance_contact(conn, partner_id)
        if found is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, "this partner has no finance contact")
        return found

    return await in_transaction(request, read)


@put(
    "/v1/operator/partners/{partner_id:int}/finance-contact",
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
)
async def put_finance_contact(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    data: JSONBody[FinanceContactUpdate],
    operator: NamedDependency[OperatorClaims],
) -> FinanceContact:
    return await in_transaction(
        request,
        lambda conn: contacts.set_finance_contact(
            conn, partner_id, email=data.email, locale=data.locale, actor=operator.subject
        ),
    )


ROUTES = [preview_unsubscribe, one_click_unsubscribe, get_finance_contact, put_finance_contact]
