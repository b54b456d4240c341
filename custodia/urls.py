from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from custodia import views
from custodia.access import PUBLIC, requires
from custodia.security import with_inline_styles

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    # Every view declares what it needs (custodia/access.py); Django's and drf-spectacular's through requires().
    path("login/", requires(PUBLIC)(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", requires(PUBLIC)(auth_views.LogoutView.as_view()), name="logout"),
    path("auth/saml/", include("cases.saml.urls")),
    path("account/", include("cases.account_urls")),
    path("cases/", include("cases.urls")),
    # The pages of a user's alerts and hand-offs (the API is /api/alerts/).
    path("notifications/", include("alerts.urls")),
    path("", include("evidence.urls")),
    path("l/", include("evidence.links_urls")),
    path("", include("search.urls")),
    path("hashsets/", include("hashsets.urls")),
    path("api/", include("cases.api.urls")),
    path("api/", include("evidence.api.urls")),
    path("api/", include("search.api.urls")),
    path("api/", include("hashsets.api.urls")),
    path("api/", include("custodia.custody_report.urls")),
    path("api/", include("alerts.api.urls")),
    path("", include("custodia.privacy_urls")),  # re-identification, the administrators' load (issue #19)
    # The API's description, open to anyone (drf-spectacular's SERVE_PERMISSIONS): it names no case.
    path("api/schema/", requires(PUBLIC)(SpectacularAPIView.as_view()), name="api-schema"),
    # The split view serves its start-up script as a file (?script), not inline: the CSP allows no inline script.
    path(
        "api/docs/",
        requires(PUBLIC)(with_inline_styles(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
]

handler404 = "custodia.views.not_found"
handler403 = "custodia.views.forbidden"
handler500 = "custodia.errors.server_error"  # 503 when the database cannot answer
