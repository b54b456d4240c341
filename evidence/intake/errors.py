"""Failures of intake. They are ``ServiceError`` subclasses so the API maps them to a clear 4xx/5xx answer."""

from __future__ import annotations

from custodia.errors import ServiceError


class IntakeError(ServiceError):
    """Base of every expected intake failure."""

    code = "intake_error"
    status_code = 400


class FormatError(IntakeError):
    """The bytes are not what their name or signature claims: unknown, corrupt, truncated or incomplete."""

    code = "format_error"
    status_code = 400


class HashStateError(IntakeError):
    """A saved hashing state cannot be resumed (corrupt, or written by another hashing library version)."""

    code = "hash_state_error"
    status_code = 409


class ImportPathRefused(IntakeError):
    """A server-side import path is outside the configured import roots, or tries to leave them."""

    code = "import_path_refused"
    status_code = 400

    def __init__(self, reason: str, *, path: str) -> None:
        super().__init__(f"import path {path!r} refused: {reason}")
        self.reason = reason
        self.path = path


class MissingDependency(IntakeError):
    """An optional library this operation needs is not installed; the message says which and how."""

    code = "dependency_missing"
    status_code = 503
