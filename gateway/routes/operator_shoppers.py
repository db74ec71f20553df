"""Operator routes for shopper identity: block, unblock and replace cards, merge shoppers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from contracts.shoppers import (
    Card,
    CardReplaced,
    CardReplacement,
    CardStatusChange,
    Merge,
    MergeRequest,
)
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import in_transaction
from gateway.tokens import OperatorClaims, Role
from shoppers import identity

GUARDS = [require_role(Role.SUPPORT, Role.ADMIN)]
OPERATOR = {"operator": Provide(provide_operator)}
CARD_PATH = "/v1/operator/cards/{card_number:str}"


@post(f"{CARD_PATH}/block", status_code=200, guards=GUARDS, dependencies=OPERATOR)
async def block_card(
    request: Request[Any, Any, Any],
    card_number: FromPath[str],
    data: JSONBody[CardStatusChange],
    operator: NamedDependency[OperatorClaims],
) -> Card:
    return await in_transaction(
        request,
        lambda conn: identity.block_card(
            conn, card_number, reason=data.reason, operator=operator.subject
        ),
    )


@post(f"{CARD_PATH}/unblock", status_code=200, guards=GUARDS, dependencies=OPERATOR)
async def unblock_card(
    request: Request[Any, Any, Any],
    card_number: FromPath[str],
    data: JSONBody[CardStatusChange],
    operator: NamedDependency[OperatorClaims],
) -> Card:
    return await in_transaction(
        request,
        lambda conn: identity.unblock_card(
            conn, card_number, reason=data.reason, operator=operator.subject
        ),
    )


@post(f"{CARD_PATH}/replace", status_code=201, guards=GUARDS, dependencies=OPERATOR)
async def replace_card(
    request: Request[Any, Any, Any],
    card_number: FromPath[str],
    data: JSONBody[CardReplacement],
    operator: NamedDependency[OperatorClaims],
) -> CardReplaced:
    return await in_transaction(
        request,
        lambda conn: identity.replace_card(
            conn,
            card_number,
            new_card_number=data.new_card_number,
            reason=data.reason,
            operator=operator.subject,
        ),
    )


@post("/v1/operator/shopper-merges", status_code=201, guards=GUARDS, dependencies=OPERATOR)
async def merge_shoppers(
    request: Request[Any, Any, Any],
    data: JSONBody[MergeRequest],
    operator: NamedDependency[OperatorClaims],
) -> Merge:
    return await in_transaction(
        request,
        lambda conn: identity.merge_shoppers(
            conn,
            survivor_id=data.survivor_shopper_id,
            absorbed_id=data.absorbed_shopper_id,
            reason=data.reason,
            operator=operator.subject,
            now=datetime.now(UTC),
        ),
    )


ROUTES = [block_card, unblock_card, replace_card, merge_shoppers]
