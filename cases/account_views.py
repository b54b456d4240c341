"""The signed-in user's own account pages: the time zone their pages show times in, and their API tokens
(create one: name, expiry, scope, its secret shown once; list them; revoke one). The same services as the
API (``/api/tokens/``)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from cases import selectors, services
from cases.models import TokenScope
from custodia.access import LOGGED_IN, requires
from custodia.web import run_service

DAY = 24 * 3600


def max_token_days() -> int:
    return max(1, int(settings.CUSTODIA_API_TOKEN_MAX_TTL.total_seconds()) // DAY)


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(
        required=False,
        label="Time zone",
        help_text="Every time is shown in this zone, with its name; times typed in (seized at) are read in it.",
    )

    def __init__(self, *args, **kwargs):
        from cases.times import time_zone_names

        super().__init__(*args, **kwargs)
        server = settings.TIME_ZONE
        self.fields["time_zone"].choices = [("", f"The server's ({server})"), *((n, n) for n in time_zone_names())]


@requires(LOGGED_IN)  # the user's own setting only
@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    form = TimeZoneForm(request.POST or None, initial={"time_zone": request.user.time_zone})
    if request.method == "POST" and form.is_valid():
        zone = form.cleaned_data["time_zone"]
        done = run_service(
            request,
            lambda: services.user_set_time_zone(actor=request.user, time_zone=zone),
            success="Time zone saved.",
        )
        if done is not None:
            return redirect("account-settings")
    return render(request, "cases/account.html", {"form": form})


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. the script that uses it.")
    expires_in_days = forms.IntegerField(min_value=1, initial=30, label="Expires after (days)")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        days = max_token_days()  # the policy's maximum, read when the form is made (settings may change)
        self.fields["expires_in_days"] = forms.IntegerField(
            min_value=1,
            max_value=days,
            initial=min(30, days),
            label="Expires after (days)",
            help_text=f"{days} at most",
        )


@requires(LOGGED_IN)  # the user's own tokens only
@login_required
@never_cache  # the page that shows a new token's secret is kept by no cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = run_service(
            request,
            lambda: services.token_issue(
                user=request.user, name=data["name"], scope=data["scope"], expires_in=data["expires_in_days"] * DAY
            ),
            success="Token created. Copy it now: it is shown only once.",
        )
        if result is not None:
            _, issued = result
            form = TokenCreateForm()
    tokens = selectors.tokens_of_user(user=request.user)
    return render(request, "cases/tokens.html", {"form": form, "tokens": tokens, "issued": issued})


@requires(LOGGED_IN)  # the user's own tokens only
@login_required
@require_POST
def token_revoke(request: HttpRequest, token_pk: int) -> HttpResponse:
    token = selectors.token_of_user(user=request.user, token_pk=token_pk)
    run_service(request, lambda: services.token_revoke(actor=request.user, token=token), success="Token revoked.")
    return redirect("account-tokens")
