from django.urls import path

from search import triage_views, views

app_name = "search"

urlpatterns = [
    path("evidence/<uuid:evidence_id>/extractions/", views.evidence_extractions, name="extractions"),
    path("evidence/<uuid:evidence_id>/extract/", views.evidence_extract, name="extract"),
    path("evidence/<uuid:evidence_id>/folders/", triage_views.evidence_folders, name="folders"),
    path("evidence/<uuid:evidence_id>/folders/nodes/", triage_views.evidence_tree_nodes, name="folder-nodes"),
    path("evidence/<uuid:evidence_id>/folders/list/", triage_views.evidence_folder_list, name="folder-list"),
    path("cases/<int:case_id>/overview/", triage_views.case_overview, name="case-overview"),
    path("cases/<int:case_id>/traces/", views.trace_search, name="trace-search"),
    path("cases/<int:case_id>/events/", views.events_timeline, name="events-timeline"),
    path("search/help/", views.query_help, name="query-help"),
    path("cases/<int:case_id>/search/complete", views.trace_complete, name="trace-complete"),
    # Collaboration: before traces/<uid>/, which would otherwise take "tag" for a uid.
    path("cases/<int:case_id>/traces/tag/", views.trace_bulk_tag, name="trace-bulk-tag"),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/annotations/",
        views.trace_annotations,
        name="trace-annotations",
    ),
    path("cases/<int:case_id>/searches/", views.saved_search_save, name="saved-search-save"),
    path(
        "cases/<int:case_id>/searches/<int:saved_search_id>/delete/",
        views.saved_search_delete,
        name="saved-search-delete",
    ),
    path("cases/<int:case_id>/traces/<str:trace_uid>/", views.trace_detail, name="trace-detail"),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/thumbnail/<str:stream>.png",
        views.trace_thumbnail,
        name="trace-thumbnail",
    ),
]
