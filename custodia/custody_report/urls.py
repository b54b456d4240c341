from django.urls import path

from custodia.custody_report import views

urlpatterns = [
    path(
        "evidence/<uuid:evidence_id>/custody/report.pdf",
        views.EvidenceCustodyReportView.as_view(),
        {"report_format": "pdf"},
        name="api-evidence-custody-report-pdf",
    ),
    path(
        "evidence/<uuid:evidence_id>/custody/report.json",
        views.EvidenceCustodyReportView.as_view(),
        {"report_format": "json"},
        name="api-evidence-custody-report-json",
    ),
    path(
        "cases/<int:case_id>/custody/report.pdf",
        views.CaseCustodyReportView.as_view(),
        {"report_format": "pdf"},
        name="api-case-custody-report-pdf",
    ),
    path(
        "cases/<int:case_id>/custody/report.json",
        views.CaseCustodyReportView.as_view(),
        {"report_format": "json"},
        name="api-case-custody-report-json",
    ),
]
