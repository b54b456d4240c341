"""The key store: wraps per-evidence data keys and escrows secrets, in another security domain than the
evidence itself.

A data key (32 random bytes, AES-256) is never stored beside the data, never in the database, never in
a log or an error message: the database holds only the *wrapped* key and the name of the wrapping key.
Escrowed secrets (BitLocker passwords and recovery keys, BEK files, LUKS passphrases, document
passwords) live in the key store under a reference; the database keeps the reference, a name and tags.

The key store also holds the organisation's audit signing key (a key of its own, never the one that
wraps data keys): ``sign`` signs the audit trail's checkpoints (``evidence.checkpoints``) and
``signing_public_key`` is what anyone checks them with.

Implementations: ``evidence.keystore.local.LocalKeyStore`` (embedded default) and
``evidence.keystore.azure.AzureKeyVaultStore``; the one in use is named by ``CUSTODIA_KEY_STORE``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string


class KeyStoreError(Exception):
    """A key store operation failed. Messages never contain key material or secret values."""


@dataclass(frozen=True)
class WrappedKey:
    key_id: str  # which wrapping key (and version) was used, e.g. "local:master-1" or a Key Vault key id
    algorithm: str  # e.g. "A256KW" (local) or "RSA-OAEP-256" (Key Vault)
    wrapped: bytes


@dataclass(frozen=True)
class EscrowedSecret:
    reference: str  # opaque name in the key store (a Key Vault secret name, a local entry id)
    tags: dict[str, str] = field(default_factory=dict)


class KeyStore(abc.ABC):
    @abc.abstractmethod
    def wrap_key(self, data_key: bytes) -> WrappedKey:
        """Wrap a data key with the store's key-encryption key."""

    @abc.abstractmethod
    def unwrap_key(self, wrapped: WrappedKey) -> bytes:
        """Return the data key. Raises KeyStoreError if the wrapping key is unknown or the blob was altered."""

    @abc.abstractmethod
    def put_secret(self, value: bytes, *, tags: dict[str, str]) -> EscrowedSecret:
        """Escrow a secret value under a new reference, with tags (evidence id, kind, volume, machine …)."""

    @abc.abstractmethod
    def get_secret(self, reference: str) -> bytes:
        """The escrowed value. Raises KeyStoreError if there is none."""

    # The audit signing key: "ed25519" (RFC 8032) or "ecdsa-p256-sha256" (raw r||s over SHA-256 of the data).
    signing_algorithm: str = ""

    def signing_public_key(self) -> bytes:
        """The audit signing key's public half: Ed25519 raw 32 bytes, P-256 DER SubjectPublicKeyInfo."""
        raise KeyStoreError(f"{type(self).__name__} holds no audit signing key")

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the audit signing key (the private half never leaves the key store)."""
        raise KeyStoreError(f"{type(self).__name__} holds no audit signing key")

    def check_ready(self) -> None:
        """Raise KeyStoreError when the store cannot be used (no master key, vault unreachable)."""
        return None


def get_keystore() -> KeyStore:
    global _keystore
    if _keystore is None:
        factory = import_string(settings.CUSTODIA_KEY_STORE)
        _keystore = factory(**settings.CUSTODIA_KEY_STORE_OPTIONS)
    return _keystore


def reset_keystore_cache() -> None:
    global _keystore
    _keystore = None


_keystore: KeyStore | None = None
