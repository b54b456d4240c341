from django.urls import path

from evidence import capture_views, links_pages, time_zone_pages, views

app_name = "evidence"

urlpatterns = [
    path("cases/<int:case_id>/evidence/", views.case_evidence, name="case-evidence"),
    path("cases/<int:case_id>/evidence/new/", views.evidence_register, name="register"),
    path("evidence/<uuid:evidence_id>/", views.evidence_detail, name="detail"),
    path("evidence/<uuid:evidence_id>/progress/", views.evidence_progress, name="progress"),
    path("evidence/<uuid:evidence_id>/seal/", views.evidence_seal, name="seal"),
    path(
        "evidence/<uuid:evidence_id>/source-time-zone/",
        time_zone_pages.evidence_source_time_zone,
        name="source-time-zone",
    ),
    path("evidence/<uuid:evidence_id>/verify/", views.evidence_verify, name="verify"),
    path("evidence/<uuid:evidence_id>/parent/", views.evidence_parent_link, name="parent-link"),
    path("evidence/<uuid:evidence_id>/secrets/add/", views.secret_add, name="secret-add"),
    path("evidence/<uuid:evidence_id>/secrets/<int:secret_id>/reveal/", views.secret_reveal, name="secret-reveal"),
    path("evidence/<uuid:evidence_id>/links/", links_pages.evidence_links, name="links"),
    path("evidence/<uuid:evidence_id>/links/issue/", links_pages.link_issue, name="link-issue"),
    path("cases/<int:case_id>/links/", links_pages.case_links, name="case-links"),
    path("links/<int:link_id>/approve/", links_pages.link_approve, name="link-approve"),
    path("links/<int:link_id>/revoke/", links_pages.link_revoke, name="link-revoke"),
    path("cases/<int:case_id>/captures/", capture_views.case_captures, name="case-captures"),
    path("cases/<int:case_id>/captures/new/", capture_views.capture_new, name="capture-new"),
    path("cases/<int:case_id>/captures/vms/", capture_views.capture_vms, name="capture-vms"),
    path("captures/<uuid:run_id>/", capture_views.capture_detail, name="capture-detail"),
]
