"""Custodians' pages for download links: the section on the evidence page (issue form, the link shown
once, the links of this evidence) and the case-level list with the approval queue. Thin: the same
selectors and services as the API."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from audit.context import note_target
from cases import permissions as perms
from cases.selectors import organization_users
from custodia.access import requires
from custodia.web import case_view, evidence_view, run_service
from evidence import selectors
from evidence.models import LinkKind, LinkState
from evidence.services import links


class LinkIssueForm(forms.Form):
    recipient = forms.ChoiceField(
        label="Recipient", required=False, help_text="A user of your organisation, or empty for an external party."
    )
    external_name = forms.CharField(label="External recipient's name", required=False, max_length=200)
    external_email = forms.EmailField(label="External recipient's e-mail", required=False)
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    expires_in_hours = forms.FloatField(label="Expires after (hours)", min_value=0.02)
    networks = forms.CharField(
        label="Client networks (optional)", required=False, help_text="CIDR, comma-separated, e.g. 203.0.113.0/24"
    )
    kind = forms.ChoiceField(label="Kind", choices=LinkKind.choices, initial=LinkKind.SIGNED, required=False)

    def __init__(self, *args, user, native_blob: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["recipient"].choices = [("", "— external party —")] + [
            (u.username, f"{u} ({u.username})") for u in organization_users(user=user).filter(is_active=True)
        ]
        self.fields["expires_in_hours"].initial = settings.CUSTODIA_LINK_DEFAULT_SECONDS / 3600
        self.fields["expires_in_hours"].max_value = settings.CUSTODIA_LINK_MAX_SECONDS / 3600
        self.fields["expires_in_hours"].help_text = (
            f"Default {settings.CUSTODIA_LINK_DEFAULT_SECONDS / 3600:g} h, at most "
            f"{settings.CUSTODIA_LINK_MAX_SECONDS / 3600:g} h. Longer than "
            f"{settings.CUSTODIA_LINK_APPROVAL_OVER_SECONDS / 3600:g} h, or for an external party, a second "
            "custodian must approve."
        )
        if not native_blob:
            self.fields["kind"].choices = [(LinkKind.SIGNED, LinkKind.SIGNED.label)]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        recipient = data["recipient"] or {"name": data["external_name"], "email": data["external_email"]}
        return {
            "recipient": recipient,
            "reason": data["reason"],
            "expires_in": round(data["expires_in_hours"] * 3600),
            "networks": [n.strip() for n in data["networks"].split(",") if n.strip()],
            "kind": data["kind"] or LinkKind.SIGNED,
        }


def _session_key(evidence_id) -> str:
    return f"issued-link-{evidence_id}"


@evidence_view(perms.ISSUE_LINKS)
def evidence_links(request, evidence):
    """The download-links section of the evidence page (loaded by HTMX)."""
    native_blob = selectors.native_blob_of(evidence=evidence) is not None
    context = {
        "evidence": evidence,
        "links": selectors.links_for_evidence(user=request.user, evidence_id=evidence.pk),
        "form": LinkIssueForm(user=request.user, native_blob=native_blob),
        # The URL of a link just issued: shown this once, then gone from the session.
        "issued": request.session.pop(_session_key(evidence.pk), None),
    }
    return render(request, "evidence/_links.html", context)


@require_POST
@evidence_view(perms.ISSUE_LINKS)
def link_issue(request, evidence):
    native_blob = selectors.native_blob_of(evidence=evidence) is not None
    form = LinkIssueForm(request.POST, user=request.user, native_blob=native_blob)
    if form.is_valid():
        issued = run_service(
            request,
            lambda: links.link_issue(evidence=evidence, actor=request.user, **form.service_arguments()),
            success="Link issued.",
        )
        if issued is not None:
            url = (
                request.build_absolute_uri(reverse("link-page", kwargs={"token": issued.token}))
                if issued.token
                else issued.url
            )
            request.session[_session_key(evidence.pk)] = {
                "id": issued.link.pk,
                "url": url,
                "pending": issued.link.state == LinkState.PENDING,
            }
    else:
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
    return redirect(f"{evidence_detail_url(evidence)}#links")


def evidence_detail_url(evidence) -> str:
    return reverse("evidence:detail", kwargs={"evidence_id": evidence.pk})


@case_view(perms.ISSUE_LINKS)
def case_links(request, case):
    """All links of a case: the approval queue first, then active, expired and revoked ones."""
    items = list(selectors.links_for_case(user=request.user, case=case))
    groups = {state: [] for state in (LinkState.PENDING, LinkState.ACTIVE, LinkState.EXPIRED, LinkState.REVOKED)}
    for link in items:
        groups[link.current_state].append(link)
    return render(request, "evidence/_case_links.html", {"case": case, "groups": groups, "total": len(items)})


def _link_action(request, link_id: int, action, success: str):
    note_target(case_id=selectors.link_case_id(link_id=link_id))
    link = selectors.link_get(user=request.user, link_id=link_id)
    result = run_service(request, lambda: action(link=link, actor=request.user), success=success)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = evidence_detail_url(link.evidence) + "#links"
    return result, link, target


@requires(perms.ISSUE_LINKS)  # link_get checks it on the link's case
@login_required
@require_POST
def link_approve(request, link_id: int):
    issued, link, target = _link_action(request, link_id, links.link_approve, "Link approved; its time starts now.")
    if issued is not None and issued.url:
        # An Azure SAS is made at approval and shown to the approver once.
        request.session[_session_key(link.evidence_id)] = {"id": link.pk, "url": issued.url, "pending": False}
        target = evidence_detail_url(link.evidence) + "#links"
    return redirect(target)


@requires(perms.ISSUE_LINKS)  # link_get checks it on the link's case
@login_required
@require_POST
def link_revoke(request, link_id: int):
    _, _, target = _link_action(request, link_id, links.link_revoke, "Link revoked.")
    return redirect(target)
