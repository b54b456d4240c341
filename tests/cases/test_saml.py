"""SAML 2.0 single sign-on against a real identity provider (pysaml2's IdP, tests/saml_idp.py): a good
sign-in, and every forged, replayed, misaddressed or expired answer refused with a page and an audit row."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.test import Client

from audit.models import AuditEvent
from cases.models import IdentityProvider, Organization, User
from cases.saml import pending
from tests.saml_idp import TestIdentityProvider, encoded, make_key_pair

ACS = "/auth/saml/{slug}/acs/"


@pytest.fixture(scope="module")
def key_pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saml-keys")
    return {name: make_key_pair(folder, name) for name in ("sp", "idp-demo", "idp-other")}


@pytest.fixture
def saml(demo, settings, key_pairs, client):
    """Both demo organisations with their own IdP; the SP's key pair in files, as `make run` makes it."""
    settings.CUSTODIA_SAML_SP_KEY_PATH = key_pairs["sp"].key_path
    settings.CUSTODIA_SAML_SP_CERT_PATH = key_pairs["sp"].cert_path
    metadata = [client.get(f"/auth/saml/{slug}/metadata/").content.decode() for slug in ("demo-police", "other-agency")]
    idps = {}
    for slug, keys in (("demo-police", key_pairs["idp-demo"]), ("other-agency", key_pairs["idp-other"])):
        idp = TestIdentityProvider(entity_id=f"https://idp.{slug}.test/", keys=keys, sp_metadata=metadata)
        IdentityProvider.objects.create(
            organization=Organization.objects.get(slug=slug),
            name=f"{slug} IdP",
            entity_id=idp.entity_id,
            sso_url=idp.sso_url,
            slo_url=idp.slo_url,
            x509_cert=keys.certificate_pem,
            member_groups="custodia-users",
            org_admin_groups="custodia-admins",
            case_opener_groups="custodia-openers",
        )
        idps[slug] = idp
    return idps


def start(client, idp, slug="demo-police", next_path="/cases/"):
    response = client.get(f"/auth/saml/{slug}/login/?" + urlencode({"next": next_path}))
    assert response.status_code == 302, response.content
    return idp.read_authn_request(response["Location"])


def post(client, xml, relay="/cases/", slug="demo-police"):
    return client.post(ACS.format(slug=slug), {"SAMLResponse": encoded(xml), "RelayState": relay})


def refusals():
    return AuditEvent.objects.filter(action="auth.saml.login", outcome="denied")


def test_metadata_is_served_for_every_organisation_with_or_without_an_idp(saml, client):
    for slug in ("demo-police", "other-agency"):
        response = client.get(f"/auth/saml/{slug}/metadata/")
        assert response.status_code == 200
        body = response.content.decode()
        assert f"http://testserver/auth/saml/{slug}/acs/" in body
        assert 'AuthnRequestsSigned="true"' in body and "<ds:X509Certificate>" in body
    IdentityProvider.objects.all().delete()
    assert client.get("/auth/saml/demo-police/metadata/").status_code == 200
    assert client.get("/auth/saml/no-such-org/metadata/").status_code == 404


def test_good_login_creates_the_user_with_only_what_the_mapping_grants(saml, client):
    idp = saml["demo-police"]
    request = start(client, idp)
    csrf_before = client.get("/login/").cookies.get("csrftoken")
    session_before = client.cookies.get("sessionid")
    xml = idp.response_xml(
        request, name_id="alice", attributes={"groups": ["custodia-users", "custodia-openers"], "email": ["a@x.test"]}
    )
    response = post(client, xml)
    assert response.status_code == 302, list(refusals().values_list("details", flat=True))
    assert response["Location"] == "/cases/"
    user = User.objects.get(username="alice")
    assert user.organization.slug == "demo-police"
    assert not user.is_org_admin and user.has_perm("cases.add_case") and not user.has_usable_password()
    assert client.get("/cases/").status_code == 200
    assert client.cookies["sessionid"].value != (session_before.value if session_before else None)
    assert csrf_before is not None and client.cookies["csrftoken"].value != csrf_before.value
    actions = set(AuditEvent.objects.filter(actor_id=user.pk).values_list("action", flat=True))
    assert {"auth.saml.user.create", "auth.saml.login", "auth.login"} <= actions


