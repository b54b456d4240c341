from django.urls import path

from hashsets.api import views

urlpatterns = [
    path("hashsets/", views.HashSetsView.as_view(), name="api-hashsets"),
    path("hashsets/<int:hash_set_id>/", views.HashSetDetailView.as_view(), name="api-hashset"),
]
