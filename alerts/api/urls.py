from django.urls import path

from alerts.api import views

urlpatterns = [
    path("alerts/", views.AlertListView.as_view(), name="api-alerts"),
    path("alerts/<int:alert_id>/ack", views.AlertAcknowledgeView.as_view(), name="api-alert-ack"),
]
