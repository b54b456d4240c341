from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from custodia.access import PUBLIC, requires
from custodia.errors import error_page


@requires(PUBLIC)  # a redirect: to the case list, or to the login page
def home(request):
    return redirect("cases:list" if request.user.is_authenticated else "login")


@requires(PUBLIC)
@require_GET
def healthz(request):
    """Liveness for load balancers and compose: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@requires(PUBLIC)
@require_GET
def favicon(request):
    """``/favicon.ico``, which browsers and feed readers ask for whatever a page links: the icon pages link."""
    return redirect(static("img/favicon.svg"))


def not_found(request, exception=None):
    return error_page(request, status=404, title="Not found", message="There is nothing here, or you may not see it.")


def forbidden(request, exception=None):
    return error_page(request, status=403, title="Not allowed", message="Your role does not allow this.")
