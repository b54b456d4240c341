"""The one way encrypted volumes are unlocked (search/extraction/unlock.py), shared by the walker and the
data service: secret kinds normalised alike, a wrong secret told from a right one, nothing left behind."""

from __future__ import annotations

import io
import lzma
import os
import stat

import pytest
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import luks, source, unlock
from tests.corpus import require_corpus


def test_a_luks_passphrase_is_a_password_for_every_luks_layer():
    secrets = unlock.normalise_secrets([{"kind": "passphrase", "value": "k"}, {"kind": "pin", "value": "1"}])
    assert [(secret.credential, secret.value) for secret in secrets] == [("password", "k")]
    for type_indicator in (dfvfs_definitions.TYPE_INDICATOR_LUKSDE, luks.TYPE_INDICATOR_LUKS1):
        assert secrets[0].credential in unlock.CREDENTIALS_BY_ENCRYPTION[type_indicator]


def test_a_startup_key_is_written_to_a_private_file_that_forget_deletes():
    credentials = unlock.KeyChainCredentials()
    (secret,) = unlock.normalise_secrets([{"kind": "startup_key", "value": b"\x01bek"}])
    credential = credentials.credential_of(secret)
    assert credential.name == "startup_key"
    assert stat.S_IMODE(os.stat(credential.value).st_mode) == 0o600
    with open(credential.value, "rb") as key_file:
        assert key_file.read() == b"\x01bek"
    credentials.forget()
    assert not os.path.exists(credential.value)
    assert secret.value == b"\x01bek"  # the secret itself is never replaced by its file's path


@pytest.mark.corpus
def test_the_passphrase_that_unlocks_luks_is_found_set_for_the_open_and_forgotten():
    data = lzma.decompress(require_corpus("files/cryptsetup/compatimage.img.xz").read_bytes())
    context = source.new_resolver_context(file_object=io.BytesIO(data), file_name="compatimage.img")
    spec = source.root_path_spec(file_name="compatimage.img")
    secrets = unlock.normalise_secrets({"passphrase": ["wrong", "compatkey"]})
    rejected = []
    with unlock.KeyChainCredentials() as credentials:
        credential = credentials.first_unlocking(
            type_indicator=luks.TYPE_INDICATOR_LUKS1,
            spec=spec,
            context=context,
            secrets=secrets,
            rejected=lambda secret, error: rejected.append(secret),
        )
        assert credential is not None and credential.value == "compatkey" and not rejected
        decrypted_spec = path_spec_factory.Factory.NewPathSpec(luks.TYPE_INDICATOR_LUKS1, parent=spec)
        credentials.remember(encrypted_spec=decrypted_spec, credential=credential)
        decrypted = dfvfs_resolver.Resolver.OpenFileObject(decrypted_spec, resolver_context=context)
        assert decrypted.get_size() == 9711616
        assert "compatkey" not in source.serialise_path_spec(decrypted_spec)  # no secret in a data path
    assert not dfvfs_resolver.Resolver.key_chain.GetCredentials(decrypted_spec)
