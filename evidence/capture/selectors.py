"""Reads of capture runs, through the one access policy (404 across organisations, 403 for a role without
the permission): capture runs are evidence custody, seen by whoever may see the case's evidence."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.errors import NotFound
from evidence.models import CaptureRun


def capture_case_id(*, run_id: uuid.UUID | str) -> int | None:
    """The case of a capture run, for the audit row of a request (even a refused one)."""
    try:
        return CaptureRun.objects.filter(pk=uuid.UUID(str(run_id))).values_list("case_id", flat=True).first()
    except ValueError:
        return None


def capture_run_get(*, user: User, run_id: uuid.UUID | str, permission: str = perms.VIEW_EVIDENCE) -> CaptureRun:
    try:
        pk = uuid.UUID(str(run_id))
    except ValueError:
        raise NotFound("No such capture run.") from None
    run = CaptureRun.objects.filter(pk=pk).select_related("case", "requested_by").first()
    if run is None or run.case.organization_id != getattr(user, "organization_id", None):
        raise NotFound("No such capture run.")
    try:
        run.case = case_get(user=user, case_id=run.case_id, permission=permission)
    except NotFound:
        raise NotFound("No such capture run.") from None
    return run


def capture_runs_for_case(*, user: User, case: Case) -> QuerySet[CaptureRun]:
    case_get(user=user, case_id=case.pk, permission=perms.VIEW_EVIDENCE)
    return CaptureRun.objects.filter(case=case).select_related("requested_by").order_by("-created_at")


def capture_run_steps(*, run: CaptureRun) -> list:
    """The run's steps in order, with their disks."""
    return list(run.steps.select_related("disk").order_by("position", "pk"))


def capture_run_disks(*, run: CaptureRun) -> list:
    """The run's disks, the OS disk first then by LUN, with the evidence item each was sealed into."""
    return list(run.disks.select_related("evidence").order_by("-is_os_disk", "lun"))
