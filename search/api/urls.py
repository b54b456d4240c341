from django.urls import path

from search.api import triage, views

urlpatterns = [
    path("evidence/<uuid:evidence_id>/extract", views.EvidenceExtractView.as_view(), name="api-evidence-extract"),
    path(
        "evidence/<uuid:evidence_id>/extractions/",
        views.EvidenceExtractionsView.as_view(),
        name="api-evidence-extractions",
    ),
    path("evidence/<uuid:evidence_id>/tree", triage.EvidenceTreeView.as_view(), name="api-evidence-tree"),
    path(
        "evidence/<uuid:evidence_id>/tree/entries",
        triage.EvidenceFolderEntriesView.as_view(),
        name="api-evidence-tree-entries",
    ),
    path("cases/<int:case_id>/overview", triage.CaseOverviewView.as_view(), name="api-case-overview"),
    path("cases/<int:case_id>/traces/search", views.TraceSearchView.as_view(), name="api-trace-search"),
    path("cases/<int:case_id>/traces/values", views.TraceValuesView.as_view(), name="api-trace-values"),
    path("cases/<int:case_id>/events/search", views.EventsSearchView.as_view(), name="api-events-search"),
    path("cases/<int:case_id>/events/export.csv", views.EventsExportView.as_view(), name="api-events-export"),
    # Collaboration: before traces/<uid>, which would otherwise take "tag" and "export.csv" for a uid.
    path("cases/<int:case_id>/traces/tag", views.TraceBulkTagView.as_view(), name="api-trace-bulk-tag"),
    path("cases/<int:case_id>/traces/complete", views.TraceCompleteView.as_view(), name="api-trace-complete"),
    path("cases/<int:case_id>/traces/export.csv", views.TraceExportView.as_view(), name="api-trace-export"),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/tags/<str:tag>",
        views.TraceTagView.as_view(),
        name="api-trace-tag",
    ),
    path("cases/<int:case_id>/traces/<str:trace_uid>/notes", views.TraceNotesView.as_view(), name="api-trace-notes"),
    path("cases/<int:case_id>/searches/", views.SavedSearchesView.as_view(), name="api-saved-searches"),
    path(
        "cases/<int:case_id>/searches/<int:saved_search_id>/",
        views.SavedSearchDetailView.as_view(),
        name="api-saved-search",
    ),
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
