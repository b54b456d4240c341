"""The alerts pages: the bell's list (a fragment the bell loads) and the page of a user's alerts, each
acknowledged with a note through the same service as the API."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from alerts import selectors, services
from custodia.access import LOGGED_IN, requires
from custodia.web import run_service

PANEL_LIMIT = 20


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=services.NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2}))


@requires(LOGGED_IN)  # the user's own alerts only
@login_required
@never_cache
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    open_alerts = selectors.alerts_open_for(user=request.user)
    return render(
        request,
        "alerts/list.html",
        {
            "open_alerts": open_alerts,
            "recent": selectors.alerts_recent_for(user=request.user),
            "form": AcknowledgeForm(),
        },
    )


@requires(LOGGED_IN)  # the user's own alerts only
@login_required
@never_cache
@require_GET
def alert_panel(request: HttpRequest) -> HttpResponse:
    """The bell's list: the newest open alerts, each with its acknowledge form."""
    open_alerts = selectors.alerts_open_for(user=request.user)
    return render(
        request,
        "alerts/_panel.html",
        {"open_alerts": open_alerts[:PANEL_LIMIT], "open_count": open_alerts.count(), "form": AcknowledgeForm()},
    )


@requires(LOGGED_IN)  # an alert addressed to the user; any other is 404
@login_required
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    note = request.POST.get("note", "")
    # The service checks the note (required, bounded) and that the alert is the user's (404 otherwise).
    run_service(
        request,
        lambda: services.alert_acknowledge(actor=request.user, alert_id=alert_id, note=note),
        success="Alert acknowledged.",
    )
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("alerts:list")
