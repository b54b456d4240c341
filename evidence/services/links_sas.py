"""Azure SAS URLs for evidence that has its own blob in Azure storage (a captured VM disk).

In production a link is a **user-delegation SAS**: signed with a user delegation key that Custodia's
managed identity obtains from Azure AD (Entra ID), read permission only, HTTPS only, one blob, and an
expiry that lies within the delegation key's own validity (at most seven days; a link at most
``CUSTODIA_LINK_MAX_SECONDS``). No storage account key is ever used.

Revocation: Azure cannot revoke one SAS. Revoking a SAS link in Custodia marks it revoked and audits it;
to make the URL stop working before its expiry, revoke the account's user delegation keys
(``az storage account revoke-delegation-keys -n ACCOUNT -g GROUP``), which ends *every* user-delegation SAS
of that account, or remove the identity's data-plane role. The delegation key is requested per link with
the link's expiry as its own, so an un-revoked key never outlives the link it signed.

Development: Azurite has no Entra ID; with ``CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY`` set and
``CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING`` naming a loopback Azurite, an account-key SAS (still read-only,
one blob) is made instead. Any other endpoint is refused.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, UserDelegationKey, generate_blob_sas
from django.conf import settings

from custodia.errors import ServiceError

CLOCK_SKEW = timedelta(minutes=5)


def _blob_url(*, account_url: str, container: str, blob: str) -> str:
    return f"{account_url.rstrip('/')}/{quote(container)}/{quote(blob, safe='/')}"


def _parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def user_delegation_sas_url(
    *,
    account_url: str,
    account_name: str,
    container: str,
    blob: str,
    delegation_key: UserDelegationKey,
    expires_at: datetime,
    now: datetime,
) -> str:
    """A read-only, HTTPS-only SAS URL for one blob, signed by a user delegation key."""
    if delegation_key.signed_expiry is None:
        raise ServiceError(
            "Azure gave a user delegation key without an expiry; no SAS was made.", code="sas_unavailable"
        )
    key_expiry = _parse_time(delegation_key.signed_expiry)
    if expires_at > key_expiry:
        raise ServiceError(
            "The link would outlive the user delegation key that signs it.", code="sas_key_expiry", status_code=500
        )
    sas = generate_blob_sas(
        account_name=account_name,
        container_name=container,
        blob_name=blob,
        user_delegation_key=delegation_key,
        permission=BlobSasPermissions(read=True),
        start=now - CLOCK_SKEW,
        expiry=expires_at,
        protocol="https",
    )
    return f"{_blob_url(account_url=account_url, container=container, blob=blob)}?{sas}"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _development_sas_url(*, container: str, blob: str, expires_at: datetime, now: datetime) -> str:
    service = BlobServiceClient.from_connection_string(settings.CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING)
    if not _is_loopback(service.url):
        raise ServiceError(
            "An account-key SAS is allowed only against a local Azurite in development.",
            code="sas_account_key_refused",
        )
    sas = generate_blob_sas(
        account_name=service.account_name or "",
        container_name=container,
        blob_name=blob,
        account_key=service.credential.account_key,
        permission=BlobSasPermissions(read=True),
        start=now - CLOCK_SKEW,
        expiry=expires_at,
        protocol="https,http",  # Azurite listens on plain HTTP
    )
    return f"{_blob_url(account_url=service.url, container=container, blob=blob)}?{sas}"


def sas_url_for(*, native_blob: dict, expires_at: datetime, now: datetime) -> str:
    """The SAS URL for the evidence's native blob, valid until ``expires_at``."""
    container, blob = native_blob["container"], native_blob["blob"]
    if settings.CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY and settings.CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING:
        return _development_sas_url(container=container, blob=blob, expires_at=expires_at, now=now)
    account_url = native_blob.get("account_url", "")
    if not account_url.startswith("https://"):
        raise ServiceError("The evidence's native blob has no HTTPS account URL.", code="sas_unavailable")
    from azure.core.exceptions import AzureError
    from azure.identity import DefaultAzureCredential

    service = BlobServiceClient(account_url=account_url, credential=DefaultAzureCredential())
    try:
        key = service.get_user_delegation_key(key_start_time=now - CLOCK_SKEW, key_expiry_time=expires_at)
    except AzureError as exc:
        raise ServiceError(
            "Azure refused a user delegation key; no SAS was made.", code="sas_unavailable", status_code=503
        ) from exc
    return user_delegation_sas_url(
        account_url=account_url,
        account_name=service.account_name or "",
        container=container,
        blob=blob,
        delegation_key=key,
        expires_at=expires_at,
        now=now,
    )
