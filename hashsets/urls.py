from django.urls import path

from hashsets import views

urlpatterns = [
    path("", views.hashset_list, name="hashsets"),
    path("<int:hash_set_id>/delete/", views.hashset_delete, name="hashset-delete"),
]