def test_replayed_response_is_refused(saml, client):
    """An attacker who captured the post and the browser's pending-request cookie posts both again from
    another browser: the signature, InResponseTo and times all still hold; the replay cache refuses it."""
    idp = saml["demo-police"]
    request = start(client, idp)
    captured_cookie = client.cookies[pending.COOKIE_NAME].value
    xml = idp.response_xml(request)
    assert post(client, xml).status_code == 302
    attacker = Client()
    attacker.cookies[pending.COOKIE_NAME] = captured_cookie
    response = post(attacker, xml)
    assert response.status_code == 400
    assert b"already used" in response.content
    assert refusals().filter(details__code="saml_replay").exists()
    assert "_auth_user_id" not in attacker.session


# --- forged and misdirected answers -------------------------------------------------------------------

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def edited_name_id(xml: str, new: str) -> str:
    return re.sub(r"(<(?:\w+:)?NameID[^>]*>)[^<]*(<)", rf"\g<1>{new}\g<2>", xml, count=1)


def signature_wrapped(xml: str) -> str:
    """XSW: the signed assertion kept (so its signature still verifies), an evil copy naming another user
    put before it, where a careless reader takes the first assertion it finds."""
    from lxml import etree

    root = etree.fromstring(xml.encode())
    signed = root.find(f"{{{SAML}}}Assertion")
    evil = etree.fromstring(etree.tostring(signed))
    evil.set("ID", "_evil" + signed.get("ID")[1:])
    for signature in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        evil.remove(signature)
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "orgadmin"
    signed.addprevious(evil)
    return etree.tostring(root).decode()


def signature_wrapped_inside(xml: str) -> str:
    """XSW, second form: the evil assertion replaces the signed one, which hides inside it as an extension."""
    from lxml import etree

    root = etree.fromstring(xml.encode())
    signed = root.find(f"{{{SAML}}}Assertion")
    evil = etree.fromstring(etree.tostring(signed))
    evil.set("ID", "_evil" + signed.get("ID")[1:])
    for signature in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        evil.remove(signature)
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "orgadmin"
    root.replace(signed, evil)
    advice = etree.SubElement(evil, f"{{{SAML}}}Advice")
    advice.append(signed)
    return etree.tostring(root).decode()


