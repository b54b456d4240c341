"""The organisation administrator's screen (issue #20, item 10): the organisation's users (create,
deactivate or activate, a one-time link to set a new password) and every case's members and roles, as
pages, with the same services as the API (``/api/users/``, ``/api/cases/{id}/members/``). Role changes
and removals post to the case pages' own endpoints, each behind the confirm step (``data-confirm``)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from cases import selectors, services
from cases.forms import MemberAddForm, MemberRoleForm, UserCreateForm
from cases.models import CaseMembership, User
from custodia.access import ORG_ADMIN, PUBLIC, requires
from custodia.web import run_service

# Where a new user's one-time link waits in the session until the page shows it (once).
REVEALED_LINK = "org-admin-reset-link"


def _org_admin(request: HttpRequest) -> User:
    user = request.user
    if not getattr(user, "is_org_admin", False) or user.organization_id is None:
        raise PermissionDenied("Only an organisation administrator manages users and memberships.")
    return user


def _user_of_organisation(admin: User, user_pk: int) -> User:
    target = selectors.organization_users(user=admin).filter(pk=user_pk).first()
    if target is None:
        raise PermissionDenied("No such user in your organisation.")
    return target


@requires(ORG_ADMIN)
@login_required
@never_cache  # the page shows a one-time link once
@require_http_methods(["GET", "POST"])
def organisation(request: HttpRequest) -> HttpResponse:
    admin = _org_admin(request)
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        chosen = data.pop("password")
        user = run_service(
            request,
            lambda: services.user_create(actor=admin, password=chosen or secrets.token_urlsafe(32), **data),
            success=f"User {data['username']} created.",
            form=form,
            fields_by_code={"username_unavailable": "username", "weak_password": "password"},
        )
        if user is not None:
            if not chosen:
                link = services.user_password_reset_link(actor=admin, user=user)
                request.session[REVEALED_LINK] = {"username": user.username, "url": request.build_absolute_uri(link)}
            return redirect("org-admin")
    users = list(selectors.organization_users(user=admin).order_by("username"))
    memberships = (
        CaseMembership.objects.filter(case__organization_id=admin.organization_id)
        .select_related("case", "user")
        .order_by("case__reference", "user__username")
    )
    cases: dict[int, dict] = {}
    for membership in memberships:
        cases.setdefault(membership.case_id, {"case": membership.case, "members": []})["members"].append(membership)
    roles_of: dict[int, list[CaseMembership]] = {}
    for membership in memberships:
        roles_of.setdefault(membership.user_id, []).append(membership)
    rows = [{"user": user, "memberships": roles_of.get(user.pk, [])} for user in users]
    active_users = [user for user in users if user.is_active]
    context = {
        "form": form,
        "rows": rows,
        "cases": [
            {
                **entry,
                "add_form": MemberAddForm(
                    candidates=[u for u in active_users if u.pk not in {m.user_id for m in entry["members"]}],
                    auto_id=f"add-{entry['case'].pk}-%s",
                ),
            }
            for entry in cases.values()
        ],
        "role_form": MemberRoleForm(),
        "revealed": request.session.pop(REVEALED_LINK, None),
        "reset_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    return render(request, "cases/organisation.html", context)


@requires(ORG_ADMIN)
@login_required
@require_POST
def user_active(request: HttpRequest, user_pk: int) -> HttpResponse:
    admin = _org_admin(request)
    target = _user_of_organisation(admin, user_pk)
    active = request.POST.get("active") == "1"
    run_service(
        request,
        lambda: services.user_set_active(actor=admin, user=target, active=active),
        success=f"{target.username} {'activated' if active else 'deactivated'}.",
    )
    return redirect("org-admin")


@requires(ORG_ADMIN)
@login_required
@require_POST
def user_password_reset(request: HttpRequest, user_pk: int) -> HttpResponse:
    admin = _org_admin(request)
    target = _user_of_organisation(admin, user_pk)
    link = run_service(
        request,
        lambda: services.user_password_reset_link(actor=admin, user=target),
        success=f"A one-time link for {target.username} to set a new password: hand it over by a trusted channel.",
    )
    if link is not None:
        request.session[REVEALED_LINK] = {"username": target.username, "url": request.build_absolute_uri(link)}
    return redirect("org-admin")


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    """Django's one-time link (the token expires with a new password or a login) to set a new password;
    the change is audited under the user."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("account-password-reset-done")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_password_reset_done(user=form.user)
        return response


password_reset_confirm = requires(PUBLIC)(PasswordResetConfirm.as_view())  # the link's token is the credential


@requires(PUBLIC)
def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/password_reset_done.html")
