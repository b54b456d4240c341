"""The identity provider's configuration form, used by the organisation administrator's page and the
Django admin alike: the certificate must be a full X.509 certificate, never a fingerprint."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from cases.models import IdentityProvider
from cases.saml.config import normalised_certificate
from custodia.errors import ServiceError

EDITABLE_FIELDS = [
    "name",
    "enabled",
    "listed_on_login_page",
    "entity_id",
    "sso_url",
    "slo_url",
    "x509_cert",
    "username_attribute",
    "email_attribute",
    "display_name_attribute",
    "groups_attribute",
    "member_groups",
    "org_admin_groups",
    "case_opener_groups",
]


class IdentityProviderForm(forms.ModelForm):
    class Meta:
        model = IdentityProvider
        fields = EDITABLE_FIELDS
        widgets = {
            "x509_cert": forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
            "member_groups": forms.Textarea(attrs={"rows": 3}),
            "org_admin_groups": forms.Textarea(attrs={"rows": 3}),
            "case_opener_groups": forms.Textarea(attrs={"rows": 3}),
        }

    def clean_x509_cert(self) -> str:
        text = self.cleaned_data["x509_cert"]
        try:
            body = normalised_certificate(text)
        except ServiceError as exc:
            raise forms.ValidationError(exc.detail) from None
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"

    def clean_sso_url(self) -> str:
        return _https_or_local(self.cleaned_data["sso_url"])

    def clean_slo_url(self) -> str:
        return _https_or_local(self.cleaned_data["slo_url"]) if self.cleaned_data["slo_url"] else ""


def _https_or_local(url: str) -> str:
    """The browser carries signed requests to these URLs: HTTPS, or plain HTTP on this machine only."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")):
        return url
    raise forms.ValidationError("Use an https:// address.")
