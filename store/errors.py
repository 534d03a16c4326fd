"""Domain failures with stable snake_case codes; ``api.errors`` turns them into problem+json."""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "DomainError", "Forbidden", "InvalidInput", "NotFound"]


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class NotFound(DomainError):
    # also used for objects of another tenant: what you may not see does not exist
    status = 404


class Conflict(DomainError):
    status = 409


class Forbidden(DomainError):
    status = 403


class InvalidInput(DomainError):
    status = 422
