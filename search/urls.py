from django.urls import path

from search import views

app_name = "search"

urlpatterns = [
    path("evidence/<uuid:evidence_id>/extractions/", views.evidence_extractions, name="extractions"),
    path("evidence/<uuid:evidence_id>/extract/", views.evidence_extract, name="extract"),
    path("cases/<int:case_id>/traces/", views.trace_search, name="trace-search"),
    path("cases/<int:case_id>/traces/<str:trace_uid>/", views.trace_detail, name="trace-detail"),
    path(
        "cases/<int:case_id>/traces/<str:trace_uid>/thumbnail/<str:stream>.png",
        views.trace_thumbnail,
        name="trace-thumbnail",
    ),
]
