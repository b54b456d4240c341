"""Thin API views for download links (DESIGN.md §13): issue and list per evidence, approve and revoke."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.context import note_target
from cases import permissions as perms
from custodia.api import StrictSerializer, evidence_for_request, validated
from evidence import selectors
from evidence.models import DownloadLink, LinkKind
from evidence.services import links


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "username of a user of your organisation"},
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                "required": ["name", "email"],
            },
        ]
    }
)
class RecipientField(serializers.Field):
    """A username, or ``{"name", "email"}`` for an external party."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, dict) and set(data) <= {"name", "email"}:
            return {"name": str(data.get("name", "")), "email": str(data.get("email", ""))}
        raise serializers.ValidationError('A username, or {"name": ..., "email": ...}.')

    def to_representation(self, value):
        return value


class LinkIssueSerializer(StrictSerializer):
    recipient = RecipientField()
    reason = serializers.CharField(max_length=2000)
    expires_in = serializers.IntegerField(required=False, allow_null=True, default=None)
    networks = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    kind = serializers.ChoiceField(choices=LinkKind.choices, required=False, default=LinkKind.SIGNED)


class LinkSerializer(serializers.ModelSerializer):
    evidence = serializers.UUIDField(source="evidence_id", read_only=True)
    case = serializers.IntegerField(source="evidence.case_id", read_only=True)
    state = serializers.CharField(source="current_state", read_only=True)
    issued_by = serializers.CharField(source="issued_by.username", read_only=True)
    recipient = serializers.SerializerMethodField()
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, default=None)
    revoked_by = serializers.CharField(source="revoked_by.username", read_only=True, default=None)

    class Meta:
        model = DownloadLink
        fields = [
            "id",
            "evidence",
            "case",
            "kind",
            "state",
            "recipient",
            "reason",
            "issued_by",
            "created_at",
            "lifetime_seconds",
            "expires_at",
            "networks",
            "approval_required",
            "approval_expires_at",
            "approved_by",
            "approved_at",
            "revoked_by",
            "revoked_at",
            "uses",
            "last_used_at",
        ]
        read_only_fields = fields

    def get_recipient(self, link: DownloadLink) -> str | dict:
        if link.recipient_id:
            return link.recipient.username
        return {"name": link.recipient_name, "email": link.recipient_email}


def issued_body(request, issued: links.IssuedLink) -> dict:
    """The link, and its URL — this once only."""
    body = LinkSerializer(issued.link).data
    if issued.token:
        body["url"] = request.build_absolute_uri(reverse("link-download", kwargs={"token": issued.token}))
        body["page_url"] = request.build_absolute_uri(reverse("link-page", kwargs={"token": issued.token}))
    elif issued.url:
        body["url"] = issued.url
    else:
        body["url"] = None  # an Azure SAS is made when the link is approved, and given to the approver
    return body


class EvidenceLinksView(APIView):
    required_permission = perms.ISSUE_LINKS

    @extend_schema(responses=LinkSerializer(many=True))
    def get(self, request, evidence_id):
        evidence_for_request(request, evidence_id, perms.ISSUE_LINKS)
        return Response(
            LinkSerializer(selectors.links_for_evidence(user=request.user, evidence_id=evidence_id), many=True).data
        )

    @extend_schema(request=LinkIssueSerializer, responses={201: LinkSerializer})
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.ISSUE_LINKS)
        data = validated(LinkIssueSerializer, request.data)
        issued = links.link_issue(evidence=evidence, actor=request.user, **data)
        return Response(issued_body(request, issued), status=status.HTTP_201_CREATED)


def _link(request, link_id: int) -> DownloadLink:
    note_target(case_id=selectors.link_case_id(link_id=link_id), link_id=link_id)
    return selectors.link_get(user=request.user, link_id=link_id)


class LinkApproveView(APIView):
    required_permission = perms.ISSUE_LINKS

    @extend_schema(request=None, responses=LinkSerializer)
    def post(self, request, link_id: int):
        issued = links.link_approve(link=_link(request, link_id), actor=request.user)
        body = LinkSerializer(issued.link).data
        if issued.url:
            body["url"] = issued.url  # an Azure SAS: shown to the approver, once
        return Response(body)


class LinkRevokeView(APIView):
    required_permission = perms.ISSUE_LINKS

    @extend_schema(request=None, responses=LinkSerializer)
    def post(self, request, link_id: int):
        link = links.link_revoke(link=_link(request, link_id), actor=request.user)
        body = LinkSerializer(link).data
        if link.kind == LinkKind.AZURE_SAS:
            body["note"] = (
                "An Azure SAS cannot be withdrawn on its own: revoke the storage account's user delegation keys "
                "(az storage account revoke-delegation-keys) to stop it before it expires."
            )
        return Response(body)
