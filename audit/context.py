"""What the audit writer knows about the request it runs in: set by the middleware, read by services."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field


@dataclass
class AuditContext:
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_address: str = ""
    method: str = ""
    path: str = ""
    events_written: int = 0


_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


def current() -> AuditContext | None:
    return _current.get()


def activate(ctx: AuditContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)
