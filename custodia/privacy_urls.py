"""Routes of the privacy model's actions: re-identification (API and page) and the administrators' load view."""

from django.urls import path

from custodia import privacy_views

urlpatterns = [
    path("api/audit/reidentify", privacy_views.ReIdentificationListView.as_view(), name="api-reidentify"),
    path(
        "api/audit/reidentify/<int:request_id>",
        privacy_views.ReIdentificationDetailView.as_view(),
        name="api-reidentify-detail",
    ),
    path(
        "api/audit/reidentify/<int:request_id>/approve",
        privacy_views.ReIdentificationDecisionView.as_view(),
        name="api-reidentify-approve",
    ),
    path("audit/reidentify/", privacy_views.reidentify_page, name="privacy-reidentify"),
    path("api/admin/load", privacy_views.AdminLoadView.as_view(), name="api-admin-load"),
    path("load/", privacy_views.admin_load_page, name="admin-load"),
]
