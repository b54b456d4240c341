from django.urls import path

from evidence.api import capture, links, time_zone, views

urlpatterns = [
    path("cases/<int:case_id>/evidence/", views.CaseEvidenceView.as_view(), name="api-case-evidence"),
    path("evidence/import", views.EvidenceImportView.as_view(), name="api-evidence-import"),
    path("evidence/acquire", views.EvidenceAcquireView.as_view(), name="api-evidence-acquire"),
    path("evidence/<uuid:evidence_id>/", views.EvidenceDetailView.as_view(), name="api-evidence-detail"),
    path("evidence/<uuid:evidence_id>/content", views.EvidenceContentView.as_view(), name="api-evidence-content"),
    path(
        "evidence/<uuid:evidence_id>/content/status",
        views.EvidenceContentStatusView.as_view(),
        name="api-evidence-content-status",
    ),
    path("evidence/<uuid:evidence_id>/seal", views.EvidenceSealView.as_view(), name="api-evidence-seal"),
    path("evidence/<uuid:evidence_id>/verify", views.EvidenceVerifyView.as_view(), name="api-evidence-verify"),
    path("evidence/<uuid:evidence_id>/parent", views.EvidenceParentView.as_view(), name="api-evidence-parent"),
    path("evidence/<uuid:evidence_id>/custody", views.EvidenceCustodyView.as_view(), name="api-evidence-custody"),
    path("evidence/<uuid:evidence_id>/secrets/", views.EvidenceSecretsView.as_view(), name="api-evidence-secrets"),
    path(
        "evidence/<uuid:evidence_id>/secrets/<int:secret_id>/reveal",
        views.EvidenceSecretRevealView.as_view(),
        name="api-evidence-secret-reveal",
    ),
    path("evidence/<uuid:evidence_id>/links", links.EvidenceLinksView.as_view(), name="api-evidence-links"),
    path(
        "evidence/<uuid:evidence_id>/source-time-zone",
        time_zone.EvidenceSourceTimeZoneView.as_view(),
        name="api-evidence-source-time-zone",
    ),
    path("links/<int:link_id>/approve", links.LinkApproveView.as_view(), name="api-link-approve"),
    path("links/<int:link_id>/revoke", links.LinkRevokeView.as_view(), name="api-link-revoke"),
    path("cases/<int:case_id>/captures", capture.CaseCapturesView.as_view(), name="api-case-captures"),
    path("cases/<int:case_id>/captures/vms", capture.CaseCaptureVmsView.as_view(), name="api-case-capture-vms"),
    path("captures/<uuid:run_id>", capture.CaptureDetailView.as_view(), name="api-capture-detail"),
]
