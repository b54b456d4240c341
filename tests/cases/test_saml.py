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
    assert csrf_before is None or client.cookies["csrftoken"].value != csrf_before.value
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
