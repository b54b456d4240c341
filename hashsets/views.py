"""The hash sets page: the organisation's sets for every member; import and delete for its administrators.
The same services as the API (``/api/hashsets/``) and ``manage.py hashset_import``."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from custodia.access import LOGGED_IN, ORG_ADMIN, requires
from custodia.errors import Forbidden
from custodia.web import run_service
from hashsets import selectors, services
from hashsets.models import HASH_SET_NAME_MAX_LENGTH, HashKind


class HashSetImportForm(forms.Form):
    name = forms.CharField(
        max_length=HASH_SET_NAME_MAX_LENGTH,
        help_text="Letters, digits, '-', '_' and '.'; searched as hashset:NAME.",
    )
    kind = forms.ChoiceField(choices=HashKind.choices)
    file = forms.FileField(
        help_text="NSRL RDSv3 (.db) or NSRLFile.txt, a CSV with md5/sha1/sha256 columns, or one hex digest a line."
    )


@requires(LOGGED_IN, post=ORG_ADMIN)  # members see their organisation's sets; administrators import
@login_required
@require_http_methods(["GET", "POST"])
def hashset_list(request: HttpRequest) -> HttpResponse:
    form = HashSetImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if not request.user.is_org_admin:
            raise Forbidden("Only an organisation administrator may import hash sets.")
        if form.is_valid():
            upload = form.cleaned_data["file"]
            path = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else None
            imported = run_service(
                request,
                lambda: services.hashset_import(
                    actor=request.user,
                    organization=request.user.organization,
                    name=form.cleaned_data["name"],
                    kind=form.cleaned_data["kind"],
                    stream=upload.file,
                    path=path,
                    source_name=upload.name or "",
                ),
                success="Hash set imported. Traces already extracted are being marked.",
            )
            if imported is not None:
                return redirect("hashsets")
    hash_sets = selectors.hashsets_for_user(user=request.user)
    return render(request, "hashsets/list.html", {"form": form, "hash_sets": hash_sets})


@requires(ORG_ADMIN)
@login_required
@require_POST
def hashset_delete(request: HttpRequest, hash_set_id: int) -> HttpResponse:
    hash_set = selectors.hashset_get(user=request.user, hash_set_id=hash_set_id)
    run_service(
        request, lambda: services.hashset_delete(actor=request.user, hash_set=hash_set), success="Hash set deleted."
    )
    return redirect("hashsets")
