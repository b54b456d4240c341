"""Key stores: the local keystore file, and Azure Key Vault through the real SDK against a fake vault."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import stat
import threading
import uuid
from urllib.parse import urlsplit

import pytest

from evidence.keystore.azure import AzureKeyVaultStore
from evidence.keystore.base import KeyStoreError, WrappedKey
from evidence.keystore.local import LocalKeyStore, generate_master_key, master_key_id
from tests.evidence.fake_keyvault import FakeKeyVaultTransport, StaticTokenCredential

SECRET_VALUE = b"123456-654321-111111-222222-333333-444444-555555-666666"  # a BitLocker recovery password
TAGS = {"evidence": "0f6c1d2e-8a43-4c55-9b1e-3f2a7d9e0c11", "kind": "bitlocker-recovery", "volume": "C:"}


@pytest.fixture
def master_key() -> str:
    return generate_master_key()


@pytest.fixture
def local_store(tmp_path, master_key) -> LocalKeyStore:
    return LocalKeyStore(path=tmp_path / "keys" / "keystore.json", master_key=master_key)


def test_generated_master_keys_are_base64_of_32_random_bytes():
    first, second = generate_master_key(), generate_master_key()
    assert len(base64.b64decode(first)) == 32
    assert first != second


def test_local_wrap_unwrap_roundtrip(local_store, master_key):
    data_key = os.urandom(32)
    wrapped = local_store.wrap_key(data_key)

    assert wrapped.algorithm == "A256KW"
    assert wrapped.key_id == master_key_id(base64.b64decode(master_key))
    assert wrapped.key_id.startswith("local:") and len(wrapped.key_id) == len("local:") + 8
    assert data_key not in wrapped.wrapped and len(wrapped.wrapped) == 40
    assert local_store.unwrap_key(wrapped) == data_key


def test_local_wrong_master_key_is_refused(local_store, tmp_path):
    wrapped = local_store.wrap_key(os.urandom(32))
    other = LocalKeyStore(path=tmp_path / "other.json", master_key=generate_master_key())
    with pytest.raises(KeyStoreError, match="wrong master key"):
        other.unwrap_key(wrapped)
    # Even when someone relabels the blob with the other store's key id, unwrapping fails.
    relabelled = dataclasses.replace(wrapped, key_id=other.key_id)
    with pytest.raises(KeyStoreError, match="integrity"):
        other.unwrap_key(relabelled)


def test_local_tampered_wrapped_key_is_refused(local_store):
    wrapped = local_store.wrap_key(os.urandom(32))
    flipped = bytearray(wrapped.wrapped)
    flipped[5] ^= 0x01
    with pytest.raises(KeyStoreError, match="altered"):
        local_store.unwrap_key(dataclasses.replace(wrapped, wrapped=bytes(flipped)))
    with pytest.raises(KeyStoreError):
        local_store.unwrap_key(dataclasses.replace(wrapped, wrapped=wrapped.wrapped[:-8]))
    with pytest.raises(KeyStoreError, match="A256KW"):
        local_store.unwrap_key(dataclasses.replace(wrapped, algorithm="RSA-OAEP-256"))


def test_local_secret_roundtrip_with_tags(local_store):
    escrowed = local_store.put_secret(SECRET_VALUE, tags=TAGS)
    assert escrowed.tags == TAGS
    assert escrowed.reference.startswith("local-")
    assert local_store.get_secret(escrowed.reference) == SECRET_VALUE
    assert local_store.get_tags(escrowed.reference) == TAGS

    second = local_store.put_secret(b"\x00binary BEK file\xff", tags={})
    assert second.reference != escrowed.reference
    assert local_store.get_secret(second.reference) == b"\x00binary BEK file\xff"

    reopened = LocalKeyStore(path=local_store.path, master_key=local_store._master_key)
    assert reopened.get_secret(escrowed.reference) == SECRET_VALUE


def test_local_keystore_file_holds_no_clear_value_and_is_private(local_store):
    local_store.put_secret(SECRET_VALUE, tags=TAGS)
    raw = local_store.path.read_bytes()
    assert SECRET_VALUE not in raw
    assert base64.b64encode(SECRET_VALUE) not in raw
    assert b"bitlocker-recovery" in raw  # tags are in clear, by design
    assert stat.S_IMODE(os.stat(local_store.path).st_mode) == 0o600
    assert [name for name in os.listdir(local_store.path.parent) if name.endswith(".tmp")] == []


def test_local_tampered_secret_or_tags_are_refused(local_store):
    escrowed = local_store.put_secret(SECRET_VALUE, tags=TAGS)
    document = json.loads(local_store.path.read_text())
    document["secrets"][escrowed.reference]["tags"]["volume"] = "D:"
    local_store.path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="altered") as refused:
        local_store.get_secret(escrowed.reference)
    assert SECRET_VALUE.decode() not in str(refused.value)

    document["secrets"][escrowed.reference]["tags"]["volume"] = "C:"
    ciphertext = bytearray(base64.b64decode(document["secrets"][escrowed.reference]["ciphertext"]))
    ciphertext[0] ^= 0x80
    document["secrets"][escrowed.reference]["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()
    local_store.path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="altered"):
        local_store.get_secret(escrowed.reference)


def test_local_unknown_reference_and_wrong_master_key_for_the_file(local_store, tmp_path):
    with pytest.raises(KeyStoreError, match="no escrowed secret"):
        local_store.get_secret("local-does-not-exist")
    escrowed = local_store.put_secret(SECRET_VALUE, tags=TAGS)
    intruder = LocalKeyStore(path=local_store.path, master_key=generate_master_key())
    with pytest.raises(KeyStoreError, match="wrong master key") as refused:
        intruder.get_secret(escrowed.reference)
    with pytest.raises(KeyStoreError, match="wrong master key"):
        intruder.put_secret(b"x", tags={})
    assert SECRET_VALUE.decode() not in str(refused.value)


def test_local_missing_master_key(tmp_path):
    store = LocalKeyStore(path=tmp_path / "keystore.json")
    for call in (
        lambda: store.wrap_key(os.urandom(32)),
        lambda: store.unwrap_key(WrappedKey(key_id="local:00000000", algorithm="A256KW", wrapped=b"0" * 40)),
        lambda: store.put_secret(b"x", tags={}),
        lambda: store.get_secret("local-x"),
        store.check_ready,
    ):
        with pytest.raises(KeyStoreError, match="CUSTODIA_MASTER_KEY"):
            call()


@pytest.mark.parametrize("bad_key", ["not base64!", base64.b64encode(b"too short").decode(), ""])
def test_local_malformed_master_key_is_refused_without_echo(tmp_path, bad_key):
    with pytest.raises(KeyStoreError, match="master key") as refused:
        LocalKeyStore(path=tmp_path / "keystore.json", master_key=bad_key)
    if bad_key:
        assert bad_key not in str(refused.value)


def test_local_master_key_from_file(tmp_path, master_key):
    key_file = tmp_path / "master.key"
    key_file.write_text(master_key + "\n")
    from_file = LocalKeyStore(path=tmp_path / "keystore.json", master_key_file=key_file)
    from_value = LocalKeyStore(path=tmp_path / "keystore.json", master_key=master_key)
    assert from_file.key_id == from_value.key_id
    assert from_value.unwrap_key(from_file.wrap_key(b"k" * 32)) == b"k" * 32
    with pytest.raises(KeyStoreError, match="cannot read the master key file"):
        LocalKeyStore(path=tmp_path / "keystore.json", master_key_file=tmp_path / "absent.key")


def test_local_repr_and_errors_never_contain_the_master_key(local_store, master_key):
    assert master_key not in repr(local_store)
    data_key = os.urandom(32)
    wrapped = local_store.wrap_key(data_key)
    flipped = dataclasses.replace(wrapped, wrapped=bytes(40))
    with pytest.raises(KeyStoreError) as refused:
        local_store.unwrap_key(flipped)
    message = str(refused.value)
    for forbidden in (master_key, data_key.hex(), base64.b64encode(data_key).decode()):
        assert forbidden not in message


def test_local_concurrent_puts_lose_no_entry(local_store):
    references: list[str] = []

    def escrow(number: int) -> None:
        references.append(local_store.put_secret(f"secret {number}".encode(), tags={"n": str(number)}).reference)

    threads = [threading.Thread(target=escrow, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads(local_store.path.read_text())["secrets"]) == 16
    for reference in references:
        assert local_store.get_secret(reference).startswith(b"secret ")


def test_local_check_ready(local_store):
    local_store.check_ready()


def test_local_check_ready_refuses_a_keystore_inside_the_evidence_folder(tmp_path, settings, master_key):
    settings.CUSTODIA_EVIDENCE_STORE_OPTIONS = {"root": str(tmp_path / "evidence")}
    store = LocalKeyStore(path=tmp_path / "evidence" / "keys.json", master_key=master_key)
    with pytest.raises(KeyStoreError, match="inside the evidence folder"):
        store.check_ready()


# --- Azure Key Vault, through the real SDK against FakeKeyVaultTransport -------------------------


@pytest.fixture
def vault():
    # A new vault host per test: the SDK caches authentication challenges per host, and each test
    # should see the full challenge exchange.
    vault_url = f"https://custodia-fake-{uuid.uuid4().hex[:10]}.vault.azure.net"
    transport = FakeKeyVaultTransport(vault_url=vault_url)
    credential = StaticTokenCredential()
    store = AzureKeyVaultStore(vault_url=vault_url, key_name="custodia-kek", credential=credential, transport=transport)
    return store, transport, credential


def test_key_vault_answers_the_authentication_challenge(vault):
    store, transport, credential = vault
    store.check_ready()
    method, path, authorised = transport.requests[0]
    assert (method, path, authorised) == ("GET", "keys/custodia-kek", False)  # elicits the 401 challenge
    assert transport.requests[1][2] is True
    assert ("https://vault.azure.net/.default",) in credential.requested_scopes


def test_key_vault_wrap_unwrap_roundtrip_with_versioned_key_id(vault):
    store, transport, _ = vault
    data_key = os.urandom(32)
    wrapped = store.wrap_key(data_key)

    version = transport.keys["custodia-kek"][-1].version
    assert wrapped.key_id == f"{transport.vault_url}/keys/custodia-kek/{version}"
    assert wrapped.algorithm == "RSA-OAEP-256"
    assert len(wrapped.wrapped) == 256 and data_key not in wrapped.wrapped
    assert store.unwrap_key(wrapped) == data_key
    assert transport.unwrap_calls == 1  # the private key never left the (fake) vault


def test_key_vault_unwraps_with_the_version_that_wrapped_after_rotation(vault):
    store, transport, _ = vault
    data_key = os.urandom(32)
    wrapped_before = store.wrap_key(data_key)
    transport.rotate_key("custodia-kek")
    fresh_store = AzureKeyVaultStore(
        vault_url=transport.vault_url, key_name="custodia-kek", credential=StaticTokenCredential(), transport=transport
    )
    wrapped_after = fresh_store.wrap_key(data_key)
    assert wrapped_after.key_id != wrapped_before.key_id
    assert fresh_store.unwrap_key(wrapped_before) == data_key
    assert fresh_store.unwrap_key(wrapped_after) == data_key


def test_key_vault_tampered_wrapped_key_is_refused(vault):
    store, _, _ = vault
    data_key = os.urandom(32)
    wrapped = store.wrap_key(data_key)
    flipped = bytearray(wrapped.wrapped)
    flipped[17] ^= 0x01
    with pytest.raises(KeyStoreError, match="refused to unwrap") as refused:
        store.unwrap_key(dataclasses.replace(wrapped, wrapped=bytes(flipped)))
    assert data_key.hex() not in str(refused.value)
    with pytest.raises(KeyStoreError, match="RSA-OAEP-256"):
        store.unwrap_key(dataclasses.replace(wrapped, algorithm="A256KW"))


def test_key_vault_refuses_a_key_id_of_another_host_before_sending_a_token(vault):
    store, transport, _ = vault
    wrapped = store.wrap_key(os.urandom(32))
    foreign = dataclasses.replace(
        wrapped, key_id=wrapped.key_id.replace(urlsplit(transport.vault_url).netloc, "attacker.vault.azure.net")
    )
    sent_before = len(transport.requests)
    with pytest.raises(KeyStoreError, match="another vault"):
        store.unwrap_key(foreign)
    assert len(transport.requests) == sent_before
    with pytest.raises(KeyStoreError, match="no version"):
        store.unwrap_key(dataclasses.replace(wrapped, key_id=f"{transport.vault_url}/keys/custodia-kek"))


def test_key_vault_unknown_key_is_a_clear_error(vault):
    _, transport, credential = vault
    store = AzureKeyVaultStore(
        vault_url=transport.vault_url, key_name="no-such-key", credential=credential, transport=transport
    )
    with pytest.raises(KeyStoreError, match="no-such-key"):
        store.check_ready()


def test_key_vault_secret_roundtrip_with_tags(vault):
    store, transport, _ = vault
    escrowed = store.put_secret(SECRET_VALUE, tags=TAGS)
    assert re.fullmatch(r"custodia-[0-9a-f]{32}", escrowed.reference)
    assert escrowed.tags == TAGS
    stored = transport.secrets[escrowed.reference][-1]
    assert stored.tags == TAGS
    assert stored.content_type == "application/octet-stream; base64"
    assert stored.value == base64.b64encode(SECRET_VALUE).decode()
    assert store.get_secret(escrowed.reference) == SECRET_VALUE

    bek = os.urandom(124)  # a BitLocker startup key file is binary
    assert store.get_secret(store.put_secret(bek, tags={"kind": "bek"}).reference) == bek


def test_key_vault_unknown_or_malformed_reference(vault):
    store, _, _ = vault
    with pytest.raises(KeyStoreError, match="no escrowed secret"):
        store.get_secret("custodia-" + "0" * 32)
    with pytest.raises(KeyStoreError, match="no escrowed secret"):
        store.get_secret("../keys/custodia-kek")


def test_key_vault_errors_never_contain_the_secret(vault):
    store, transport, _ = vault
    escrowed = store.put_secret(SECRET_VALUE, tags=TAGS)
    transport.secrets[escrowed.reference][-1].value = "not base64 " + SECRET_VALUE.decode()
    with pytest.raises(KeyStoreError) as refused:
        store.get_secret(escrowed.reference)
    assert SECRET_VALUE.decode() not in str(refused.value)
    assert "expected encoding" in str(refused.value)
