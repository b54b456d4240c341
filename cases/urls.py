from django.urls import path

from cases import views

app_name = "cases"

urlpatterns = [
    path("", views.case_list, name="list"),
    path("new/", views.case_create, name="create"),
    path("<int:case_id>/", views.case_detail, name="detail"),
    path("<int:case_id>/edit/", views.case_edit, name="edit"),
    path("<int:case_id>/members/add/", views.member_add, name="member-add"),
    path("<int:case_id>/members/<str:username>/role/", views.member_role, name="member-role"),
    path("<int:case_id>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
    path("<int:case_id>/audit/", views.case_audit, name="audit"),
]
