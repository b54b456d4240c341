from django.urls import path

from alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.alert_list, name="list"),
    path("panel/", views.alert_panel, name="panel"),
    path("<int:alert_id>/ack/", views.alert_acknowledge, name="acknowledge"),
]
