"""Server-rendered pages. Thin: they call the same selectors and services as the API."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.selectors import audit_events
from audit.verify import verify_chain
from cases import permissions as perms
from cases import selectors, services
from cases.api.views import audit_filters
from cases.forms import AuditFilterForm, CaseCreateForm, CaseEditForm, MemberAddForm, MemberRoleForm
from cases.models import CaseStatus
from custodia.errors import Forbidden, NotFound, ServiceError


def case_view(permission: str = perms.VIEW_CASE):
    """Load the case named by ``case_id`` for the current user, or answer 404/403 as the policy says."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, case_id, *args, **kwargs):
            try:
                case = selectors.case_get(user=request.user, case_id=case_id, permission=permission)
            except NotFound:
                raise Http404 from None
            except Forbidden as exc:
                raise PermissionDenied(exc.detail) from None
            request.audit_case_id = case.pk
            return view(request, case, *args, **kwargs)

        return wrapper

    return decorate


def _run(request, action, success: str):
    """Run a service from a form post; show its message either way."""
    try:
        result = action()
    except NotFound:
        raise Http404 from None
    except Forbidden as exc:
        # The policy refused: a 403 (audited as denied), never a 500.
        raise PermissionDenied(exc.detail) from None
    except ServiceError as exc:
        messages.error(request, exc.detail)
        return None
    messages.success(request, success)
    return result


@login_required
def case_list(request):
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    if status not in CaseStatus.values:
        status = ""
    cases = selectors.cases_visible_to(user=request.user, query=query, status=status).prefetch_related(
        "memberships__user"
    )
    page = Paginator(cases, 25).get_page(request.GET.get("page"))
    rows = [
        {
            "case": case,
            "role": next((m.get_role_display() for m in case.memberships.all() if m.user_id == request.user.pk), ""),
            "members": len(case.memberships.all()),
        }
        for case in page
    ]
    context = {
        "page": page,
        "rows": rows,
        "query": query,
        "status": status,
        "statuses": CaseStatus.choices,
        "can_open_cases": services.can_open_cases(request.user),
    }
    template = "cases/_case_table.html" if request.headers.get("HX-Request") else "cases/case_list.html"
    return render(request, template, context)


case_list.audit_access = True


@login_required
@require_http_methods(["GET", "POST"])
def case_create(request):
    if not services.can_open_cases(request.user):
        raise PermissionDenied("You may not open cases.")
    form = CaseCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case = _run(request, lambda: services.case_create(actor=request.user, **form.cleaned_data), "Case opened.")
        if case is not None:
            return redirect("cases:detail", case_id=case.pk)
    return render(request, "cases/case_form.html", {"form": form})


@case_view()
def case_detail(request, case):
    granted = selectors.case_permissions(user=request.user, case=case)
    members = list(selectors.case_members(case=case))
    member_ids = {m.user_id for m in members}
    candidates = [
        u for u in selectors.organization_users(user=request.user).filter(is_active=True) if u.pk not in member_ids
    ]
    context = {
        "case": case,
        "granted": granted,
        "members": members,
        "my_role": next((m.get_role_display() for m in members if m.user_id == request.user.pk), ""),
        "edit_form": CaseEditForm(
            initial={
                f: getattr(case, f)
                for f in ("title", "description", "status", "priority", "retention_until", "legal_hold")
            }
        ),
        "add_form": MemberAddForm(candidates=candidates),
        "role_form": MemberRoleForm(),
    }
    return render(request, "cases/case_detail.html", context)


@require_POST
@case_view(perms.CHANGE_CASE)
def case_edit(request, case):
    form = CaseEditForm(request.POST)
    if form.is_valid():
        _run(request, lambda: services.case_update(actor=request.user, case=case, **form.cleaned_data), "Case updated.")
    else:
        messages.error(
            request,
            "Please correct the case details: "
            + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
        )
    return redirect("cases:detail", case_id=case.pk)


@require_POST
@case_view(perms.MANAGE_MEMBERS)
def member_add(request, case):
    candidates = selectors.organization_users(user=request.user).filter(is_active=True)
    form = MemberAddForm(request.POST, candidates=candidates)
    if form.is_valid():
        user = selectors.user_in_organization(organization_id=case.organization_id, username=form.cleaned_data["user"])
        _run(
            request,
            lambda: services.membership_add(actor=request.user, case=case, user=user, role=form.cleaned_data["role"]),
            f"{user} added as {form.cleaned_data['role']}.",
        )
    else:
        messages.error(request, "Choose a user and a role.")
    return redirect("cases:detail", case_id=case.pk)


def _membership_or_404(case, username):
    membership = case.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise Http404
    return membership


@require_POST
@case_view(perms.MANAGE_MEMBERS)
def member_role(request, case, username):
    membership = _membership_or_404(case, username)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        _run(
            request,
            lambda: services.membership_change_role(
                actor=request.user, membership=membership, role=form.cleaned_data["role"]
            ),
            f"{membership.user} is now {form.cleaned_data['role']}.",
        )
    return redirect("cases:detail", case_id=case.pk)


@require_POST
@case_view(perms.MANAGE_MEMBERS)
def member_remove(request, case, username):
    membership = _membership_or_404(case, username)
    _run(
        request,
        lambda: services.membership_remove(actor=request.user, membership=membership),
        f"{membership.user} removed.",
    )
    return redirect("cases:detail", case_id=case.pk)


@case_view(perms.VIEW_AUDIT)
def case_audit(request, case):
    form = AuditFilterForm(request.GET or None)
    try:
        filters = audit_filters(request.GET)
    except ServiceError as exc:
        messages.error(request, exc.detail)
        filters = {}
    events = audit_events(case_ids=[case.pk], **filters)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"case": case, "form": form, "page": page, "chain": verify_chain(), "query": query.urlencode()}
    template = "audit/_event_table.html" if request.headers.get("HX-Request") else "audit/case_audit.html"
    return render(request, template, context)
