"""`GET /v1/operator/me`: who the presented operator token says you are."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency, Provide

from gateway.auth.operator import provide_operator, require_role
from gateway.tokens import OperatorClaims, Role


class OperatorIdentity(msgspec.Struct, kw_only=True):
    subject: str
    role: str


@get(
    "/v1/operator/me",
    guards=[require_role(*Role)],
    dependencies={"operator": Provide(provide_operator)},
)
async def whoami(operator: NamedDependency[OperatorClaims]) -> OperatorIdentity:
    return OperatorIdentity(subject=operator.subject, role=operator.role.value)


ROUTES = [whoami]
