"""Durable homes of the privacy model's look-up table and key (docs/privacy.md, "Keys").

- ``DatabaseLookupTable``: the MR look-up table as a table of its own (``audit.PrivacyLookupEntry``). An
  entry is written in the transaction of the audit row it belongs to; its value is encrypted under the
  system-wide key, which is never in the database.
- ``AzureKeyVaultPrivacyKeys``: the system-wide key as a secret of an Azure Key Vault (managed identity, no
  secret in settings), behind the same ``PrivacyKeys`` interface as ``SettingsPrivacyKeys`` (a key file
  under ``var/keys/`` that ``make run`` generates). Chosen by ``CUSTODIA_PRIVACY_KEYS``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from audit.models import PrivacyLookupEntry
from audit.privacy import PrivacyKeys, PrivacyLookupTable


class DatabaseLookupTable(PrivacyLookupTable):
    """The look-up table in the database, beside the trail but apart from the key."""

    def put(self, *, message_id: str, number: int, ciphertext: str) -> None:
        try:
            with transaction.atomic():
                PrivacyLookupEntry.objects.create(message_id=message_id, number=number, ciphertext=ciphertext)
        except IntegrityError:
            # A message's number is written once; the same (message, number) again is the same value.
            pass

    def get(self, *, message_id: str, number: int) -> str:
        entry = PrivacyLookupEntry.objects.filter(message_id=message_id, number=number).values("ciphertext").first()
        if entry is None:
            raise KeyError((message_id, number))
        return entry["ciphertext"]


class AzureKeyVaultPrivacyKeys(PrivacyKeys):
    """The system-wide key is the secret ``secret_name`` of the vault at ``vault_url`` (base64 of 32 bytes),
    read once per process. ``CUSTODIA_PRIVACY_KEYS=audit.privacy_store.AzureKeyVaultPrivacyKeys``."""

    def __init__(
        self,
        *,
        vault_url: str,
        secret_name: str = "custodia-privacy-key",  # noqa: S107 - the name of the vault secret, not a secret
        system_id: str = "custodia",
        credential: Any = None,
        transport: Any = None,
        key: str | None = None,  # accepted and ignored: the settings' local option, never used here
    ) -> None:
        if not vault_url or not secret_name:
            raise ImproperlyConfigured("AzureKeyVaultPrivacyKeys needs vault_url and secret_name")
        if not system_id:
            raise ImproperlyConfigured("CUSTODIA_PRIVACY_SYSTEM_ID must not be empty")
        from azure.core.exceptions import AzureError
        from azure.keyvault.secrets import SecretClient

        if credential is None:
            # Managed identity, workload identity or a developer's `az login`: no secret in settings.
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        options: dict[str, Any] = {"transport": transport} if transport is not None else {}
        client = SecretClient(vault_url=vault_url.rstrip("/"), credential=credential, **options)
        try:
            value = client.get_secret(secret_name).value or ""
        except AzureError as error:
            # The error's class only: its text may carry the vault's answer, never a key, but keep it short.
            raise ImproperlyConfigured(
                f"the privacy key {secret_name!r} cannot be read from the key vault ({error.__class__.__name__})"
            ) from None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ImproperlyConfigured(f"the key vault secret {secret_name!r} is not base64 of 32 bytes")
        self._key = raw
        self._system_id = system_id.encode()
        self._vault_url = vault_url

    def master_key(self) -> bytes:
        return self._key

    def system_identifier(self) -> bytes:
        return self._system_id

    def __repr__(self) -> str:  # never the key
        return f"AzureKeyVaultPrivacyKeys(vault_url={self._vault_url!r}, system_id={self._system_id.decode()!r})"


__all__ = ["AzureKeyVaultPrivacyKeys", "DatabaseLookupTable"]
