from django.urls import path

from search.api import views

urlpatterns = [
    path("evidence/<uuid:evidence_id>/extract", views.EvidenceExtractView.as_view(), name="api-evidence-extract"),
    path(
        "evidence/<uuid:evidence_id>/extractions/",
        views.EvidenceExtractionsView.as_view(),
        name="api-evidence-extractions",
    ),
    path("cases/<int:case_id>/traces/search", views.TraceSearchView.as_view(), name="api-trace-search"),
    path("cases/<int:case_id>/traces/<str:trace_uid>", views.TraceDetailView.as_view(), name="api-trace-detail"),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/children",
        views.TraceChildrenView.as_view(),
        name="api-trace-children",
    ),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/data/<str:stream>",
        views.TraceDataView.as_view(),
        name="api-trace-data",
    ),
]