FORGERIES = {
    "xsw-sibling": lambda idp, request: signature_wrapped(idp.response_xml(request, name_id="alice")),
    "xsw-wrapped": lambda idp, request: signature_wrapped_inside(idp.response_xml(request, name_id="alice")),
    "name-id-edited": lambda idp, request: edited_name_id(idp.response_xml(request, name_id="alice"), "orgadmin"),
    "assertion-unsigned": lambda idp, request: idp.response_xml(request, sign_assertion=False, sign_response=True),
    "nothing-signed": lambda idp, request: idp.response_xml(request, sign_assertion=False, sign_response=False),
    "wrong-audience": lambda idp, request: idp.response_xml(
        request, audience="http://testserver/auth/saml/other-agency/metadata/"
    ),
    "wrong-destination": lambda idp, request: idp.response_xml(
        request, destination="http://testserver/auth/saml/other-agency/acs/"
    ),
    "destination-extended": lambda idp, request: idp.response_xml(request, destination=request.acs_url + "x/"),
    "expired": lambda idp, request: idp.response_xml(request, lifetime_minutes=-30),
    "unsolicited": lambda idp, request: idp.response_xml(request, in_response_to=None),
    "other-request": lambda idp, request: idp.response_xml(request, in_response_to="_not-the-request-we-sent"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_or_misdirected_answers_are_refused_with_a_page_and_an_audit_row(saml, client, forgery):
    idp = saml["demo-police"]
    request = start(client, idp)
    response = post(client, FORGERIES[forgery](idp, request))
    assert 400 <= response.status_code < 500, response.status_code
    assert b"Sign-in refused" in response.content and b"Traceback" not in response.content
    assert refusals().count() == 1
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="alice").exists()


def test_an_answer_of_another_organisations_idp_is_refused(saml, client):
    """Other Agency's IdP (its own key) answers Demo Police's request: not Demo Police's IdP."""
    request = start(client, saml["demo-police"])
    forged = saml["other-agency"].response_xml(request, name_id="orgadmin")
    response = post(client, forged)
    assert response.status_code == 400
    assert refusals().count() == 1
    assert "_auth_user_id" not in client.session


def test_an_answer_posted_to_another_organisations_acs_is_refused(saml, client):
    """A genuine answer of Other Agency's IdP, for its own SP, posted to Demo Police's ACS."""
    request = start(client, saml["other-agency"], slug="other-agency")
    genuine = saml["other-agency"].response_xml(request, name_id="alice")
    response = post(client, genuine, slug="demo-police")
    assert response.status_code == 400
    assert refusals().count() == 1


@pytest.mark.parametrize("payload", ["not base64 at all!", encoded("<not-saml/>"), encoded("<a><b></a>"), ""])
def test_garbage_is_a_refusal_not_a_500(saml, client, payload):
    start(client, saml["demo-police"])
    response = client.post(ACS.format(slug="demo-police"), {"SAMLResponse": payload})
    assert response.status_code == 400
    assert refusals().count() == 1


# --- RelayState and next --------------------------------------------------------------------------------

EVIL_TARGETS = [
    "https://evil.test",
    "//evil.test",
    "/\\evil.test",
    "javascript:alert(1)",
    "\\\\evil.test",
    "http:/evil.test",
    "/cases/\n//evil.test",
]


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_relay_state_off_site_is_refused_at_the_acs(saml, client, target):
    idp = saml["demo-police"]
    request = start(client, idp)
    response = post(client, idp.response_xml(request), relay=target)
    assert response.status_code == 400
    assert b"Sign-in refused" in response.content
    assert refusals().filter(details__code="unsafe_redirect").count() == 1
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_next_off_site_is_refused_before_going_to_the_idp(saml, client, target):
    response = client.get("/auth/saml/demo-police/login/?" + urlencode({"next": target}))
    assert response.status_code == 400
    assert refusals().filter(details__code="unsafe_redirect").count() == 1


def test_relay_state_on_site_is_followed(saml, client, demo):
    idp = saml["demo-police"]
    path = f"/cases/{demo.case.pk}/"
    request = start(client, idp, next_path=path)
    assert request.relay_state == path
    response = post(client, idp.response_xml(request, name_id="custodian"), relay=path)
    assert response.status_code == 302 and response["Location"] == path


# --- the mapping ----------------------------------------------------------------------------------------


def test_a_user_in_no_member_group_is_refused_and_not_created(saml, client):
    idp = saml["demo-police"]
    request = start(client, idp)
    response = post(client, idp.response_xml(request, name_id="mallory", attributes={"groups": ["visitors"]}))
    assert response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    assert refusals().filter(details__name_id="mallory").exists()


def test_mapping_grants_follow_the_groups_at_every_sign_in(saml, client):
    idp = saml["demo-police"]
    groups = ["custodia-users", "custodia-admins"]
    post(client, idp.response_xml(start(client, idp), name_id="bob", attributes={"groups": groups}))
    bob = User.objects.get(username="bob")
    assert bob.is_org_admin and not bob.has_perm("cases.add_case")
    client.logout()
    post(client, idp.response_xml(start(client, idp), name_id="bob", attributes={"groups": ["custodia-users"]}))
    bob.refresh_from_db()
    assert not bob.is_org_admin
    change = AuditEvent.objects.get(action="auth.saml.mapping", actor_id=bob.pk)
    assert change.details["before"]["is_org_admin"] is True and change.details["after"]["is_org_admin"] is False


def test_existing_user_of_the_organisation_is_linked_not_duplicated(saml, client, demo):
    idp = saml["demo-police"]
    post(client, idp.response_xml(start(client, idp), name_id="detective"))
    assert client.session["_auth_user_id"] == str(demo.detective.pk)
    assert User.objects.filter(username__istartswith="detective").count() == 1


def test_a_username_of_another_organisation_is_never_taken_over(saml, client, demo):
    idp = saml["demo-police"]
    post(client, idp.response_xml(start(client, idp), name_id="outsider"))
    signed_in = User.objects.get(pk=client.session["_auth_user_id"])
    assert signed_in.pk != demo.outsider.pk
    assert signed_in.organization.slug == "demo-police" and signed_in.username == "outsider@demo-police"


# --- logout ---------------------------------------------------------------------------------------------


def test_logout_ends_the_server_side_session_and_goes_to_the_idp(saml, client):
    from django.contrib.sessions.models import Session

    idp = saml["demo-police"]
    post(client, idp.response_xml(start(client, idp), name_id="alice"))
    session_key = client.session.session_key
    assert Session.objects.filter(session_key=session_key).exists()
    response = client.post("/auth/saml/demo-police/logout/")
    assert response.status_code == 302 and response["Location"].startswith(idp.slo_url)
    assert not Session.objects.filter(session_key=session_key).exists()
    assert client.get("/cases/").status_code == 302
    assert AuditEvent.objects.filter(action="auth.saml.logout").exists()


def test_an_unsigned_logout_request_is_refused(saml, client):
    idp = saml["demo-police"]
    post(client, idp.response_xml(start(client, idp), name_id="alice"))
    response = client.get("/auth/saml/demo-police/sls/", {"SAMLRequest": "bm90aGluZw=="})
    assert response.status_code == 400
    assert client.get("/cases/").status_code == 200  # still signed in


def test_the_idps_signed_logout_request_ends_the_session(saml, client):
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID

    idp = saml["demo-police"]
    post(client, idp.response_xml(start(client, idp), name_id="alice"))
    sp_entity = "http://testserver/auth/saml/demo-police/metadata/"
    _, logout_request = idp.server.create_logout_request(
        destination="http://testserver/auth/saml/demo-police/sls/",
        issuer_entity_id=sp_entity,
        name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text="alice"),
        sign=False,
    )
    info = idp.server.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(logout_request),
        destination="http://testserver/auth/saml/demo-police/sls/",
        sign=True,
        sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    )
    location = dict(info["headers"])["Location"]
    response = client.get(location.replace("http://testserver", ""))
    assert response.status_code == 302, response.content
    assert client.get("/cases/").status_code == 302  # signed out


