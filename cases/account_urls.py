from django.urls import path

from cases import account_views, org_views

urlpatterns = [
    path("", account_views.account_settings, name="account-settings"),
    path("tokens/", account_views.token_list, name="account-tokens"),
    path("tokens/<int:token_pk>/revoke/", account_views.token_revoke, name="account-token-revoke"),
    # Issue #20: the organisation administrator's screen, and the one-time link to set a new password.
    path("organisation/", org_views.organisation, name="org-admin"),
    path("organisation/users/<int:user_pk>/active/", org_views.user_active, name="org-admin-user-active"),
    path("organisation/users/<int:user_pk>/reset/", org_views.user_password_reset, name="org-admin-user-reset"),
    path("reset/<uidb64>/<token>/", org_views.password_reset_confirm, name="account-password-reset"),
    path("reset/done/", org_views.password_reset_done, name="account-password-reset-done"),
]
