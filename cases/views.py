"""Server-rendered pages. Thin: they call the same selectors and services as the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from audit.selectors import audit_events, folded_page, page_cursor
from audit.verify import verify_trail
from cases import permissions as perms
from cases import selectors, services
from cases.api.views import audit_filters
from cases.forms import AuditFilterForm, CaseCreateForm, CaseEditForm, MemberAddForm, MemberRoleForm
from cases.models import CaseStatus
from custodia.access import LOGGED_IN, OPEN_CASES, requires
from custodia.errors import ServiceError
from custodia.web import case_view, run_service


@requires(LOGGED_IN)  # the list holds only the cases the user may see
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


@requires(OPEN_CASES)
@login_required
@require_http_methods(["GET", "POST"])
def case_create(request):
    if not services.can_open_cases(request.user):
        raise PermissionDenied("You may not open cases.")
    form = CaseCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case = run_service(
            request, lambda: services.case_create(actor=request.user, **form.cleaned_data), success="Case opened."
        )
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
            },
            may_change_protection=perms.MANAGE_RETENTION in granted,
        ),
        "add_form": MemberAddForm(candidates=candidates),
        "role_form": MemberRoleForm(),
    }
    return render(request, "cases/case_detail.html", context)


@require_POST
@case_view(perms.CHANGE_CASE)
def case_edit(request, case):
    granted = selectors.case_permissions(user=request.user, case=case)
    form = CaseEditForm(request.POST, may_change_protection=perms.MANAGE_RETENTION in granted)
    if form.is_valid():
        run_service(
            request,
            lambda: services.case_update(actor=request.user, case=case, **form.cleaned_data),
            success="Case updated.",
        )
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
        run_service(
            request,
            lambda: services.membership_add(actor=request.user, case=case, user=user, role=form.cleaned_data["role"]),
            success=f"{user} added as {form.cleaned_data['role']}.",
        )
    else:
        messages.error(request, "Choose a user and a role.")
    return back_to_page(request, case)


def back_to_page(request, case):
    """Where a membership form returns: the page it was sent from when it names one of ours (the
    organisation administrator's screen), else the case page."""
    target = request.POST.get("next", "")
    if (
        target
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
        and target.startswith("/")
    ):
        return redirect(target)
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
        run_service(
            request,
            lambda: services.membership_change_role(
                actor=request.user, membership=membership, role=form.cleaned_data["role"]
            ),
            success=f"{membership.user} is now {form.cleaned_data['role']}.",
        )
    return back_to_page(request, case)


@require_POST
@case_view(perms.MANAGE_MEMBERS)
def member_remove(request, case, username):
    membership = _membership_or_404(case, username)
    run_service(
        request,
        lambda: services.membership_remove(actor=request.user, membership=membership),
        success=f"{membership.user} removed.",
    )
    return back_to_page(request, case)


@case_view(perms.VIEW_AUDIT)
def case_audit(request, case):
    form = AuditFilterForm(request.GET or None)
    try:
        filters = audit_filters(request.GET, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.detail)
        filters = {}
    all_events = request.GET.get("events") == "all"
    # Custody events by default; asking for actions by name shows those, whatever they are.
    custody_only = not all_events and not (filters.get("action") or filters.get("actions"))
    events = audit_events(case_ids=[case.pk], custody_only=custody_only, **filters)
    page = folded_page(events, newest_first=True, cursor=page_cursor(request.GET.get("from", "")), size=50)
    query = request.GET.copy()
    query.pop("from", None)
    context = {
        "case": case,
        "form": form,
        "page": page,
        "first_page": "from" not in request.GET,
        "custody_only": custody_only,
        "chain": verify_trail(),
        "query": query.urlencode(),
    }
    template = "audit/_event_table.html" if request.headers.get("HX-Request") else "audit/case_audit.html"
    return render(request, template, context)
