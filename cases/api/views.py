"""Thin API views: parse, call a selector or a service, serialise. The access policy lives in
cases/permissions.py and is applied by the selectors and services."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.checkpoints import CheckpointError, signer_public_key
from audit.context import note_target
from audit.models import AuditEvent, Outcome
from audit.privacy import Tagged
from audit.selectors import audit_events
from audit.services import audit_record, case_audit_export
from audit.verify import verify_trail
from cases import permissions as perms
from cases import selectors, services
from cases.api import serializers as s
from cases.models import CaseMembership, CaseStatus, User
from cases.times import user_time_zone
from custodia.access import LOGGED_IN, OPEN_CASES, ORG_ADMIN, PUBLIC
from custodia.api import validated
from custodia.errors import NotFound, ServiceError
from custodia.pagination import Pagination


def _case_queryset_for_output(qs):
    return qs.prefetch_related("memberships")


class TokenLoginView(APIView):
    """Exchange a username and password for an API token with an expiry."""

    required_permission = PUBLIC  # the username and password are the credential

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(request=s.LoginSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request):
        data = validated(s.LoginSerializer, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            with transaction.atomic():
                audit_record(
                    action="auth.token.login",
                    outcome=Outcome.DENIED,
                    details={"username": Tagged("user", data["username"][:150])},
                )
            raise ServiceError("Wrong username or password.", code="invalid_credentials", status_code=401)
        token, raw = services.token_issue(
            user=user, name=data["name"], scope=data["scope"], expires_in=data["expires_in"]
        )
        token.token = raw
        return Response(s.IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenListView(APIView):
    required_permission = LOGGED_IN  # the caller's own tokens

    @extend_schema(responses=s.TokenSerializer(many=True))
    def get(self, request):
        tokens = selectors.tokens_of_user(user=request.user)
        return Response(s.TokenSerializer(tokens, many=True).data)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request):
        data = validated(s.TokenCreateSerializer, request.data)
        token, raw = services.token_issue(
            user=request.user, name=data["name"], scope=data["scope"], expires_in=data["expires_in"]
        )
        token.token = raw
        return Response(s.IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    required_permission = LOGGED_IN  # the caller's own tokens

    @extend_schema(responses={204: None})
    def delete(self, request, token_pk: int):
        token = selectors.token_of_user(user=request.user, token_pk=token_pk)
        services.token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CaseListView(APIView):
    required_permission = LOGGED_IN  # the list holds only the cases the caller may see
    permission_by_method = {"post": OPEN_CASES}

    audit_access = True

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Reference or title contains"),
            OpenApiParameter("status", str, enum=CaseStatus.values),
        ],
        responses=s.CaseSerializer(many=True),
    )
    def get(self, request):
        status_filter = request.query_params.get("status", "")
        if status_filter and status_filter not in CaseStatus.values:
            raise ServiceError(f"status must be one of {', '.join(CaseStatus.values)}.")
        cases = selectors.cases_visible_to(
            user=request.user, query=request.query_params.get("q", "").strip(), status=status_filter
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(_case_queryset_for_output(cases), request, view=self)
        return paginator.get_paginated_response(s.CaseSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request=s.CaseCreateSerializer, responses={201: s.CaseSerializer})
    def post(self, request):
        data = validated(s.CaseCreateSerializer, request.data)
        case = services.case_create(actor=request.user, **data)
        return Response(s.CaseSerializer(case, context={"request": request}).data, status=status.HTTP_201_CREATED)


class CaseDetailView(APIView):
    required_permission = perms.VIEW_CASE
    permission_by_method = {"patch": perms.CHANGE_CASE}

    @extend_schema(responses=s.CaseSerializer)
    def get(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id)
        return Response(s.CaseSerializer(case, context={"request": request}).data)

    @extend_schema(request=s.CaseUpdateSerializer, responses=s.CaseSerializer)
    def patch(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.CHANGE_CASE)
        data = validated(s.CaseUpdateSerializer, request.data)
        case = services.case_update(actor=request.user, case=case, **data)
        return Response(s.CaseSerializer(case, context={"request": request}).data)


class CaseMembersView(APIView):
    required_permission = perms.VIEW_CASE
    permission_by_method = {"post": perms.MANAGE_MEMBERS, "delete": perms.MANAGE_MEMBERS}

    @extend_schema(responses=s.MembershipSerializer(many=True))
    def get(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id)
        return Response(s.MembershipSerializer(selectors.case_members(case=case), many=True).data)

    @extend_schema(request=s.MembershipCreateSerializer, responses={201: s.MembershipSerializer})
    def post(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.MANAGE_MEMBERS)
        data = validated(s.MembershipCreateSerializer, request.data)
        user = selectors.user_in_organization(organization_id=case.organization_id, username=data["user"])
        membership = services.membership_add(actor=request.user, case=case, user=user, role=data["role"])
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.MembershipDeleteSerializer,
        parameters=[OpenApiParameter("user", str, description="Username to remove")],
        responses={204: None},
        operation_id="cases_members_remove",
    )
    def delete(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.MANAGE_MEMBERS)
        username = request.query_params.get("user") or (
            validated(s.MembershipDeleteSerializer, request.data)["user"] if request.data else ""
        )
        if not username:
            raise ServiceError('Name the member to remove: ?user=<username> or {"user": "<username>"}.')
        membership = _membership(case, username)
        services.membership_remove(actor=request.user, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _membership(case, username: str) -> CaseMembership:
    membership = case.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise NotFound(f"{username} is not a member of this case.")
    return membership


class CaseMemberDetailView(APIView):
    required_permission = perms.MANAGE_MEMBERS

    @extend_schema(request=s.MembershipRoleSerializer, responses=s.MembershipSerializer)
    def patch(self, request, case_id: int, username: str):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.MANAGE_MEMBERS)
        data = validated(s.MembershipRoleSerializer, request.data)
        membership = services.membership_change_role(
            actor=request.user, membership=_membership(case, username), role=data["role"]
        )
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, case_id: int, username: str):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.MANAGE_MEMBERS)
        services.membership_remove(actor=request.user, membership=_membership(case, username))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _parse_moment(value: str, name: str, *, zone: tzinfo, end_of_day: bool = False):
    """An ISO date or date-time; one without an offset (a date alone too) is read in ``zone``."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:  # well-formed but impossible, e.g. month 13
        moment = day = None
    if moment is None:
        if day is None:
            raise ServiceError(f"{name} must be an ISO date or date-time, e.g. 2026-11-23 or 2026-11-23T10:00:00Z.")
        moment = timezone.make_aware(datetime.combine(day, time.min), zone)
        if end_of_day:
            moment += timedelta(days=1)
    elif moment.tzinfo is None:
        moment = timezone.make_aware(moment, zone)
    return moment


