"""Thin API views for extraction runs and traces."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from evidence import selectors as evidence_selectors
from search import selectors, services
from search.api import serializers as s


def _evidence(request, evidence_id):
    request._request.audit_case_id = evidence_selectors.evidence_case_id(evidence_id=evidence_id)
    return evidence_selectors.evidence_get(user=request.user, evidence_id=evidence_id)


class EvidenceExtractView(APIView):
    @extend_schema(request=None, responses={202: s.ExtractionRunSerializer})
    def post(self, request, evidence_id):
        evidence = _evidence(request, evidence_id)
        run = services.extraction_start(actor=request.user, evidence=evidence)
        return Response(s.ExtractionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvidenceExtractionsView(APIView):
    @extend_schema(responses=s.ExtractionRunSerializer(many=True))
    def get(self, request, evidence_id):
        evidence = _evidence(request, evidence_id)
        return Response(s.ExtractionRunSerializer(selectors.extraction_runs(evidence=evidence), many=True).data)


class TraceDetailView(APIView):
    @extend_schema(responses=s.TraceSerializer)
    def get(self, request, case_id: int, trace_uid: str):
        return Response(s.TraceSerializer(selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)).data)


class TraceChildrenView(APIView):
    @extend_schema(responses=s.TraceSerializer(many=True))
    def get(self, request, case_id: int, trace_uid: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        return Response(s.TraceSerializer(selectors.trace_children(trace=trace), many=True).data)


class TraceSearchView(APIView):
    @extend_schema(request=s.SearchRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        serializer = s.SearchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The query text goes into this request's audit row (the privacy model may transform it later).
        request._request.audit_details = {"query": data["query"][:2000]}
        return Response(selectors.traces_search(user=request.user, case_id=case_id, **data))
