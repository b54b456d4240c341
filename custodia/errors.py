"""The one exception type for expected failures, and the one place that maps failures to HTTP.

Services raise ``ServiceError`` (or a subclass) with a stable machine code and a message for people;
the API turns it into ``{"error": code, "detail": message}`` (``api_exception_handler``, DRF's handler),
a page into Django's 404 or 403 page or an error page with the message (``PageErrorMiddleware``).
Nothing else leaks: no tracebacks, no secrets, no internal names.

A database that cannot answer — SQLite's "database is locked" after its busy timeout, PostgreSQL down,
refusing connections or cancelling a lock wait (Django's ``OperationalError``/``InterfaceError``) — is a
temporary condition, not a bug: pages and the API answer ``503`` with ``Retry-After`` (``service_unavailable``),
wherever it is raised: in a view (both handlers below) or in a middleware (``server_error``, the 500 handler,
which looks at the exception being handled).
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.handlers.exception import response_for_exception
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An expected failure: bad input, a state that forbids the action, a refused permission."""

    code = "invalid"
    status_code = 400

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None, extra=None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.extra = extra or {}


class NotFound(ServiceError):
    code = "not_found"
    status_code = 404


class Forbidden(ServiceError):
    code = "permission_denied"
    status_code = 403


class Conflict(ServiceError):
    code = "conflict"
    status_code = 409


class AuditUnavailable(ServiceError):
    """The audit row could not be written, so the action must not happen."""

    code = "audit_unavailable"
    status_code = 503


# How long a client is asked to wait before trying again after a 503.
RETRY_AFTER_SECONDS = 5
# The failures that mean "the database cannot answer now" rather than "this request is wrong".
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE_DETAIL = "The database is busy or unavailable; try again in a few seconds."


# SQLSTATE of a number out of the column's range (PostgreSQL: an id of more than 64 bits).
NUMERIC_VALUE_OUT_OF_RANGE = "22003"


def is_id_out_of_range(exc: BaseException | None) -> bool:
    """True when a lookup failed because a number from the URL or the body cannot be an id at all (more than
    64 bits: SQLite's driver raises OverflowError, PostgreSQL "out of range"): nothing can have it, so 404."""
    if isinstance(exc, OverflowError):
        return True
    return isinstance(exc, DataError) and getattr(exc.__cause__, "sqlstate", None) == NUMERIC_VALUE_OUT_OF_RANGE


NUL_DETAIL = "Text may not contain NUL (0x00) characters."


def is_nul_in_text(exc: BaseException | None) -> bool:
    """True when PostgreSQL refused a NUL character in a text value (psycopg raises DataError or ValueError;
    SQLite stores it): bad input from the client, so 400, never a 500."""
    return isinstance(exc, ValueError | DataError) and "NUL (0x00)" in str(exc)


def is_database_unavailable(exc: BaseException | None) -> bool:
    """True for a database error that says the database cannot answer now (locked, down, unreachable)."""
    return isinstance(exc, DATABASE_UNAVAILABLE_ERRORS)


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def error_body(code: str, detail: str, **extra) -> dict:
    return {"error": code, "detail": detail, **extra}


