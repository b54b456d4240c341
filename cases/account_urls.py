from django.urls import path

from cases import account_views

urlpatterns = [
    path("", account_views.account_settings, name="account-settings"),
    path("tokens/", account_views.token_list, name="account-tokens"),
    path("tokens/<int:token_pk>/revoke/", account_views.token_revoke, name="account-token-revoke"),
]
