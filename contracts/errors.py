"""Stable machine error codes and the RFC 9457 problem document.

A code, once published, keeps its meaning: clients branch on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://coalition.example/problems/"


class ErrorCode(StrEnum):
    # generic HTTP
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    VALIDATION_FAILED = "validation_failed"
    MALFORMED_JSON = "malformed_json"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    # tokens
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (an error code, not a secret)
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    ROLE_REQUIRED = "role_required"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document with Coalition's extension members."""

    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_BASE + code


class DomainError(Exception):
    """Base for business errors raised below the gateway; subclasses set a stable `code`.

    The gateway decides the HTTP status (gateway/errors.py); `details()` adds problem members.
    """

    code: str = "domain_error"

    def details(self) -> dict[str, Any]:
        return {}