def api_exception_handler(exc, context):
    """DRF exception handler: every error becomes ``{"error": code, "detail": message}``."""
    if isinstance(exc, ServiceError):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status_code == 503 else None
        return Response(error_body(exc.code, exc.detail, **exc.extra), status=exc.status_code, headers=headers)
    if is_id_out_of_range(exc):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if is_nul_in_text(exc):
        return Response(error_body("invalid", NUL_DETAIL), status=status.HTTP_400_BAD_REQUEST)
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        return Response(
            error_body("database_unavailable", DATABASE_UNAVAILABLE_DETAIL),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body("request_too_large", f"The request body is larger than the limit of {limit} bytes."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, drf_exceptions.ValidationError):
            code, fields = "invalid", exc.detail
            body = error_body(code, _flatten(fields) or "Invalid input.")
            if isinstance(fields, dict):
                body["fields"] = fields
        elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            body = error_body("not_authenticated", _flatten(exc.detail))
        elif isinstance(exc, drf_exceptions.ParseError):
            body = error_body("malformed_request", _flatten(exc.detail))
        else:
            code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
            body = error_body(code, _flatten(exc.detail))
        return Response(body, status=exc.status_code, headers=headers)
    return None  # unexpected: Django's 500 handling (logged, no traceback to the client)


def error_page(request, *, status: int, title: str, message: str, code: str = "") -> HttpResponse:
    """The error page of ``status``: JSON ``{"error": code, "detail": message}`` for the API and download
    links, the site's error page otherwise."""
    if request.path.startswith("/api/") or request.path.startswith("/l/"):
        code = code or {403: "permission_denied", 404: "not_found", 500: "server_error"}[status]
        return JsonResponse({"error": code, "detail": message}, status=status)
    try:
        return render(request, "error.html", {"title": title, "message": message}, status=status)
    except Exception:  # the error page must never fail itself
        return HttpResponse(f"<h1>{title}</h1><p>{message}</p>", status=status)


def service_unavailable(request, *, code: str, detail: str) -> HttpResponse:
    """503 with ``Retry-After``: JSON for the API and download links, a plain page otherwise. The page is
    not rendered through the site's templates, whose context (the user, the session) needs the database."""
    if request.path.startswith("/api/") or request.path.startswith("/l/"):
        response: HttpResponse = JsonResponse(error_body(code, detail), status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>"
            + escape(detail)
            + "</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request) -> HttpResponse:
    """Django's 500 handler (``handler500``). It runs while the failure is being handled, so it can tell a
    database that cannot answer (503, wherever it was raised: a middleware, a session, the view) from a
    bug (the site's 500 page, logged by Django, no traceback to the client)."""
    if is_database_unavailable(sys.exc_info()[1]):
        return service_unavailable(request, code="database_unavailable", detail=DATABASE_UNAVAILABLE_DETAIL)
    return error_page(
        request, status=500, title="Something went wrong", message="The error has been logged. Nothing was changed."
    )


class PageErrorMiddleware:
    """Answers a ``ServiceError`` that leaves a page view: ``NotFound`` with the 404 page and ``Forbidden``
    with the 403 page, exactly as if the view had raised ``Http404``/``PermissionDenied`` (the audit
    middleware records both as denials); any other with an error page of its status and message.

    API views never get here: DRF answers their errors first (``api_exception_handler``). A page that
    shows a refusal inside itself (a form's message, a query error next to the box) catches it itself.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            logger.warning("database unavailable: %s", exception.__class__.__name__)
            return service_unavailable(request, code="database_unavailable", detail=DATABASE_UNAVAILABLE_DETAIL)
        if is_id_out_of_range(exception):
            return response_for_exception(request, Http404("No such object."))
        if is_nul_in_text(exception):
            return error_page(request, status=400, code="invalid", title="Not done", message=NUL_DETAIL)
        if isinstance(exception, ServiceError) and exception.status_code == 503:
            return service_unavailable(request, code=exception.code, detail=exception.detail)
        if isinstance(exception, NotFound):
            return response_for_exception(request, Http404(exception.detail))
        if isinstance(exception, Forbidden):
            return response_for_exception(request, PermissionDenied(exception.detail))
        if isinstance(exception, ServiceError):
            return error_page(
                request, status=exception.status_code, code=exception.code, title="Not done", message=exception.detail
            )
        return None  # unexpected: Django's 500 handling (logged, no traceback to the client)


def login_locked_out(request, original_response=None, credentials=None) -> HttpResponse:
    """django-axes's answer to a login of a locked-out account or address (``AXES_LOCKOUT_CALLABLE``): 429
    with ``Retry-After``, JSON for the API, the error page otherwise. It names neither which nor how many."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    detail = f"Too many failed logins: try again in {minutes} minutes."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body("locked_out", detail), status=429)
    else:
        response = HttpResponse(
            "<!doctype html><title>Too many failed logins</title><h1>Too many failed logins</h1><p>"
            + escape(detail)
            + "</p>",
            status=429,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