# --- configuration ----------------------------------------------------------------------------------------


def test_an_organisation_without_an_idp_says_so(saml, client):
    IdentityProvider.objects.filter(organization__slug="other-agency").delete()
    response = client.get("/auth/saml/other-agency/login/")
    assert response.status_code == 404
    assert b"no single sign-on" in response.content
    assert refusals().filter(details__code="saml_not_configured").exists()


def test_missing_sp_key_files_are_a_clear_503(saml, client, settings, tmp_path):
    settings.CUSTODIA_SAML_SP_KEY_PATH = tmp_path / "absent.key"
    response = client.get("/auth/saml/demo-police/login/")
    assert response.status_code == 503
    assert b"CUSTODIA_SAML_SP_KEY_PATH" in response.content and b"PRIVATE KEY" not in response.content
    assert client.get("/auth/saml/demo-police/metadata/").status_code == 503
    # Files that hold no key pair: the same clear 503, never a 500 or the files' contents.
    (tmp_path / "bad.key").write_text("not a key")
    (tmp_path / "bad.crt").write_text("not a certificate")
    settings.CUSTODIA_SAML_SP_KEY_PATH = tmp_path / "bad.key"
    settings.CUSTODIA_SAML_SP_CERT_PATH = tmp_path / "bad.crt"
    for url in ("/auth/saml/demo-police/metadata/", "/auth/saml/demo-police/login/"):
        response = client.get(url)
        assert response.status_code == 503 and b"not a key" not in response.content


