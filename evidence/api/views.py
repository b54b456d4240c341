"""Thin API views for evidence: parse, call a selector or a service, serialise."""

from __future__ import annotations

import base64
from urllib.parse import unquote

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.context import note_target
from cases import permissions as perms
from cases.api.serializers import FoldedAuditLineSerializer
from cases.selectors import case_get
from custodia.api import evidence_for_request, validated
from custodia.errors import ServiceError
from evidence import selectors
from evidence.api import serializers as s
from evidence.services import acquisition, chain, escrow, intake, integrity, registration, upload


class RawBytesParser(BaseParser):
    """Accepts any body for the content upload; the view streams it from the request itself."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class CaseEvidenceView(APIView):
    required_permission = perms.VIEW_EVIDENCE
    permission_by_method = {"post": perms.REGISTER_EVIDENCE}

    @extend_schema(responses=s.EvidenceSerializer(many=True))
    def get(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.VIEW_EVIDENCE)
        return Response(s.EvidenceSerializer(selectors.evidence_for_case(user=request.user, case=case), many=True).data)

    @extend_schema(request=s.EvidenceRegisterSerializer, responses={201: s.EvidenceSerializer})
    def post(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.REGISTER_EVIDENCE)
        data = validated(s.EvidenceRegisterSerializer, request.data)
        recorded = registration.pop_recorded_facts(data)
        evidence = registration.evidence_register(actor=request.user, case=case, recorded=recorded, **data)
        return Response(s.EvidenceSerializer(evidence).data, status=status.HTTP_201_CREATED)


class EvidenceDetailView(APIView):
    required_permission = perms.VIEW_EVIDENCE

    @extend_schema(responses=s.EvidenceSerializer)
    def get(self, request, evidence_id):
        return Response(s.EvidenceSerializer(evidence_for_request(request, evidence_id)).data)


class EvidenceContentView(APIView):
    required_permission = perms.REGISTER_EVIDENCE

    parser_classes = [RawBytesParser]

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[
            OpenApiParameter(
                "Content-Range",
                str,
                location=OpenApiParameter.HEADER,
                required=True,
                description="bytes START-END/TOTAL; START a multiple of the evidence's chunk_size",
            ),
            OpenApiParameter(
                "X-File-Name",
                str,
                location=OpenApiParameter.HEADER,
                required=False,
                description="The uploaded file's name, percent-encoded UTF-8 (kept when the item has none yet)",
            ),
        ],
        responses=s.UploadStatusSerializer,
    )
    def put(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        content_range = upload.parse_content_range(request.headers.get("Content-Range", ""))
        length = request.headers.get("Content-Length")
        upload.evidence_receive(
            actor=request.user,
            evidence=evidence,
            content_range=content_range,
            stream=request._request,
            content_length=int(length) if length and length.isdigit() else None,
            file_name=unquote(request.headers.get("X-File-Name", ""), errors="replace"),
        )
        evidence.refresh_from_db()
        return Response(upload.upload_status(evidence=evidence))


class EvidenceContentStatusView(APIView):
    required_permission = perms.REGISTER_EVIDENCE

    @extend_schema(responses=s.UploadStatusSerializer)
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        return Response(upload.upload_status(evidence=evidence))


class EvidenceSealView(APIView):
    required_permission = perms.REGISTER_EVIDENCE

    @extend_schema(request=None, responses=s.EvidenceSerializer)
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        evidence = upload.evidence_seal(actor=request.user, evidence=evidence)
        return Response(s.EvidenceSerializer(evidence).data)


class EvidenceVerifyView(APIView):
    required_permission = perms.VIEW_EVIDENCE

    @extend_schema(request=None, responses={200: s.VerificationSerializer, 202: {"type": "object"}})
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id)
        report = integrity.evidence_verify_request(actor=request.user, evidence=evidence)
        if report is None:
            # Larger than CUSTODIA_VERIFY_INLINE_BYTES: a worker reads it; the evidence shows the outcome.
            return Response({"queued": True, "evidence": str(evidence.pk)}, status=status.HTTP_202_ACCEPTED)
        return Response(report)


class EvidenceParentView(APIView):
    """Link a differencing disk to its parent, another sealed disk image of the same case."""

    required_permission = perms.REGISTER_EVIDENCE

    @extend_schema(request=s.EvidenceParentLinkSerializer, responses=s.EvidenceSerializer)
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        data = validated(s.EvidenceParentLinkSerializer, request.data)
        evidence = chain.evidence_parent_link(actor=request.user, evidence=evidence, parent_id=data["parent"])
        return Response(s.EvidenceSerializer(evidence).data)


def _accepted_or_created(request, evidence) -> Response:
    """201 with the sealed item when it was sealed in the request; else 202 with the item to follow
    (``GET /api/evidence/<id>/``: ``state``, ``received_bytes`` sealed so far of ``size``, ``progress``)."""
    body = s.EvidenceSerializer(evidence).data
    if evidence.is_sealed:
        return Response(body, status=status.HTTP_201_CREATED)
    follow = request.build_absolute_uri(f"/api/evidence/{evidence.pk}/")
    return Response(
        {**body, "queued": True, "follow": follow}, status=status.HTTP_202_ACCEPTED, headers={"Location": follow}
    )


class EvidenceImportView(APIView):
    required_permission = perms.REGISTER_EVIDENCE  # on the case named in the body

    @extend_schema(request=s.EvidenceImportSerializer, responses={201: s.EvidenceSerializer, 202: s.EvidenceSerializer})
    def post(self, request):
        data = validated(s.EvidenceImportSerializer, request.data)
        if isinstance(data["case"], int):
            note_target(case_id=data["case"])
        case = case_get(user=request.user, case_id=data.pop("case"), permission=perms.REGISTER_EVIDENCE)
        evidence = intake.evidence_import(
            actor=request.user, case=case, recorded=registration.pop_recorded_facts(data), **data
        )
        return _accepted_or_created(request, evidence)

    audit_access = True


class EvidenceAcquireView(APIView):
    required_permission = perms.REGISTER_EVIDENCE  # on the case named in the body

    @extend_schema(request=s.EvidenceAcquireSerializer, responses={202: s.EvidenceSerializer})
    def post(self, request):
        data = validated(s.EvidenceAcquireSerializer, request.data)
        if isinstance(data["case"], int):
            note_target(case_id=data["case"])
        case = case_get(user=request.user, case_id=data.pop("case"), permission=perms.REGISTER_EVIDENCE)
        evidence = acquisition.evidence_acquire(
            actor=request.user, case=case, recorded=registration.pop_recorded_facts(data), **data
        )
        return _accepted_or_created(request, evidence)

    audit_access = True


class EvidenceSecretsView(APIView):
    required_permission = perms.VIEW_EVIDENCE
    permission_by_method = {"post": perms.REGISTER_EVIDENCE}

    @extend_schema(responses=s.SecretSerializer(many=True))
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id)
        return Response(s.SecretSerializer(selectors.escrowed_secrets(evidence=evidence), many=True).data)

    @extend_schema(request=s.SecretCreateSerializer, responses={201: s.SecretSerializer})
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        data = validated(s.SecretCreateSerializer, request.data)
        secret = escrow.secret_escrow(
            actor=request.user,
            evidence=evidence,
            kind=data["kind"],
            name=data["name"],
            value=data["secret"],
            tags=data["tags"],
        )
        return Response(s.SecretSerializer(secret).data, status=status.HTTP_201_CREATED)


class EvidenceSecretRevealView(APIView):
    required_permission = perms.REVEAL_SECRETS

    @extend_schema(request=None, responses={200: {"type": "object"}})
    def post(self, request, evidence_id, secret_id: int):
        evidence_for_request(request, evidence_id)
        secret = selectors.escrowed_secret_get(
            user=request.user, evidence_id=evidence_id, secret_id=secret_id, permission=perms.REVEAL_SECRETS
        )
        value = escrow.secret_reveal(actor=request.user, secret=secret)
        try:
            return Response({"id": secret.pk, "kind": secret.kind, "name": secret.name, "value": value.decode("utf-8")})
        except UnicodeDecodeError:
            return Response(
                {"id": secret.pk, "kind": secret.kind, "name": secret.name, "value_base64": base64.b64encode(value)}
            )


MAX_CUSTODY_PAGE = 500


def _whole_number(value: str, name: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ServiceError(f"{name} must be a whole number above 0.")
    return int(value)


class EvidenceCustodyView(APIView):
    required_permission = perms.VIEW_AUDIT  # actors, client addresses, link recipients: the audit trail

    @extend_schema(
        parameters=[
            OpenApiParameter("all", bool, description="Every event, reads included (default: custody-relevant)"),
            OpenApiParameter("cursor", int, description="Sequence the page starts at (from the Link header)"),
            OpenApiParameter("size", int, description=f"Lines per page (at most {MAX_CUSTODY_PAGE})"),
        ],
        responses=FoldedAuditLineSerializer(many=True),
    )
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.VIEW_AUDIT)
        params = request.query_params
        page = selectors.evidence_custody_page(
            evidence=evidence,
            all_events=params.get("all", "").lower() in ("1", "true", "yes"),
            cursor=_whole_number(params.get("cursor", ""), "cursor"),
            size=min(_whole_number(params.get("size", ""), "size") or 100, MAX_CUSTODY_PAGE),
        )
        response = Response(FoldedAuditLineSerializer(page.lines, many=True).data)
        if page.next_cursor is not None:
            following = request.query_params.copy()
            following["cursor"] = str(page.next_cursor)
            response["Link"] = f'<{request.build_absolute_uri(request.path)}?{following.urlencode()}>; rel="next"'
        return response
