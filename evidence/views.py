"""Server-rendered evidence pages. Thin: the same selectors and services as the API."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit.selectors import page_cursor
from cases import permissions as perms
from cases.selectors import case_permissions
from custodia.errors import ServiceError
from custodia.web import case_view, evidence_view, run_service
from evidence import selectors
from evidence.forms import EvidenceRegisterForm, SecretEscrowForm
from evidence.models import EvidenceState
from evidence.services import chain, escrow, integrity, registration, time_zone, upload


@case_view(perms.VIEW_EVIDENCE)
def case_evidence(request, case):
    """The evidence table of a case page (loaded and refreshed by HTMX)."""
    items = selectors.evidence_for_case(user=request.user, case=case).select_related("registered_by")
    granted = case_permissions(user=request.user, case=case)
    busy = any(item.state in (EvidenceState.REGISTERED, EvidenceState.RECEIVING) for item in items)
    return render(
        request, "evidence/_case_evidence.html", {"case": case, "items": items, "granted": granted, "busy": busy}
    )


@case_view(perms.REGISTER_EVIDENCE)
def evidence_register(request, case):
    form = EvidenceRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        evidence = run_service(
            request,
            lambda: registration.evidence_register(actor=request.user, case=case, **form.service_arguments()),
            success="Evidence registered. Upload its content below.",
            form=form,
        )
        if evidence is not None:
            return redirect("evidence:detail", evidence_id=evidence.pk)
    return render(request, "evidence/register.html", {"case": case, "form": form})


@evidence_view()
def evidence_detail(request, evidence):
    granted = case_permissions(user=request.user, case=evidence.case)
    all_events = request.GET.get("events") == "all"
    custody = None
    if perms.VIEW_AUDIT in granted:  # the timeline is audit content: actors, client addresses, recipients
        custody = selectors.evidence_custody_page(
            evidence=evidence, all_events=all_events, cursor=page_cursor(request.GET.get("from", ""))
        )
    context = {
        "evidence": evidence,
        "case": evidence.case,
        "granted": granted,
        "custody": custody,
        "all_events": all_events,
        "secrets": selectors.escrowed_secrets(evidence=evidence),
        "secret_form": SecretEscrowForm(),
        "status": upload.upload_status(evidence=evidence) if perms.REGISTER_EVIDENCE in granted else None,
        "revealed": request.session.pop(f"revealed-{evidence.pk}", None),
        "chain": selectors.evidence_chain_summary(
            evidence=evidence, with_candidates=perms.REGISTER_EVIDENCE in granted
        ),
        "time_zone_names": time_zone.time_zone_names(),
    }
    return render(request, "evidence/detail.html", context)


@require_POST
@evidence_view(perms.REGISTER_EVIDENCE)
def evidence_parent_link(request, evidence):
    run_service(
        request,
        lambda: chain.evidence_parent_link(
            actor=request.user, evidence=evidence, parent_id=request.POST.get("parent", "")
        ),
        success="Parent linked: extraction reads this disk through it.",
    )
    return redirect("evidence:detail", evidence_id=evidence.pk)


@evidence_view()
def evidence_progress(request, evidence):
    """The sealing progress of a queued import or acquisition (an HTMX partial, polled while a worker seals;
    once it is done the page reloads itself through the HX-Refresh header)."""
    response = render(request, "evidence/_intake_progress.html", {"evidence": evidence})
    if request.headers.get("HX-Request") and evidence.state != EvidenceState.RECEIVING:
        response["HX-Refresh"] = "true"
    return response


@require_POST
@evidence_view(perms.REGISTER_EVIDENCE)
def evidence_seal(request, evidence):
    run_service(
        request, lambda: upload.evidence_seal(actor=request.user, evidence=evidence), success="Evidence sealed."
    )
    return redirect("evidence:detail", evidence_id=evidence.pk)


@require_POST
@evidence_view()
def evidence_verify(request, evidence):
    try:
        report = integrity.evidence_verify_request(actor=request.user, evidence=evidence)
    except ServiceError as exc:
        messages.error(request, exc.detail)
        return redirect("evidence:detail", evidence_id=evidence.pk)
    if report is None:
        messages.info(request, "Verification queued: a worker reads the evidence; its integrity shows here when done.")
    elif report["ok"]:
        messages.success(request, f"Intact: {report['chunks_checked']} chunks and the whole-image SHA-256 match.")
    else:
        chunks = ", ".join(str(m["chunk"]) for m in report["mismatches"] if m.get("chunk") is not None)
        messages.error(request, f"Integrity mismatch{' in chunk ' + chunks if chunks else ''}. See the alert.")
    return redirect("evidence:detail", evidence_id=evidence.pk)


@require_POST
@evidence_view(perms.REGISTER_EVIDENCE)
def secret_add(request, evidence):
    form = SecretEscrowForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        value = data["key_file"].read(escrow.MAX_SECRET_BYTES + 1) if data["key_file"] else data["value"].encode()
        run_service(
            request,
            lambda: escrow.secret_escrow(
                actor=request.user, evidence=evidence, kind=data["kind"], name=data["name"], value=value
            ),
            success=f"Secret '{data['name']}' escrowed.",
        )
    else:
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
    return redirect("evidence:detail", evidence_id=evidence.pk)


@require_POST
@evidence_view(perms.REVEAL_SECRETS)
def secret_reveal(request, evidence, secret_id: int):
    secret = selectors.escrowed_secret_get(
        user=request.user, evidence_id=evidence.pk, secret_id=secret_id, permission=perms.REVEAL_SECRETS
    )
    value = run_service(
        request, lambda: escrow.secret_reveal(actor=request.user, secret=secret), success="Revealed (audited)."
    )
    if value is not None:
        try:
            shown = value.decode("utf-8")
        except UnicodeDecodeError:
            shown = value.hex()
        # Shown once on the next page load, never stored beyond this session entry.
        request.session[f"revealed-{evidence.pk}"] = {"name": secret.name, "value": shown}
    return redirect("evidence:detail", evidence_id=evidence.pk)
