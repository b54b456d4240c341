"""Azure SAS links (#6): user-delegation SAS generation, and SAS enforcement by a real Azurite.

Azurite has no Entra ID to hand out user delegation keys, so the enforcement tests use the development-only
account-key SAS (setting-gated, loopback only) with the same permissions, expiry and blob scope; the
user-delegation SAS itself is checked field by field as the SDK signs it.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient, UserDelegationKey
from django.utils import timezone

from custodia.errors import ServiceError
from evidence.models import DownloadLink, Evidence
from evidence.services.links_sas import user_delegation_sas_url
from tests.evidence.test_links import issue, sealed, second_custodian  # noqa: F401 - fixtures
from tests.servers import ServerUnavailable, azurite_server

CONTENT = b"VHD footer and a disk's worth of bytes " * 1000


def delegation_key(expiry: datetime) -> UserDelegationKey:
    key = UserDelegationKey()
    key.signed_oid = str(uuid.uuid4())
    key.signed_tid = str(uuid.uuid4())
    key.signed_start = (expiry - timedelta(hours=80)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_service = "b"
    key.signed_version = "2021-08-06"
    key.value = base64.b64encode(b"k" * 32).decode()
    return key


def test_user_delegation_sas_is_read_only_https_one_blob_within_the_key():
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + timedelta(hours=8)
    url = user_delegation_sas_url(
        account_url="https://soc.blob.core.windows.net",
        account_name="soc",
        container="evidence-vhd",
        blob="vm1/os disk.vhd",
        delegation_key=delegation_key(now + timedelta(hours=9)),
        expires_at=expires,
        now=now,
    )
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.path == "/evidence-vhd/vm1/os%20disk.vhd"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["sp"] == "r"  # read, nothing else
    assert query["spr"] == "https"
    assert query["sr"] == "b"  # one blob
    assert query["se"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert query["skoid"] and query["sktid"] and query["sig"]  # signed by a user delegation key
    assert "sk" not in query  # no account key name anywhere
    with pytest.raises(ServiceError, match="outlive"):
        user_delegation_sas_url(
            account_url="https://soc.blob.core.windows.net",
            account_name="soc",
            container="c",
            blob="b",
            delegation_key=delegation_key(now + timedelta(hours=1)),
            expires_at=expires,
            now=now,
        )


def test_account_key_sas_is_refused_outside_a_local_azurite(api, demo, sealed, settings):  # noqa: F811
    Evidence.objects.filter(pk=sealed).update(
        format_details={"native_blob": {"account_url": "http://soc.example.org", "container": "c", "blob": "b"}}
    )
    refused = issue(api, sealed, demo.custodian, kind="azure_sas")
    assert refused.status_code == 400 and refused.json()["error"] == "sas_unavailable"  # not HTTPS
    settings.CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY = True
    settings.CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING = (
        "DefaultEndpointsProtocol=https;AccountName=soc;AccountKey=a2V5;BlobEndpoint=https://soc.example.org/;"
    )
    refused = issue(api, sealed, demo.custodian, kind="azure_sas")
    assert refused.status_code == 400 and refused.json()["error"] == "sas_account_key_refused"
    assert not DownloadLink.objects.exists()


# --- against a real Azurite ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite():
    try:
        with azurite_server() as server:
            yield server
    except ServerUnavailable as reason:
        pytest.skip(f"Azurite unavailable: {reason}")


@pytest.fixture
def native(azurite, settings, sealed):  # noqa: F811
    """The sealed evidence gets a native blob in Azurite (as a VM disk capture would), and another blob beside it."""
    container = f"vhd-{uuid.uuid4().hex[:10]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container)
    service.get_blob_client(container, "vm1/osdisk.vhd").upload_blob(CONTENT)
    service.get_blob_client(container, "vm1/datadisk.vhd").upload_blob(b"another disk")
    Evidence.objects.filter(pk=sealed).update(
        format_details={
            "native_blob": {"account_url": azurite.account_url, "container": container, "blob": "vm1/osdisk.vhd"}
        }
    )
    settings.CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY = True
    settings.CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING = azurite.connection_string
    return sealed


def _status(call) -> int:
    with pytest.raises(HttpResponseError) as refused:
        call()
    return refused.value.status_code


def test_sas_link_reads_its_blob_and_nothing_else(api, demo, native, client):
    response = issue(api, native, demo.custodian, kind="azure_sas", expires_in=600)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "azure_sas" and body["state"] == "active"
    url = body["url"]
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query["sp"] == "r" and query["sr"] == "b"

    blob = BlobClient.from_blob_url(url)
    assert blob.download_blob().readall() == CONTENT
    assert _status(lambda: blob.upload_blob(b"altered", overwrite=True)) == 403  # read-only
    assert _status(lambda: blob.delete_blob()) == 403
    other = BlobClient.from_blob_url(url.replace("osdisk.vhd", "datadisk.vhd"))
    assert _status(lambda: other.download_blob().readall()) == 403  # another blob
    assert blob.download_blob().readall() == CONTENT  # unchanged

    link = DownloadLink.objects.get(pk=body["id"])
    assert link.blob_url == url.split("?")[0]
    assert link.token_hash == hashlib.sha256(url.split("?", 1)[1].encode()).hexdigest()
    assert query["sig"] not in str(list(DownloadLink.objects.values()))
    revoked = api.post(f"/api/links/{body['id']}/revoke").json()
    assert "revoke-delegation-keys" in revoked["note"]


def test_sas_link_expires(api, demo, native):
    from evidence.services.links import link_issue

    evidence = Evidence.objects.get(pk=native)
    # Issued 58 s in the past for 60 s: two seconds left.
    issued = link_issue(
        evidence=evidence,
        actor=demo.custodian,
        recipient="prosecutor",
        reason="expiry test",
        expires_in=60,
        kind="azure_sas",
        now=timezone.now() - timedelta(seconds=58),
    )
    blob = BlobClient.from_blob_url(issued.url)
    assert blob.download_blob().readall() == CONTENT
    time.sleep(3.5)
    assert _status(lambda: blob.download_blob().readall()) == 403


def test_sas_waiting_for_approval_is_made_at_approval_for_the_approver(api, demo, native, second_custodian):  # noqa: F811
    body = issue(
        api, native, demo.custodian, kind="azure_sas", recipient={"name": "Counsel", "email": "c@example.org"}
    ).json()
    assert body["state"] == "pending" and body["url"] is None
    api.as_user(second_custodian)
    approved = api.post(f"/api/links/{body['id']}/approve").json()
    assert approved["state"] == "active"
    assert BlobClient.from_blob_url(approved["url"]).download_blob().readall() == CONTENT


def test_a_sas_link_is_not_a_local_download(api, demo, native, client):
    body = issue(api, native, demo.custodian, kind="azure_sas").json()
    lookup = DownloadLink.objects.get(pk=body["id"]).lookup
    assert client.get(f"/l/{lookup}.{'x' * 43}").status_code == 403
