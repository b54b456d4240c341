"""The SAML endpoints of one organisation (``/auth/saml/<slug>/…``) and its administrator's settings page.

Every refusal is a page with a 4xx status and a plain reason, and an ``auth.saml.login`` audit row with
outcome denied; nothing the IdP or a browser sends can cause a 500 here.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import rotate_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from cases.models import IdentityProvider, Organization
from cases.saml import pending, services
from cases.saml.config import SamlNotConfigured, saml_request_data, saml_settings, sp_urls
from cases.saml.forms import IdentityProviderForm
from cases.saml.relay import safe_path
from custodia.access import ORG_ADMIN, PUBLIC, requires
from custodia.errors import ServiceError, error_page

logger = logging.getLogger(__name__)

SESSION_KEY = "saml"  # {"organization": slug, "name_id": ..., "session_index": ...} of a SAML sign-in
LOGOUT_REQUEST_KEY = "saml_logout_request"
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _organization(slug: str) -> Organization:
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        raise Http404("No such organisation.")
    return organization


def _identity_provider(organization: Organization) -> IdentityProvider:
    idp = IdentityProvider.objects.filter(organization=organization, enabled=True).first()
    if idp is None:
        raise SamlNotConfigured(f"{organization.name} has no single sign-on set up; sign in with a password.")
    return idp


def _auth(request: HttpRequest, organization: Organization, idp: IdentityProvider | None) -> OneLogin_Saml2_Auth:
    config = saml_settings(organization=organization, idp=idp, request=request)
    try:
        return OneLogin_Saml2_Auth(saml_request_data(request), old_settings=config)
    except OneLogin_Saml2_Error as exc:  # a configuration python3-saml refuses (a URL, our key pair)
        logger.error("SAML settings of %s refused: %s", organization.slug, exc.code)
        raise SamlNotConfigured(
            f"The single sign-on of {organization.name} is not set up correctly; ask its administrator.",
            status_code=503,
        ) from None


def _refused(request: HttpRequest, exc: ServiceError, organization: Organization | None, name_id: str = ""):
    services.saml_refusal_record(organization=organization, reason=exc.detail, code=exc.code, name_id=name_id)
    response = error_page(request, status=exc.status_code, title="Sign-in refused", message=exc.detail, code=exc.code)
    pending.forget(response)
    return response


@requires(PUBLIC)  # what every IdP is given: our entity ID, endpoints and certificate
@require_GET
def metadata(request: HttpRequest, slug: str) -> HttpResponse:
    organization = _organization(slug)  # the same metadata whether or not an IdP is configured
    try:
        config = saml_settings(organization=organization, idp=None, request=request)
    except ServiceError as exc:
        return error_page(request, status=exc.status_code, title="Not available", message=exc.detail)
    try:
        saml = OneLogin_Saml2_Settings(config, sp_validation_only=True)
        xml = saml.get_sp_metadata()
        errors = saml.validate_metadata(xml)
    except OneLogin_Saml2_Error as exc:
        errors = [str(exc.code)]
    if errors:  # our own configuration (the key pair's files): logged without the key
        logger.error("SAML SP metadata of %s is invalid: %s", organization.slug, errors)
        return error_page(
            request, status=503, title="Not available", message="The service provider's key pair is not usable."
        )
    response = HttpResponse(xml, content_type="application/samlmetadata+xml")
    response["Content-Disposition"] = f'inline; filename="custodia-{organization.slug}-metadata.xml"'
    return response


@requires(PUBLIC)  # starts a sign-in at the organisation's IdP
@require_GET
def saml_login(request: HttpRequest, slug: str) -> HttpResponse:
    organization = _organization(slug)
    try:
        next_path = safe_path(request.GET.get("next", ""), request=request) or reverse(settings.LOGIN_REDIRECT_URL)
        idp = _identity_provider(organization)
        auth = _auth(request, organization, idp)
        url = auth.login(return_to=next_path)
    except ServiceError as exc:
        return _refused(request, exc, organization)
    response = redirect(url)
    pending.remember(
        request=request,
        response=response,
        pending=pending.PendingRequest(
            request_id=auth.get_last_request_id(),
            organization=organization.slug,
            next_path=next_path,
            issued_at=time.time(),
        ),
    )
    return response


def _response_root_attributes(auth: OneLogin_Saml2_Auth) -> dict[str, str]:
    """Destination and InResponseTo of the Response element (not of anything inside it)."""
    xml = auth.get_last_response_xml()
    if not xml:
        return {}
    root = OneLogin_Saml2_XML.to_etree(xml)
    return {"destination": root.get("Destination") or "", "in_response_to": root.get("InResponseTo") or ""}


@csrf_exempt  # posted by the IdP's page from another site; the signed assertion and InResponseTo guard it
@requires(PUBLIC)
@require_POST
def acs(request: HttpRequest, slug: str) -> HttpResponse:
    """Assertion Consumer Service: verify the IdP's answer, map it, sign the user in."""
    organization = _organization(slug)
    name_id = ""
    try:
        relay_path = safe_path(request.POST.get("RelayState", ""), request=request)
        idp = _identity_provider(organization)
        waiting = pending.take(request=request)
        if waiting is None or waiting.organization != organization.slug:
            raise services.SamlRefused(
                "No sign-in was started here from this browser, or it took too long; start again.", status_code=400
            )
        if "SAMLResponse" not in request.POST:
            raise services.SamlRefused("The identity provider's answer is missing.", status_code=400)
        auth = _auth(request, organization, idp)
        try:
            auth.process_response(request_id=waiting.request_id)
        except Exception as exc:  # malformed base64, XML or SAML from the outside: a refusal, not a 500
            logger.info("SAML response of %s not readable: %s", organization.slug, type(exc).__name__)
            raise services.SamlRefused("The identity provider's answer could not be read.", status_code=400) from None
        if auth.get_errors() or not auth.is_authenticated():
            reason = auth.get_last_error_reason() or ", ".join(auth.get_errors())
            raise services.SamlRefused(f"The identity provider's answer is not valid: {reason}", status_code=400)
        root = _response_root_attributes(auth)
        # python3-saml accepts a Response without InResponseTo (unsolicited) and a Destination that merely
        # starts with our URL: we want exactly the request we sent, at exactly this endpoint.
        if root.get("in_response_to") != waiting.request_id:
            raise services.SamlRefused("The answer is not to the sign-in this browser started.", status_code=400)
        if root.get("destination") != sp_urls(organization=organization, request=request)["acs"]:
            raise services.SamlRefused("The answer was addressed to another destination.", status_code=400)
        name_id = auth.get_nameid() or ""
        expiry = auth.get_last_assertion_not_on_or_after()
        user = services.saml_sign_in(
            idp=idp,
            name_id=name_id,
            attributes=auth.get_attributes(),
            assertion_id=auth.get_last_assertion_id() or "",
            expires_at=datetime.fromtimestamp(expiry, tz=UTC) if expiry else None,
        )
    except ServiceError as exc:
        return _refused(request, exc, organization, name_id=name_id)
    with transaction.atomic():
        login(request, user, backend=AUTH_BACKEND)  # a new session id; user_logged_in writes auth.login
    rotate_token(request)  # and a new CSRF token
    request.session[SESSION_KEY] = {
        "organization": organization.slug,
        "name_id": name_id,
        "name_id_format": auth.get_nameid_format(),
        "session_index": auth.get_session_index(),
    }
    response = redirect(relay_path or waiting.next_path)
    pending.forget(response)
    return response


