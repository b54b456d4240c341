"""Every request that touches a case, or anything under it, leaves an audit row — reads and denials
included — and no such request happens without one.

Two kinds of request are counted in a row written for many instead of a row each (docs/audit.md, "What
the review pages show"): a progress poll of a page already opened (a GET carrying ``X-Custodia-Poll``, which
the polling elements of the pages send) writes a row only when no row of the same user, route and target
was written within ``POLL_WINDOW`` — the opening of the page and the first poll of every window are in the
trail, a refused or failed poll always is; and a view may fold its request into a counted row of its own
(``audit.context.fold_access_row``, for guesses at download links).

No request holds a database transaction for longer than its own writes (issue #17, finding 2). The view
runs in autocommit: each service opens its own short transaction and writes its audit rows in it, so a
change and its row commit or roll back together. A body the client is still sending is read into a spool
(memory, then a temporary file) before the view runs, so no transaction ever waits on a slow or stalled
client (on SQLite an open transaction holds the one write lock). If the view wrote no audit row of its own
(a read, or a denial before any service ran), the middleware writes an access row after the view has
produced its response, in a transaction of its own, before a byte of the response goes out (a streaming
response is recorded at its start, its body then streams outside any transaction). If that row cannot be
written the client gets 503 instead of the response: nothing unaudited is shown, not even a read.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from audit import context
from audit.models import AuditEvent, Outcome
from audit.privacy import privacy_session
from audit.services import audit_record
from custodia.errors import AuditUnavailable, service_unavailable

logger = logging.getLogger(__name__)

# The header a page's polling element sends with each poll (hx-headers), and how long one access row of a
# user, route and target stands for that user's polls of it.
POLL_HEADER = "X-Custodia-Poll"
POLL_WINDOW = timedelta(minutes=10)

# URL keyword arguments that name something under a case. A URL with one of them is audited.
AUDITED_KWARGS = ("case_id", "evidence_id", "trace_uid", "link_id", "capture_id", "token")
# Targets in the order we prefer to name them in the row.
_TARGETS = (
    ("link_id", "link"),
    ("token", "link"),
    ("trace_uid", "trace"),
    ("evidence_id", "evidence"),
    ("capture_id", "capture"),
    ("case_id", "case"),
)


# Request bodies up to this size are spooled in memory, larger ones in a temporary file.
SPOOL_MEMORY_BYTES = 1024 * 1024
SPOOL_READ_BYTES = 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def client_address(request) -> str:
    """The one place the client's address is computed: the audit trail, the login throttle (django-axes,
    ``AXES_CLIENT_IP_CALLABLE``) and the link-guess throttle all count by it.

    ``X-Forwarded-For`` is a list the client starts and each proxy appends to: every entry but the last
    can be whatever the client wants. It is read only when ``CUSTODIA_TRUST_X_FORWARDED_FOR`` says a proxy
    of ours sets it, and then only its last hop — the address our proxy saw — is taken."""
    if settings.CUSTODIA_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hop = forwarded.split(",")[-1].strip()
        if hop:
            return hop[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def privacy_session_id(request, ctx: context.AuditContext) -> str:
    """The session that scopes a request's SR and SI values: the Django session's key when the request has
    one (only a keyed digest of it is ever used, never the key), else the request's own id."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None) if session is not None else None
    return f"session:{session_key}" if session_key else f"request:{ctx.request_id}"


def spool_request_body(request) -> tempfile.SpooledTemporaryFile | None:
    """Read the body the client is sending into a spool before the view runs, and let the view read it
    from there: however slowly the client sends it, or if it stalls, the view (and any transaction it
    opens, which on SQLite holds the write lock) never waits on the network. Only for a caller who
    presents credentials (a session or an Authorization header): an anonymous body is refused by the view
    before it is read. Returns the spool (to close after the response), or None when nothing was spooled."""
    if request.method not in BODY_METHODS or getattr(request, "_read_started", True):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return None
    user = getattr(request, "user", None)
    if not request.META.get("HTTP_AUTHORIZATION") and not (user is not None and user.is_authenticated):
        return None
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - closed by the caller
    remaining = length
    while remaining:
        part = request._stream.read(min(remaining, SPOOL_READ_BYTES))
        if not part:
            break  # the client closed early: the view sees a short body, as it would have
        spool.write(part)
        remaining -= len(part)
    spool.seek(0)
    request._stream = spool  # HttpRequest.read(), .body and the upload parsers all read from _stream
    return spool


