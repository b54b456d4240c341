from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from custodia import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("cases/", include("cases.urls")),
    path("", include("evidence.urls")),
    path("l/", include("evidence.links_urls")),
    path("", include("search.urls")),
    path("api/", include("cases.api.urls")),
    path("api/", include("evidence.api.urls")),
    path("api/", include("search.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "custodia.views.not_found"
handler403 = "custodia.views.forbidden"
handler500 = "custodia.views.server_error"
