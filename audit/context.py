"""What the audit writer knows about the request it runs in: set by the middleware, read by services.

Views add what only they learn — the case a request concerns when its URL names none (an evidence item,
a link), the link behind a token, details such as the query searched — through ``note_target`` and
``add_details``; the middleware reads them when it writes the request's own access row.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AuditContext:
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_address: str = ""
    method: str = ""
    path: str = ""
    events_written: int = 0
    # Hints from the view for the middleware's access row (see note_target and add_details).
    case_id: int | None = None
    organization_id: int | None = None
    link_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Set by fold_access_row: this request is counted in a row written for many (see fold_access_row).
    access_row_folded: bool = False


_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


def current() -> AuditContext | None:
    return _current.get()


def activate(ctx: AuditContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


def note_target(*, case_id: int | None = None, organization_id: int | None = None, link_id: str | int = "") -> None:
    """Name what this request concerns, for its access row: call it before the permission check, so that
    a refusal is recorded against the case too. Arguments left out keep what was noted before; outside a
    request (a task, a shell) there is nothing to note and nothing happens."""
    ctx = current()
    if ctx is None:
        return
    if case_id is not None:
        ctx.case_id = case_id
    if organization_id is not None:
        ctx.organization_id = organization_id
    if link_id:
        ctx.link_id = str(link_id)


def add_details(**details: Any) -> None:
    """Add to the details of this request's access row (what was searched, which stream was read)."""
    ctx = current()
    if ctx is not None:
        ctx.details.update(details)


def fold_access_row() -> None:
    """Tell the middleware that this request is accounted for by a row that counts many alike (a window of
    refused link guesses, the polls of a page already opened and recorded), so it writes no access row of its
    own. Whoever calls it owns the count: it must reach the trail (see docs/audit.md)."""
    ctx = current()
    if ctx is not None:
        ctx.access_row_folded = True
