"""Thin API views for the custody reports: load what the URL names for the caller, produce, send."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from audit.context import note_target
from cases import permissions as perms
from cases.selectors import case_get
from custodia.api import evidence_for_request
from custodia.custody_report import services
from custodia.custody_report.services import ProducedReport

REPORT_RESPONSES = {
    (200, "application/pdf"): OpenApiResponse(response=OpenApiTypes.BINARY, description="The custody report as PDF"),
    (200, "application/json"): OpenApiResponse(
        response=OpenApiTypes.OBJECT, description="The custody report's data (report.json)"
    ),
}


def report_response(produced: ProducedReport) -> HttpResponse:
    response = HttpResponse(produced.content, content_type=produced.content_type)
    response["Content-Disposition"] = f'attachment; filename="{produced.filename}"'
    response["X-Content-SHA256"] = produced.sha256
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


class ReportView(APIView):
    required_permission = perms.VIEW_AUDIT

    def perform_content_negotiation(self, request, force=False):
        # The report is sent as it is (not rendered by DRF); a refusal is JSON whatever the caller accepts
        # (a browser, ``Accept: application/pdf``), rather than a 406.
        return JSONRenderer(), JSONRenderer.media_type


class EvidenceCustodyReportView(ReportView):
    """The custody report of one evidence item (custodians and prosecutors); producing it is audited with
    its SHA-256, which the response also carries in ``X-Content-SHA256``."""

    @extend_schema(responses=REPORT_RESPONSES)
    def get(self, request, evidence_id, report_format: str):
        evidence = evidence_for_request(request, evidence_id, perms.VIEW_AUDIT)
        return report_response(
            services.evidence_custody_report(actor=request.user, evidence=evidence, report_format=report_format)
        )


class CaseCustodyReportView(ReportView):
    """The custody report of a case and all its evidence (custodians and prosecutors); producing it is
    audited with its SHA-256, which the response also carries in ``X-Content-SHA256``."""

    @extend_schema(responses=REPORT_RESPONSES)
    def get(self, request, case_id: int, report_format: str):
        note_target(case_id=case_id)
        case = case_get(user=request.user, case_id=case_id, permission=perms.VIEW_AUDIT)
        return report_response(services.case_custody_report(actor=request.user, case=case, report_format=report_format))