def audit_filters(params, *, user) -> dict:
    """The filters of the audit API and page, parsed once for both: a date, or a date-time without an offset,
    is read in the user's time zone (the account's setting, else the server's), on the page and over the API
    alike (a token's request has no zone activated by the middleware)."""
    zone = user_time_zone(user)
    return {
        "actor": params.get("actor", "").strip(),
        "action": params.get("action", "").strip(),
        "actions": [name.strip() for name in params.getlist("actions") if name.strip()],
        "outcome": params.get("outcome", "").strip(),
        "since": _parse_moment(params.get("since", "").strip(), "since", zone=zone),
        "until": _parse_moment(params.get("until", "").strip(), "until", zone=zone, end_of_day=True),
    }


class AuditListView(APIView):
    required_permission = perms.VIEW_AUDIT  # of the named case, or of every case where the caller holds it

    audit_access = True

    @extend_schema(
        parameters=[
            OpenApiParameter("case", int, description="Case id; without it, every case whose audit you may read"),
            OpenApiParameter("actor", str),
            OpenApiParameter("action", str, description="Action, or a prefix such as 'case.'"),
            OpenApiParameter("actions", str, many=True, description="Any of these actions (exact names)"),
            OpenApiParameter("outcome", str, enum=Outcome.values),
            OpenApiParameter(
                "since", str, description="ISO date or date-time (inclusive); without an offset, in your time zone"
            ),
            OpenApiParameter(
                "until",
                str,
                description="ISO date or date-time (exclusive; a date: its end); without an offset, in your time zone",
            ),
        ],
        responses=s.AuditEventSerializer(many=True),
    )
    def get(self, request):
        case_param = request.query_params.get("case", "").strip()
        if case_param:
            if case_param.isdigit():
                # Set before the permission check so that a refused look at a case's audit is audited too.
                note_target(case_id=int(case_param))
            case = selectors.case_get(user=request.user, case_id=case_param, permission=perms.VIEW_AUDIT)
            case_ids = [case.pk]
        else:
            case_ids = list(
                selectors.cases_with_permission(user=request.user, permission=perms.VIEW_AUDIT).values_list(
                    "pk", flat=True
                )
            )
        events = audit_events(case_ids=case_ids, **audit_filters(request.query_params, user=request.user))
        paginator = Pagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(s.AuditEventSerializer(page, many=True).data)


