"""Single sign-on and API tokens in a real browser: "Sign in with <IdP>" on the sign-in page, through a
real SAML IdP (pysaml2, serving a page that posts the signed answer back by itself), lands signed in; and
a user makes, sees and revokes an API token on its page."""

from __future__ import annotations

import re
import urllib.request

import pytest
from django.core.management import call_command

from cases.models import ApiToken, IdentityProvider, Organization, User
from tests.browser.conftest import screenshot
from tests.conftest import DEMO_PASSWORD
from tests.saml_idp import AutoPostIdpServer, TestIdentityProvider, make_key_pair

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo_data(monkeypatch, committing_db):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_sign_in_with_the_organisations_idp_lands_signed_in(page, demo_data, live_server, settings, tmp_path):
    sp = make_key_pair(tmp_path, "sp")
    settings.CUSTODIA_SAML_SP_KEY_PATH = sp.key_path
    settings.CUSTODIA_SAML_SP_CERT_PATH = sp.cert_path
    with urllib.request.urlopen(f"{live_server.url}/auth/saml/demo-police/metadata/") as answer:  # noqa: S310
        metadata = answer.read().decode()
    idp_keys = make_key_pair(tmp_path, "idp")

    def idp_at(base_url: str) -> TestIdentityProvider:
        return TestIdentityProvider(
            entity_id="https://idp.demo-police.test/", keys=idp_keys, sp_metadata=[metadata], base_url=base_url
        )

    attributes = {"groups": ["custodia-users"], "displayName": ["Sam Sso"], "email": ["sam@demo-police.test"]}
    with AutoPostIdpServer(idp_at, name_id="sam.sso", attributes=attributes) as server:
        IdentityProvider.objects.create(
            organization=Organization.objects.get(slug="demo-police"),
            name="Demo Police Entra",
            entity_id=server.idp.entity_id,
            sso_url=server.idp.sso_url,
            x509_cert=idp_keys.certificate_pem,
            member_groups="custodia-users",
            # pysaml2 sends these attributes under their OID names, as many IdPs send URIs.
            display_name_attribute="urn:oid:2.16.840.1.113730.3.1.241",
            email_attribute="urn:oid:1.2.840.113549.1.9.1.1",
        )
        page.goto("/login/")
        screenshot(page, "login-sso")
        page.get_by_role("link", name="Sign in with Demo Police Entra").click()
        page.wait_for_url("**/cases/")
        assert "Sam Sso" in page.locator("header").inner_text()
    user = User.objects.get(username="sam.sso")
    assert user.organization.slug == "demo-police" and user.email == "sam@demo-police.test"
    # Signing out ends the session here (the IdP has no single logout URL configured).
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    page.goto("/cases/")
    assert "/login/" in page.url


def test_a_user_creates_sees_once_and_revokes_an_api_token(page, demo_data):
    page.goto("/login/")
    page.get_by_label("Username").fill("detective")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/cases/")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url("**/account/tokens/")
    page.get_by_label("Name").fill("court export script")
    page.get_by_label("Expires after (days)").fill("14")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"cst_[\w-]+", secret)
    screenshot(page, "api-tokens")
    row = page.get_by_role("row", name=re.compile("court export script"))
    assert "Read only" in row.inner_text() and "active" in row.inner_text()
    page.goto("/account/tokens/")
    assert secret not in page.content()  # shown once
    page.get_by_role("button", name="Revoke court export script").click()
    page.wait_for_url("**/account/tokens/")
    assert "revoked" in page.get_by_role("row", name=re.compile("court export script")).inner_text()
    assert ApiToken.objects.get(name="court export script").revoked_at is not None
