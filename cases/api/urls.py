from django.urls import path

from cases.api import views

urlpatterns = [
    path("auth/token", views.TokenLoginView.as_view(), name="api-token-login"),
    path("tokens/", views.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:token_pk>/", views.TokenDetailView.as_view(), name="api-token-detail"),
    path("users/", views.UserListView.as_view(), name="api-users"),
    path("users/<int:user_pk>/", views.UserDetailView.as_view(), name="api-user-detail"),
    path(
        "users/<int:user_pk>/password-reset",
        views.UserPasswordResetView.as_view(),
        name="api-user-password-reset",
    ),
    path("cases/", views.CaseListView.as_view(), name="api-case-list"),
    path("cases/<int:case_id>/", views.CaseDetailView.as_view(), name="api-case-detail"),
    path("cases/<int:case_id>/members/", views.CaseMembersView.as_view(), name="api-case-members"),
    path(
        "cases/<int:case_id>/members/<str:username>/",
        views.CaseMemberDetailView.as_view(),
        name="api-case-member-detail",
    ),
    path("audit/", views.AuditListView.as_view(), name="api-audit"),
    path("audit/verify", views.AuditVerifyView.as_view(), name="api-audit-verify"),
    path("audit/public-key", views.AuditPublicKeyView.as_view(), name="api-audit-public-key"),
    path("cases/<int:case_id>/audit/export", views.CaseAuditExportView.as_view(), name="api-case-audit-export"),
]