def test_the_org_admin_configures_the_idp_and_it_is_audited(saml, client, demo, key_pairs):
    client.force_login(demo.orgadmin)
    page = client.get("/auth/saml/settings/")
    assert page.status_code == 200
    assert b"http://testserver/auth/saml/demo-police/metadata/" in page.content
    form = {
        "name": "Entra ID",
        "enabled": "on",
        "listed_on_login_page": "on",
        "entity_id": "https://sts.windows.net/tenant/",
        "sso_url": "https://login.microsoftonline.com/tenant/saml2",
        "slo_url": "",
        "x509_cert": "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01",
        "groups_attribute": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "member_groups": "custodia-users",
    }
    refused = client.post("/auth/saml/settings/", form)
    assert refused.status_code == 200 and b"not its fingerprint" in refused.content
    form["x509_cert"] = key_pairs["idp-other"].certificate_pem
    assert client.post("/auth/saml/settings/", form).status_code == 302
    idp = IdentityProvider.objects.get(organization__slug="demo-police")
    assert idp.name == "Entra ID" and idp.x509_cert.startswith("-----BEGIN CERTIFICATE-----")
    row = AuditEvent.objects.filter(action="auth.saml.configure").latest("sequence")
    assert row.actor_id == demo.orgadmin.pk and "groups_attribute" in row.details["changed"]
    assert row.details["mapping"]["member_groups"] == "custodia-users"


def test_only_an_org_admin_may_open_the_sso_settings(saml, client, demo):
    client.force_login(demo.custodian)
    assert client.get("/auth/saml/settings/").status_code == 403
    client.logout()
    assert client.get("/auth/saml/settings/").status_code == 302  # to the sign-in page


def test_the_login_page_offers_each_listed_idp(saml, client):
    page = client.get("/login/?next=/cases/").content.decode()
    assert "Sign in with demo-police IdP" in page and "/auth/saml/demo-police/login/?next=/cases/" in page
    IdentityProvider.objects.filter(organization__slug="other-agency").update(listed_on_login_page=False)
    assert "other-agency IdP" not in client.get("/login/").content.decode()


def test_a_deactivated_user_is_refused(saml, client, demo):
    User.objects.filter(pk=demo.detective.pk).update(is_active=False)
    idp = saml["demo-police"]
    response = post(client, idp.response_xml(start(client, idp), name_id="detective"))
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert refusals().filter(details__name_id="detective").exists()


def test_the_django_admin_saves_an_idp_with_an_audit_row(saml, client, demo, key_pairs):
    operator = User.objects.create_superuser("operator", password="operator-password-long")
    client.force_login(operator)
    IdentityProvider.objects.filter(organization__slug="other-agency").delete()
    other = Organization.objects.get(slug="other-agency")
    form = {
        "organization": other.pk,
        "name": "Other Keycloak",
        "enabled": "on",
        "entity_id": "https://keycloak.other.test/realms/other",
        "sso_url": "https://keycloak.other.test/realms/other/protocol/saml",
        "x509_cert": key_pairs["idp-other"].certificate_pem,
        "groups_attribute": "groups",
    }
    response = client.post("/admin/cases/identityprovider/add/", form)
    assert response.status_code == 302, response.content[:2000]
    row = AuditEvent.objects.filter(action="auth.saml.configure").latest("sequence")
    assert row.actor_id == operator.pk and row.details["organization"] == "other-agency" and row.details["created"]
