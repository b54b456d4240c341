"""The python3-saml settings of one organisation, and a Django request as python3-saml reads it.

One service-provider key pair serves every organisation; it is read from the files named by
``CUSTODIA_SAML_SP_KEY_PATH`` and ``CUSTODIA_SAML_SP_CERT_PATH`` (``make run`` generates them), never from
the database. Each organisation is its own service provider, named by its metadata URL, so that an
assertion its IdP issued for it is refused anywhere else (audience, recipient and destination).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml

from cases.models import IdentityProvider, Organization
from custodia.errors import ServiceError

PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
FINGERPRINT = re.compile(r"^(?:[0-9A-Fa-f]{2}[:\s]?){16,64}$")


class SamlNotConfigured(ServiceError):
    code = "saml_not_configured"
    status_code = 404


@dataclass(frozen=True)
class SpKeyPair:
    private_key: str
    certificate: str


def sp_key_pair() -> SpKeyPair:
    """Our signing key and certificate, read from their files at each use (a rotated pair needs no restart)."""
    key_path = Path(settings.CUSTODIA_SAML_SP_KEY_PATH)
    cert_path = Path(settings.CUSTODIA_SAML_SP_CERT_PATH)
    try:
        pair = SpKeyPair(private_key=key_path.read_text(), certificate=cert_path.read_text())
        # Parsed here so that a broken file is a clear 503 at once, not an error deep in the signing.
        serialization.load_pem_private_key(pair.private_key.encode(), password=None)
        x509.load_pem_x509_certificate(pair.certificate.encode())
    except (OSError, ValueError, TypeError, UnicodeError):
        # The message names the settings, never the key.
        raise SamlNotConfigured(
            "Single sign-on is not set up on this server: its SAML key and certificate files are missing or "
            "unreadable (CUSTODIA_SAML_SP_KEY_PATH, CUSTODIA_SAML_SP_CERT_PATH; `make run` creates them).",
            status_code=503,
        ) from None
    return pair


def normalised_certificate(text: str) -> str:
    """The base64 body of one X.509 certificate given as PEM or bare base64, checked by parsing it.
    A fingerprint is refused: an IdP is trusted by its full certificate only."""
    text = (text or "").strip()
    if FINGERPRINT.match(text):
        raise ServiceError(
            "Give the IdP's full X.509 certificate (PEM), not its fingerprint.", code="invalid_certificate"
        )
    match = PEM_BODY.search(text)
    body = re.sub(r"\s+", "", match.group(1) if match else text)
    try:
        der = base64.b64decode(body, validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise ServiceError("This is not an X.509 certificate (PEM or base64).", code="invalid_certificate") from None
    return body


def base_url(request: HttpRequest) -> str:
    """Scheme and host the IdPs know us by: ``CUSTODIA_SAML_BASE_URL``, or the request's (its Host is
    checked against ALLOWED_HOSTS by ``get_host``)."""
    if settings.CUSTODIA_SAML_BASE_URL:
        return settings.CUSTODIA_SAML_BASE_URL
    return f"{request.scheme}://{request.get_host()}"


def sp_urls(*, organization: Organization, request: HttpRequest) -> dict[str, str]:
    root = base_url(request)
    slug = organization.slug
    return {
        "entity_id": root + reverse("saml-metadata", kwargs={"slug": slug}),
        "acs": root + reverse("saml-acs", kwargs={"slug": slug}),
        "sls": root + reverse("saml-sls", kwargs={"slug": slug}),
    }


def saml_settings(*, organization: Organization, idp: IdentityProvider | None, request: HttpRequest) -> dict:
    """python3-saml's settings for ``organization``: strict, signed requests, signed assertions required."""
    keys = sp_key_pair()
    urls = sp_urls(organization=organization, request=request)
    config: dict = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": urls["entity_id"],
            "assertionConsumerService": {"url": urls["acs"], "binding": Saml.BINDING_HTTP_POST},
            "singleLogoutService": {"url": urls["sls"], "binding": Saml.BINDING_HTTP_REDIRECT},
            "NameIDFormat": Saml.NAMEID_UNSPECIFIED,
            "x509cert": keys.certificate,
            "privateKey": keys.private_key,
        },
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "wantAssertionsSigned": True,
            # Entra ID signs the assertion only, by default; the assertion's signature is what we require.
            "wantMessagesSigned": False,
            "wantNameId": True,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": Saml.RSA_SHA256,
            "digestAlgorithm": Saml.SHA256,
            "allowRepeatAttributeName": True,
            # An intranet host without a dot (https://custodia/) is a real deployment; ALLOWED_HOSTS guards hosts.
            "allowSingleLabelDomains": True,
        },
        "idp": {
            # Without an IdP (metadata only) python3-saml still wants the section; it is never trusted.
            "entityId": idp.entity_id if idp else urls["entity_id"] + "#no-idp",
            "singleSignOnService": {"url": idp.sso_url if idp else urls["acs"], "binding": Saml.BINDING_HTTP_REDIRECT},
            "x509cert": normalised_certificate(idp.x509_cert) if idp else "",
        },
    }
    if idp is not None and idp.slo_url:
        config["idp"]["singleLogoutService"] = {"url": idp.slo_url, "binding": Saml.BINDING_HTTP_REDIRECT}
    return config


def saml_request_data(request: HttpRequest) -> dict:
    """The request as python3-saml reads it: the URL it was received at (for the destination and recipient
    checks) and its query and form data."""
    if settings.CUSTODIA_SAML_BASE_URL:
        public = urlsplit(settings.CUSTODIA_SAML_BASE_URL)
        https, host = public.scheme == "https", public.netloc
    else:
        https, host = request.is_secure(), request.get_host()
    return {
        "https": "on" if https else "off",
        "http_host": host,
        "script_name": request.path,
        "get_data": request.GET.copy(),
        "post_data": request.POST.copy(),
        "query_string": request.META.get("QUERY_STRING", ""),
    }