def _outcome(status_code: int, authenticated: bool) -> str:
    if status_code in (401, 403, 404) or (not authenticated and status_code in (301, 302)):
        return Outcome.DENIED
    if status_code >= 400:
        return Outcome.FAILED
    return Outcome.OK


def _is_audited(match) -> bool:
    if any(name in match.kwargs for name in AUDITED_KWARGS):
        return True
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    return bool(getattr(view_class or match.func, "audit_access", False))


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ctx = context.AuditContext(
            client_address=client_address(request), method=request.method, path=request.path[:300]
        )
        token = context.activate(ctx)
        try:
            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            # The scope of session-scoped values (SR, SI) in this request's audit rows and log lines: the
            # user's session, or this request alone for a caller without one (an API token, anonymous).
            with privacy_session(privacy_session_id(request, ctx)):
                if match is None or not _is_audited(match):
                    return self.get_response(request)
                return self._audited(request, match, ctx)
        finally:
            context.deactivate(token)

    def _audited(self, request, match, ctx: context.AuditContext):
        spool = spool_request_body(request)
        try:
            response = self.get_response(request)
        finally:
            if spool is not None:
                spool.close()
        if response.status_code >= 500 or (ctx.events_written == 0 and not ctx.access_row_folded):
            # Its own short transaction, after the view and before the response goes out.
            try:
                with transaction.atomic():
                    self._record_access(request, match, response, ctx)
            except AuditUnavailable as exc:
                # The response is dropped unsent. Not response.close(): that signals the end of the request
                # (Django then closes the database connection) before the 503 below is answered.
                unavailable = service_unavailable(request, code=exc.code, detail=exc.detail)
                unavailable["X-Request-ID"] = ctx.request_id
                return unavailable
        response["X-Request-ID"] = ctx.request_id
        return response

    def _record_access(self, request, match, response, ctx: context.AuditContext) -> None:
        target_type, target_id = "", ""
        for kwarg, name in _TARGETS:
            if kwarg in match.kwargs:
                target_type, target_id = name, str(match.kwargs[kwarg])
                break
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
        case_id = ctx.case_id
        if case_id is None and "case_id" in match.kwargs:
            try:
                case_id = int(match.kwargs["case_id"])
            except (TypeError, ValueError):
                case_id = None
            if case_id is not None and not 0 < case_id < 1 << 63:
                case_id = None  # no case has it (the URL's number is beyond any id): the path names it
        path = request.path
        if "token" in match.kwargs:
            # A link token in the URL is a credential: the trail names the link, never the token.
            path = path.replace(str(match.kwargs["token"]), "<token>")
        details = {"method": request.method, "path": path[:300], "status": response.status_code}
        details.update(ctx.details)
        if "token" in match.kwargs and "link_id" not in match.kwargs:
            # The link token itself is a credential: never write it to the trail, but the link the view
            # found by it (none when the token is unknown).
            target_id = ctx.link_id
        action = f"{match.url_name or 'request'}.access" if match.url_name else "request.access"
        outcome = _outcome(response.status_code, actor is not None)
        if _is_poll(request):
            recorded = _polled_recently(
                actor=actor, action=action, target_type=target_type, target_id=target_id, outcome=outcome
            )
            if recorded:
                return
            details["poll"] = True
        audit_record(
            action=action,
            actor=actor,
            outcome=outcome,
            target_type=target_type,
            target_id=target_id,
            case_id=case_id,
            organization_id=ctx.organization_id,
            details=details,
        )


def _is_poll(request) -> bool:
    return request.method == "GET" and bool(request.headers.get(POLL_HEADER))


def _polled_recently(*, actor, action: str, target_type: str, target_id: str, outcome: str) -> bool:
    """True when this successful poll is already accounted for by an access row of the same user, route and
    target within POLL_WINDOW. Refusals, failures and anonymous requests are never folded."""
    if outcome != Outcome.OK or actor is None:
        return False
    return AuditEvent.objects.filter(
        actor_id=actor.pk,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=Outcome.OK,
        occurred_at__gte=timezone.now() - POLL_WINDOW,
    ).exists()


__all__ = ["AuditMiddleware", "client_address", "privacy_session_id", "spool_request_body"]
