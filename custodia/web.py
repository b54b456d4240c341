"""What every server-rendered page uses: load the case or evidence item its URL names for the current user
(declaring and enforcing the permission the page needs), and run a service from a form post.

A ``NotFound`` or ``Forbidden`` raised here, or anywhere in a page view, is answered in one place: the
404 or 403 page of ``PageErrorMiddleware`` (custodia/errors.py), audited as a denial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import TypeVar

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest

from audit import context
from cases import permissions as perms
from cases import selectors as case_selectors
from custodia.access import requires
from custodia.errors import Forbidden, NotFound, ServiceError
from evidence import selectors as evidence_selectors

Result = TypeVar("Result")


def case_view(permission: str = perms.VIEW_CASE):
    """A page of the case named by ``case_id``: the view gets the case if the user holds ``permission`` on
    it; otherwise 404 (another organisation, or no such case) or 403 (a role without it), as the policy
    says. Declares ``permission`` on the view (``view.required_permission``)."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, case_id, *args, **kwargs):
            case = case_selectors.case_get(user=request.user, case_id=case_id, permission=permission)
            context.note_target(case_id=case.pk)
            return view(request, case, *args, **kwargs)

        return requires(permission)(wrapper)

    return decorate


def evidence_view(permission: str = perms.VIEW_EVIDENCE):
    """A page of the evidence item named by ``evidence_id``, as ``case_view`` is of a case; the request's
    audit row names the item's case even when the user is refused."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, evidence_id, *args, **kwargs):
            context.note_target(case_id=evidence_selectors.evidence_case_id(evidence_id=evidence_id))
            evidence = evidence_selectors.evidence_get(
                user=request.user, evidence_id=evidence_id, permission=permission
            )
            return view(request, evidence, *args, **kwargs)

        return requires(permission)(wrapper)

    return decorate


def field_named_by(*, form: forms.Form, message: str) -> str | None:
    """The form field a service's message is about: its first word, when that is a field's name."""
    first = message.split(maxsplit=1)[0].rstrip(":,.") if message.strip() else ""
    return first if first in form.fields else None


def run_service(
    request: HttpRequest,
    action: Callable[[], Result],
    *,
    success: str,
    form: forms.Form | None = None,
    fields_by_code: Mapping[str, str] | None = None,
) -> Result | None:
    """Run a service from a form post and say how it went on the next page: ``success``, or the service's
    own message when it refused the form (then None is returned). With ``form``, a message that names one
    of its fields first ("label: …", "declared_md5 must be …"), or whose code ``fields_by_code`` maps to a
    field (``{"username_unavailable": "username"}``), goes next to that field instead, so the page shows
    the form again with the input kept and the error where it belongs. ``NotFound`` and
    ``Forbidden`` refuse the request rather than the form: they pass on to the 404 and 403 pages."""
    try:
        result = action()
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        field = None
        if form is not None:
            field = (fields_by_code or {}).get(exc.code) or field_named_by(form=form, message=exc.detail)
            field = field if field in form.fields else None
        if form is not None and field is not None:
            form.add_error(field, exc.detail)
        else:
            messages.error(request, exc.detail)
        return None
    messages.success(request, success)
    return result