def _end_session(request: HttpRequest, *, initiated_by: str) -> None:
    user = request.user if request.user.is_authenticated else None
    if user is not None:
        services.saml_logout_record(user=user, initiated_by=initiated_by)
    with transaction.atomic():
        logout(request)  # flushes the server-side session; user_logged_out writes auth.logout


@requires(PUBLIC)  # signs out here and, when the IdP has single logout, there
@require_POST
def saml_logout(request: HttpRequest, slug: str) -> HttpResponse:
    organization = _organization(slug)
    signed_in = request.session.get(SESSION_KEY) or {}
    idp = IdentityProvider.objects.filter(organization=organization, enabled=True).first()
    _end_session(request, initiated_by="user")
    if idp is None or not idp.slo_url or signed_in.get("organization") != organization.slug:
        return redirect(settings.LOGOUT_REDIRECT_URL)
    try:
        auth = _auth(request, organization, idp)
        url = auth.logout(
            return_to=reverse("login"),
            name_id=signed_in.get("name_id"),
            session_index=signed_in.get("session_index"),
            name_id_format=signed_in.get("name_id_format"),
        )
    except ServiceError:
        return redirect(settings.LOGOUT_REDIRECT_URL)
    request.session[LOGOUT_REQUEST_KEY] = auth.get_last_request_id()
    return redirect(url)


@requires(PUBLIC)  # the IdP's single logout: a signed LogoutRequest, or the LogoutResponse to ours
@require_GET
def sls(request: HttpRequest, slug: str) -> HttpResponse:
    organization = _organization(slug)
    try:
        idp = _identity_provider(organization)
        if "Signature" not in request.GET or not ({"SAMLRequest", "SAMLResponse"} & set(request.GET)):
            # python3-saml checks a signature only when there is one; an unsigned logout is refused here.
            raise services.SamlRefused("Single logout messages must be signed.", status_code=400)
        auth = _auth(request, organization, idp)
        ended = []
        try:
            url = auth.process_slo(
                request_id=request.session.get(LOGOUT_REQUEST_KEY),
                delete_session_cb=lambda: ended.append(True),
            )
        except Exception as exc:  # malformed messages from the outside
            logger.info("SAML logout of %s not readable: %s", organization.slug, type(exc).__name__)
            raise services.SamlRefused("The logout message could not be read.", status_code=400) from None
        if auth.get_errors():
            raise services.SamlRefused(
                f"The logout message is not valid: {auth.get_last_error_reason() or ''}", status_code=400
            )
    except ServiceError as exc:
        return error_page(request, status=exc.status_code, title="Logout refused", message=exc.detail, code=exc.code)
    if "SAMLRequest" in request.GET:
        _end_session(request, initiated_by="idp")
    request.session.pop(LOGOUT_REQUEST_KEY, None)
    return redirect(url or settings.LOGOUT_REDIRECT_URL)


@requires(ORG_ADMIN)  # the organisation's own IdP and attribute mapping
@login_required
@require_http_methods(["GET", "POST"])
def saml_settings_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not getattr(user, "is_org_admin", False) or user.organization_id is None:
        raise PermissionDenied("Only an organisation administrator may set up single sign-on.")
    organization = user.organization
    idp = IdentityProvider.objects.filter(organization=organization).first()
    form = IdentityProviderForm(request.POST or None, instance=idp)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save(commit=False)
            saved.organization = organization
            saved.save()
            services.identity_provider_saved(actor=user, idp=saved, changed=form.changed_data, created=idp is None)
        messages.success(request, "Single sign-on saved.")
        return redirect("saml-settings")
    urls = sp_urls(organization=organization, request=request)
    return render(
        request,
        "registration/saml_settings.html",
        {"form": form, "organization": organization, "sp": urls, "idp": idp},
    )
