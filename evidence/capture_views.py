"""Server-rendered pages of capture runs (#16): start a capture of an Azure VM, follow its steps live.

Thin: the same selectors and services as the API (evidence/api/capture.py). The case page loads the runs
list (``case_captures``), which refreshes itself by HTMX polling while a run is queued or running.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from audit import context
from cases import permissions as perms
from cases.selectors import case_permissions
from custodia.access import requires
from custodia.web import case_view, run_service
from evidence.capture import selectors, services
from evidence.models import CaptureState


class CaptureStartForm(forms.Form):
    subscription_id = forms.CharField(
        max_length=64, label="Subscription id", help_text="The target VM's subscription (a GUID)."
    )
    resource_group = forms.CharField(max_length=90, label="Resource group")
    vm_name = forms.CharField(
        max_length=80,
        label="VM name",
        help_text="Type it, or list the resource group's VMs when the capture identity may list them.",
        widget=forms.TextInput(attrs={"list": "vm-choices", "autocomplete": "off"}),
    )


def _steps_by_disk(run) -> list[tuple[str, list]]:
    """The run's steps grouped for display: the run's own first, then each disk's."""
    groups: dict[str, list] = {}
    for step in selectors.capture_run_steps(run=run):
        name = "Run" if step.disk is None else f"{step.disk.label}: {step.disk.name}"
        step.label = services.STEP_LABELS.get(step.key, step.key)
        groups.setdefault(name, []).append(step)
    return list(groups.items())


@case_view(perms.VIEW_EVIDENCE)
def case_captures(request, case):
    """The capture runs of a case page (loaded, and refreshed while a run is busy, by HTMX)."""
    runs = list(selectors.capture_runs_for_case(user=request.user, case=case)[:20])
    busy = any(run.state in (CaptureState.QUEUED, CaptureState.RUNNING) for run in runs)
    granted = case_permissions(user=request.user, case=case)
    return render(request, "evidence/capture_case.html", {"case": case, "runs": runs, "busy": busy, "granted": granted})


@case_view(perms.REGISTER_EVIDENCE)
def capture_new(request, case):
    form = CaptureStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = run_service(
            request,
            lambda: services.capture_start(actor=request.user, case=case, **form.cleaned_data),
            success="Capture queued: a capture worker in the SOC network will take it up.",
        )
        if run is not None:
            return redirect("evidence:capture-detail", run_id=run.pk)
    return render(request, "evidence/capture_new.html", {"case": case, "form": form})


@case_view(perms.REGISTER_EVIDENCE)
def capture_vms(request, case):
    """The pick list of the start form: a <datalist> of the resource group's VMs, or a note that none can
    be listed (the custodian types the name)."""
    choices = services.capture_vm_choices(
        actor=request.user,
        case=case,
        subscription_id=request.GET.get("subscription_id", ""),
        resource_group=request.GET.get("resource_group", ""),
    )
    return render(request, "evidence/capture_vms.html", {"choices": choices})


@requires(perms.VIEW_EVIDENCE)
@login_required
def capture_detail(request, run_id):
    """A capture run and its steps; with ``?part=steps`` (HTMX polling) only the steps."""
    context.note_target(case_id=selectors.capture_case_id(run_id=run_id))
    run = selectors.capture_run_get(user=request.user, run_id=run_id)
    page = {"run": run, "case": run.case, "groups": _steps_by_disk(run), "disks": selectors.capture_run_disks(run=run)}
    if request.GET.get("part") == "steps":
        return render(request, "evidence/capture_steps.html", page)
    return render(request, "evidence/capture_detail.html", page)
