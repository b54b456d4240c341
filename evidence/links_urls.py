"""``/l/<token>``: the download behind a link (no session needed). Included from custodia/urls.py."""

from django.urls import path

from evidence import links_views

urlpatterns = [
    path("<str:token>", links_views.link_download, name="link-download"),
    path("<str:token>/", links_views.link_page, name="link-page"),
    path("<str:token>/hashes.txt", links_views.link_hashes, name="link-hashes"),
]
