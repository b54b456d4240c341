"""The audit trail's checkpoints, kept by the evidence app: signed by the key store, archived in the
write-once evidence store (``audit.checkpoints`` defines the two interfaces; settings name these
classes in ``CUSTODIA_AUDIT_SIGNER`` and ``CUSTODIA_AUDIT_ARCHIVE``).

The archive writes each checkpoint once under ``audit/checkpoints/<n as 12 digits>.json``, under a
retention of ``CUSTODIA_AUDIT_CHECKPOINT_RETENTION_DAYS`` that the store enforces (a locked immutability
policy on Azure), so that a database administrator can neither remove nor rewrite one.
"""

from __future__ import annotations

from datetime import timedelta

from audit.checkpoints import (
    CheckpointArchive,
    CheckpointError,
    CheckpointExists,
    CheckpointMissing,
    CheckpointSigner,
    number_of,
)
from evidence.keystore.base import KeyStore, KeyStoreError, get_keystore
from evidence.storage.base import EvidenceStore, ObjectExists, ObjectMissing, StoreError, get_store
from evidence.storage.local import today_utc

DEFAULT_PREFIX = "audit/checkpoints/"


class KeyStoreCheckpointSigner(CheckpointSigner):
    """Signs with the key store's audit signing key (Ed25519 locally, EC P-256 in Azure Key Vault)."""

    def __init__(self, *, keystore: KeyStore | None = None) -> None:
        self._keystore = keystore or get_keystore()
        self.algorithm = self._keystore.signing_algorithm

    def public_key_bytes(self) -> bytes:
        try:
            return self._keystore.signing_public_key()
        except KeyStoreError as error:
            raise CheckpointError(str(error)) from None

    def sign(self, data: bytes) -> bytes:
        try:
            return self._keystore.sign(data)
        except KeyStoreError as error:
            raise CheckpointError(str(error)) from None


class EvidenceStoreCheckpointArchive(CheckpointArchive):
    """Checkpoint documents as write-once objects of the evidence store, under retention."""

    def __init__(
        self, *, prefix: str = DEFAULT_PREFIX, retention_days: int = 3650, store: EvidenceStore | None = None
    ) -> None:
        if not prefix.endswith("/"):
            raise CheckpointError("the checkpoint prefix must end with '/'")
        self.prefix = prefix
        self.retention_days = retention_days
        self._store = store or get_store()

    def _key(self, name: str) -> str:
        if number_of(name) is None:
            raise CheckpointError(f"{name!r} is not a checkpoint name")
        return self.prefix + name

    def _protect(self) -> None:
        """Retention on the whole prefix (objects written later included), extended to a full term
        from today once a day per process: a store refuses to shorten it, and deletes nothing under it."""
        until = today_utc() + timedelta(days=self.retention_days)
        marker = (id(self._store), self.prefix)
        if _protected_until.get(marker) == until:
            return
        self._store.set_retention(self.prefix, until=until, legal_hold=False)
        _protected_until[marker] = until

    def put(self, name: str, data: bytes) -> None:
        key = self._key(name)
        try:
            self._protect()
            self._store.put(key, bytes(data))
        except ObjectExists:
            raise CheckpointExists(f"checkpoint {name} is already written") from None
        except StoreError as error:
            raise CheckpointError(f"cannot store checkpoint {name}: {error}") from None

    def get(self, name: str) -> bytes:
        try:
            return self._store.read(self._key(name))
        except ObjectMissing:
            raise CheckpointMissing(f"no checkpoint {name} in the archive") from None
        except StoreError as error:
            raise CheckpointError(f"cannot read checkpoint {name}: {error}") from None

    def list(self) -> list[str]:
        try:
            return [key[len(self.prefix) :] for key in self._store.list(self.prefix)]
        except StoreError as error:
            raise CheckpointError(f"cannot list the checkpoints: {error}") from None


# (store, prefix) -> the retention date last set in this process
_protected_until: dict[tuple[int, str], object] = {}
