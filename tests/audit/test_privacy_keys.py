"""The privacy model's key from the Azure Key Vault (issue #19 item 3), through the real azure-keyvault-secrets
client against the in-memory fake of the vault's REST API that the key store's tests use."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from azure.keyvault.secrets import SecretClient
from django.core.exceptions import ImproperlyConfigured

from audit.privacy import DerivedKeys, PrivacyPolicy, Replacer, Tagged, re_identify
from audit.privacy_store import AzureKeyVaultPrivacyKeys
from tests.evidence.fake_keyvault import FakeKeyVaultTransport, StaticTokenCredential


@pytest.fixture
def vault() -> FakeKeyVaultTransport:
    return FakeKeyVaultTransport(vault_url=f"https://custodia-fake-{uuid.uuid4().hex[:10]}.vault.azure.net")


def put_secret(vault: FakeKeyVaultTransport, name: str, value: str) -> None:
    client = SecretClient(vault_url=vault.vault_url, credential=StaticTokenCredential(), transport=vault)
    client.set_secret(name, value)


def keys_of(vault: FakeKeyVaultTransport, name: str = "custodia-privacy-key") -> AzureKeyVaultPrivacyKeys:
    return AzureKeyVaultPrivacyKeys(
        vault_url=vault.vault_url,
        secret_name=name,
        system_id="custodia-test",
        credential=StaticTokenCredential(),
        transport=vault,
    )


def test_the_key_comes_from_the_vault_and_re_identifies(vault):
    raw = os.urandom(32)
    put_secret(vault, "custodia-privacy-key", base64.b64encode(raw).decode())
    keys = keys_of(vault)
    assert keys.master_key() == raw
    replacer = Replacer(policy=PrivacyPolicy({"user": "ER"}), keys=DerivedKeys(keys), lookup=None)
    replaced = replacer.tagged(Tagged("user", "harm"))
    assert "harm" not in replaced
    assert re_identify(replaced, transformation="ER", keys=keys_of(vault)) == "harm"
    assert base64.b64encode(raw).decode() not in repr(keys)


def test_a_missing_or_malformed_vault_key_is_a_configuration_error(vault):
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        keys_of(vault, "no-such-secret")
    put_secret(vault, "short", base64.b64encode(b"too short").decode())
    with pytest.raises(ImproperlyConfigured, match="not base64 of 32 bytes"):
        keys_of(vault, "short")
