from django.urls import path

from cases.saml import views

urlpatterns = [
    path("settings/", views.saml_settings_page, name="saml-settings"),
    path("<slug:slug>/metadata/", views.metadata, name="saml-metadata"),
    path("<slug:slug>/login/", views.saml_login, name="saml-login"),
    path("<slug:slug>/acs/", views.acs, name="saml-acs"),
    path("<slug:slug>/sls/", views.sls, name="saml-sls"),
    path("<slug:slug>/logout/", views.saml_logout, name="saml-logout"),
]
