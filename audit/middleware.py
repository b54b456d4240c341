"""Every request that touches a case, or anything under it, leaves an audit row — reads and denials
included — and no such request happens without one.

Two kinds of request are counted in a row written for many instead of a row each (docs/audit.md, "What
the review pages show"): a progress poll of a page already opened (a GET carrying ``X-Custodia-Poll``, which
the polling elements of the pages send) writes a row only when no row of the same user, route and target
was written within ``POLL_WINDOW`` — the opening of the page and the first poll of every window are in the
trail, a refused or failed poll always is; and a view may fold its request into a counted row of its own
(``audit.context.fold_access_row``, for guesses at download links).

The view runs inside one transaction. If the view wrote no audit row of its own (a read, or a denial
before any service ran), the middleware writes an access row before the transaction commits. If any
audit row cannot be written, the transaction rolls back and the client gets 503: nothing unaudited
happens, not even a read.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone

from audit import context
from audit.models import AuditEvent, Outcome
from audit.services import audit_record
from custodia.errors import AuditUnavailable, error_body

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


def client_address(request) -> str:
    if settings.CUSTODIA_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


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
            if match is None or not _is_audited(match):
                return self.get_response(request)
            return self._audited(request, match, ctx)
        finally:
            context.deactivate(token)

    def _audited(self, request, match, ctx: context.AuditContext):
        try:
            with transaction.atomic():
                savepoint = transaction.savepoint()
                response = self.get_response(request)
                failed = response.status_code >= 500
                if failed:
                    # The view failed (or its audit row could not be written): keep none of its work,
                    # but do record that it was attempted.
                    transaction.savepoint_rollback(savepoint)
                else:
                    transaction.savepoint_commit(savepoint)
                if failed or (ctx.events_written == 0 and not ctx.access_row_folded):
                    self._record_access(request, match, response, ctx)
        except AuditUnavailable as exc:
            return _audit_unavailable(request, exc)
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


def _audit_unavailable(request, exc: AuditUnavailable):
    body = error_body(exc.code, exc.detail)
    if request.path.startswith("/api/"):
        return JsonResponse(body, status=503)
    return HttpResponse(
        "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>" + exc.detail + "</p>",
        status=503,
        content_type="text/html; charset=utf-8",
    )


__all__ = ["AuditMiddleware", "client_address"]
