"""The API of an evidence item's source time zone (issue #18 item 6): read it with the item, set it here."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import permissions as perms
from custodia.api import StrictSerializer, evidence_for_request, validated
from evidence.api.serializers import EvidenceSerializer
from evidence.services.time_zone import evidence_source_time_zone_set


class SourceTimeZoneSerializer(StrictSerializer):
    time_zone = serializers.CharField(
        allow_blank=True,
        max_length=200,
        help_text="An IANA time zone name (Europe/Amsterdam, UTC); empty for unknown.",
    )


class EvidenceSourceTimeZoneView(APIView):
    """PUT ``{"time_zone": "Europe/Amsterdam"}``: the zone the item's local times are converted with from its
    next extraction run (``""`` clears it). Answers with the evidence item."""

    required_permission = perms.REGISTER_EVIDENCE

    @extend_schema(request=SourceTimeZoneSerializer, responses=EvidenceSerializer)
    def put(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.REGISTER_EVIDENCE)
        data = validated(SourceTimeZoneSerializer, request.data)
        evidence = evidence_source_time_zone_set(actor=request.user, evidence=evidence, time_zone=data["time_zone"])
        return Response(EvidenceSerializer(evidence).data)
