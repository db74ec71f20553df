"""Challenge domain errors (mapped to problem+json by gateway/errors.py)."""

from __future__ import annotations

from contracts.errors import DomainError, ErrorCode


class ChallengeInvalid(DomainError):
    code = ErrorCode.CHALLENGE_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class ChallengeNotFound(DomainError):
    """Unknown to this caller: another partner's challenge answers the same."""

    code = ErrorCode.NOT_FOUND

    def __init__(self) -> None:
        super().__init__("challenge not found")


class CursorInvalid(DomainError):
    code = ErrorCode.CURSOR_INVALID

    def __init__(self) -> None:
        super().__init__("the cursor is not one this list returned")
