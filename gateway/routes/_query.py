"""Date-time query parameters, parsed strictly.

Litestar converts query values to a handler's types in msgspec's lax mode, where a number is a
Unix timestamp: `period_end=0.5` was read as 1970-01-01T00:00:00.5Z. These parameters are taken
as text (documented as `format: date-time`) and parsed here in strict mode, which accepts only an
RFC 3339 date-time, and with a required UTC offset: anything else is 400 `validation_failed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import QueryParameter

from contracts.errors import ErrorCode
from gateway.errors import ApiError

INSTANT_DESCRIPTION = "An RFC 3339 date-time with its UTC offset, e.g. 2026-01-31T00:00:00Z."
INSTANT_CHARS_MAX = 64

Aware = Annotated[datetime, msgspec.Meta(tz=True)]


def instant_parameter(name: str) -> QueryParameter:
    """The documented shape of a date-time query parameter called `name`."""
    return QueryParameter(
        name=name,
        format=OpenAPIFormat.DATE_TIME,
        max_length=INSTANT_CHARS_MAX,
        description=INSTANT_DESCRIPTION,
    )


def instant(name: str, value: str) -> datetime:
    """`value` as an aware datetime, or a 400 problem naming the parameter."""
    try:
        return msgspec.convert(value, Aware, strict=True)
    except msgspec.ValidationError:
        raise ApiError(
            400,
            ErrorCode.VALIDATION_FAILED,
            f"{name}: {INSTANT_DESCRIPTION}",
            extra={"errors": [{"message": INSTANT_DESCRIPTION, "key": name, "source": "query"}]},
        ) from None


def optional_instant(name: str, value: str | None) -> datetime | None:
    return None if value is None else instant(name, value)