class AuditVerifyView(APIView):
    required_permission = LOGGED_IN  # narrowed below: org admins, and whoever may read the audit of some case

    audit_access = True

    @extend_schema(responses=s.ChainReportSerializer)
    def get(self, request):
        if not (
            request.user.is_org_admin
            or selectors.cases_with_permission(user=request.user, permission=perms.VIEW_AUDIT).exists()
        ):
            raise ServiceError("Only auditors may verify the audit chain.", code="permission_denied", status_code=403)
        return Response(verification_for(user=request.user))


def verification_for(*, user: User) -> dict:
    """The chain's verification as one organisation may see it (issue #17, finding 6).

    The whole trail is verified (the chain is one, across tenants), but the answer speaks only of what
    the caller may audit: the number of events of those cases (and, for an organisation administrator,
    of the organisation itself), and where the chain breaks only when the broken row is one of them.
    Checkpoint numbers and the platform's event counts would tell how busy the other tenants are: left out.
    """
    report = verify_trail()
    auditable = selectors.cases_with_permission(user=user, permission=perms.VIEW_AUDIT)
    case_ids = list(auditable.values_list("pk", flat=True))
    scope = Q(case_id__in=case_ids)
    if user.is_org_admin:
        scope |= Q(organization_id=user.organization_id)
    in_scope = AuditEvent.objects.filter(scope)
    first_bad, problem = None, ""
    if not report.ok:
        if report.first_bad_sequence is not None and in_scope.filter(sequence=report.first_bad_sequence).exists():
            first_bad, problem = report.first_bad_sequence, report.problem
        else:
            problem = "The audit trail failed verification outside the events you may audit; the operator is told."
    return {
        "ok": report.ok,
        "events": in_scope.count(),
        "first_bad_sequence": first_bad,
        "problem": problem,
        "checkpoint": None,
        "checkpoint_sequence": None,
        "not_checkpointed": None,
    }


class AuditPublicKeyView(APIView):
    """The organisation's checkpoint signing key: what an export's signatures are checked with."""

    required_permission = LOGGED_IN

    @extend_schema(responses=s.AuditPublicKeySerializer)
    def get(self, request):
        try:
            key = signer_public_key()
        except CheckpointError as error:
            raise ServiceError(
                f"The signing key cannot be read: {error}", code="unavailable", status_code=503
            ) from None
        return Response(s.AuditPublicKeySerializer(key.as_dict()).data)


class CaseAuditExportView(APIView):
    """The case's audit trail as JSON lines with its hashes and signed checkpoints (docs/audit.md)."""

    required_permission = perms.VIEW_AUDIT

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR)})
    def get(self, request, case_id: int):
        case = selectors.case_get(user=request.user, case_id=case_id, permission=perms.VIEW_AUDIT)
        lines = case_audit_export(
            actor=request.user, case_id=case.pk, case_reference=case.reference, organization_id=case.organization_id
        )
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-case-{case.pk}.jsonl"'
        return response


class UserListView(APIView):
    required_permission = ORG_ADMIN

    @extend_schema(responses=s.UserSerializer(many=True))
    def get(self, request):
        if not request.user.is_org_admin:
            raise ServiceError(
                "Only organisation administrators manage users.", code="permission_denied", status_code=403
            )
        return Response(s.UserSerializer(selectors.organization_users(user=request.user), many=True).data)

    @extend_schema(request=s.UserCreateSerializer, responses={201: s.UserSerializer})
    def post(self, request):
        data = validated(s.UserCreateSerializer, request.data)
        user = services.user_create(actor=request.user, **data)
        return Response(s.UserSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    required_permission = ORG_ADMIN

    @extend_schema(request=s.UserUpdateSerializer, responses=s.UserSerializer)
    def patch(self, request, user_pk: int):
        target = User.objects.filter(pk=user_pk, organization_id=request.user.organization_id).first()
        if target is None:
            raise NotFound("No such user.")
        data = validated(s.UserUpdateSerializer, request.data)
        return Response(
            s.UserSerializer(services.user_set_active(actor=request.user, user=target, active=data["is_active"])).data
        )


class UserPasswordResetView(APIView):
    """A one-time link for a user of the caller's organisation to set a new password (issue #20)."""

    required_permission = ORG_ADMIN

    @extend_schema(request=None, responses={201: {"type": "object", "properties": {"url": {"type": "string"}}}})
    def post(self, request, user_pk: int):
        target = User.objects.filter(pk=user_pk, organization_id=request.user.organization_id).first()
        if target is None:
            raise NotFound("No such user.")
        path = services.user_password_reset_link(actor=request.user, user=target)
        return Response({"url": request.build_absolute_uri(path)}, status=status.HTTP_201_CREATED)
