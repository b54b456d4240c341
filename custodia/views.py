from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET


def home(request):
    return redirect("cases:list" if request.user.is_authenticated else "login")


@require_GET
def healthz(request):
    """Liveness for load balancers and compose: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


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


def not_found(request, exception=None):
    return error_page(request, status=404, title="Not found", message="There is nothing here, or you may not see it.")


def forbidden(request, exception=None):
    return error_page(request, status=403, title="Not allowed", message="Your role does not allow this.")


def server_error(request):
    return error_page(
        request, status=500, title="Something went wrong", message="The error has been logged. Nothing was changed."
    )
