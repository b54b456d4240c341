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


def _error(request, status: int, title: str, message: str):
    if request.path.startswith("/api/") or request.path.startswith("/l/"):
        code = {403: "permission_denied", 404: "not_found", 500: "server_error"}[status]
        return JsonResponse({"error": code, "detail": message}, status=status)
    try:
        return render(request, "error.html", {"title": title, "message": message}, status=status)
    except Exception:  # the error page must never fail itself
        return HttpResponse(f"<h1>{title}</h1><p>{message}</p>", status=status)


def not_found(request, exception=None):
    return _error(request, 404, "Not found", "There is nothing here, or you may not see it.")


def forbidden(request, exception=None):
    return _error(request, 403, "Not allowed", "Your role does not allow this.")


def server_error(request):
    return _error(request, 500, "Something went wrong", "The error has been logged. Nothing was changed.")
