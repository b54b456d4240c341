"""The evidence store: write-once object storage for sealed evidence.

Keys are ``/``-separated and derive from the evidence UUID alone (``evidence/<uuid>/chunk/00000000``),
never from a case or suspect name. An object is written once and never overwritten; it can be deleted
only when neither its retention date nor a legal hold protects it, and the store enforces that itself.

Implementations: ``evidence.storage.local.LocalWormStore`` (embedded default) and
``evidence.storage.azure.AzureBlobStore``; the one in use is named by ``CUSTODIA_EVIDENCE_STORE``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from datetime import date
from typing import BinaryIO

from django.conf import settings
from django.utils.module_loading import import_string


class StoreError(Exception):
    """A store operation failed. Messages never contain key material or evidence content."""


class ObjectExists(StoreError):
    """The key is already written: evidence objects are write-once."""


class ObjectMissing(StoreError):
    """No object under that key."""


class RetentionViolation(StoreError):
    """Deletion (or a change) refused because of a retention date or a legal hold."""


class EvidenceStore(abc.ABC):
    """Write-once object storage. Implementations must be safe to call from several threads."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        """Store ``data`` under ``key`` once. Raises ObjectExists if the key is taken. A failed put
        leaves no object behind (readers never see half an object)."""

    @abc.abstractmethod
    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes (all to the end when None) starting at ``offset``. Raises ObjectMissing."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Size of the object in bytes. Raises ObjectMissing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Keys that start with ``prefix``, in lexical order."""

    @abc.abstractmethod
    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        """Protect every object under ``prefix`` (now and written later) until ``until`` and/or while
        ``legal_hold`` is on. Retention can be extended but never shortened."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; RetentionViolation while its retention date lies ahead or a legal hold is on."""

    def check_ready(self) -> None:
        """Called at start-up and before accepting evidence: raise StoreError when the store cannot
        guarantee write-once behaviour (for example an Azure container without a locked immutability policy)."""
        return None


def get_store() -> EvidenceStore:
    """The configured evidence store (one instance per process)."""
    global _store
    if _store is None:
        factory = import_string(settings.CUSTODIA_EVIDENCE_STORE)
        _store = factory(**settings.CUSTODIA_EVIDENCE_STORE_OPTIONS)
    return _store


def reset_store_cache() -> None:
    """For tests that switch settings."""
    global _store
    _store = None


_store: EvidenceStore | None = None
