"""Re-identification under two people's control, and the administrators' load view (issue #19 items 4 and 5).

The load is ``custodia.load``'s: counts per organisation, for its administrators and for staff.

Here, above the apps, because who may ask and who may approve depends on the case roles (``cases``) while
the rules and the audit rows live in ``audit.reidentification``, which imports no app of ours.

- Asking: whoever may read the audit row (the case's audit permission: custodian or prosecutor; for a row of
  no case, an administrator of the row's organisation).
- Approving: another person of the same organisation who may read it too (the case's auditor roles).
- The value: shown to the requester only, once approved, each time audited.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent, ReIdentificationRequest, ReIdentificationStatus
from audit.reidentification import (
    reidentifiable_fields,
)
from custodia.access import LOGGED_IN, ORG_ADMIN, requires
from custodia.api import StrictSerializer, validated
from custodia.errors import Forbidden
from custodia.load import (
    LOAD_WINDOW,
    broker_as_dict,
    broker_queue_lengths,
    load_as_dicts,
    load_organizations_for,
    organization_load,
)
from custodia.reidentify import decide, may_audit, request_for, request_of_organization, requests_visible_to, reveal
from custodia.web import run_service

# --- the API -----------------------------------------------------------------------------------------


class ReIdentificationCreateSerializer(StrictSerializer):
    event = serializers.IntegerField(min_value=1, max_value=(1 << 63) - 1)
    field = serializers.CharField(max_length=200)
    reason = serializers.CharField(max_length=2000)


class ReIdentificationDecisionSerializer(StrictSerializer):
    approve = serializers.BooleanField()


class ReIdentificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReIdentificationRequest
        fields = [
            "id",
            "event_sequence",
            "field",
            "reason",
            "status",
            "requested_by_id",
            "requested_at",
            "decided_by_id",
            "decided_at",
        ]
        read_only_fields = fields


class ReIdentificationListView(APIView):
    """Ask for the clear value of a replaced audit field, and list the requests one asked for or may decide."""

    required_permission = LOGGED_IN  # narrowed to the rows the caller may audit (may_audit)

    @extend_schema(responses=ReIdentificationSerializer(many=True))
    def get(self, request):
        return Response(ReIdentificationSerializer(requests_visible_to(user=request.user), many=True).data)

    @extend_schema(request=ReIdentificationCreateSerializer, responses={201: ReIdentificationSerializer})
    def post(self, request):
        data = validated(ReIdentificationCreateSerializer, request.data)
        created = request_for(
            user=request.user, event_sequence=data["event"], field=data["field"], reason=data["reason"]
        )
        return Response(ReIdentificationSerializer(created).data, status=status.HTTP_201_CREATED)


class ReIdentificationDetailView(APIView):
    """One request; once approved, its requester gets the clear value (``value``), each time audited."""

    required_permission = LOGGED_IN  # the caller's organisation only; the value to its requester only

    @extend_schema(responses=ReIdentificationSerializer)
    def get(self, request, request_id: int):
        found = request_of_organization(user=request.user, request_id=request_id)
        body = dict(ReIdentificationSerializer(found).data)
        if found.requested_by_id == request.user.pk and found.status == ReIdentificationStatus.APPROVED:
            body["value"] = reveal(user=request.user, request_id=found.pk)
        return Response(body)


class ReIdentificationDecisionView(APIView):
    """A second person approves (``{"approve": true}``) or refuses a waiting request."""

    required_permission = LOGGED_IN  # narrowed: another person of the organisation who may audit the row

    @extend_schema(request=ReIdentificationDecisionSerializer, responses=ReIdentificationSerializer)
    def post(self, request, request_id: int):
        data = validated(ReIdentificationDecisionSerializer, request.data)
        decided = decide(user=request.user, request_id=request_id, approve=data["approve"])
        return Response(ReIdentificationSerializer(decided).data)


# --- the page ----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if 0 < value < 1 << 63 else None


@requires(LOGGED_IN)  # narrowed to the rows the caller may audit (may_audit)
@login_required
@never_cache  # a revealed value must stay in no cache
@require_http_methods(["GET", "POST"])
def reidentify_page(request: HttpRequest) -> HttpResponse:
    revealed: tuple[int, str] | None = None
    event_fields: dict[str, str] = {}
    prefill = _positive_int(request.GET.get("event", ""))
    if prefill is not None:
        event = AuditEvent.objects.filter(sequence=prefill).first()
        if event is not None and may_audit(user=request.user, event=event):
            event_fields = reidentifiable_fields(event=event)
    if request.method == "POST":
        step = request.POST.get("step", "")
        request_id = _positive_int(request.POST.get("request", ""))
        if step == "ask":
            event_sequence = _positive_int(request.POST.get("event", ""))
            if event_sequence is None:
                messages.error(request, "Give an audit row's number.")
            else:
                result = run_service(
                    request,
                    lambda: request_for(
                        user=request.user,
                        event_sequence=event_sequence,
                        field=request.POST.get("field", "")[:200],
                        reason=request.POST.get("reason", "")[:2000],
                    ),
                    success="Asked: a second person must approve before the value is shown.",
                )
                if result is not None:
                    return redirect("privacy-reidentify")
        elif step in ("approve", "refuse") and request_id is not None:
            run_service(
                request,
                lambda: decide(user=request.user, request_id=request_id, approve=step == "approve"),
                success="Approved." if step == "approve" else "Refused.",
            )
            return redirect("privacy-reidentify")
        elif step == "reveal" and request_id is not None:
            value = run_service(
                request,
                lambda: reveal(user=request.user, request_id=request_id),
                success="The value is shown below; this was recorded in the audit trail.",
            )
            if value is not None:
                revealed = (request_id, value)
    return render(
        request,
        "audit/reidentify.html",
        {
            "requests": requests_visible_to(user=request.user),
            "revealed": revealed,
            "prefill": prefill or "",
            "event_fields": event_fields,
        },
    )


# --- administrators see load, not content -------------------------------------------------------------


def _load_for(user) -> list[dict]:
    organization_ids = load_organizations_for(user=user)
    if not organization_ids:
        raise Forbidden("Only an organisation's administrators (or staff) see its load.")
    return load_as_dicts(organization_load(organization_ids=organization_ids))


def _broker_for(user) -> dict | None:
    """The broker's queues, per queue: they hold every organisation's work, so for staff only (an organisation's
    administrator would learn the others' load). None when the broker is not Redis."""
    return broker_as_dict(broker_queue_lengths()) if user.is_staff else None


class AdminLoadView(APIView):
    """Queue lengths, runs, throughput, storage, request rates and errors per organisation: counts only."""

    required_permission = ORG_ADMIN  # the caller's organisation; staff see every organisation's

    @extend_schema(responses={200: dict})
    def get(self, request):
        organizations = _load_for(request.user)
        return Response(
            {
                "window_seconds": int(LOAD_WINDOW.total_seconds()),
                "organizations": organizations,
                "broker": _broker_for(request.user),
            }
        )


@requires(ORG_ADMIN)  # the caller's organisation; staff see every organisation's
@login_required
@require_http_methods(["GET"])
def admin_load_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "admin_load.html",
        {
            "organizations": _load_for(request.user),
            "window_minutes": int(LOAD_WINDOW.total_seconds() // 60),
            "broker": _broker_for(request.user),
        },
    )
