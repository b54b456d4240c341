"""The evidence store: write-once object storage for sealed evidence.

Keys are ``/``-separated and derive from the evidence UUID alone (``evidence/<uuid>/chunk/00000000``),
never from a case or suspect name. An object is written once and never overwritten; it can be deleted
only when neither its retention date nor a legal hold protects it, and the store enforces that itself.

Implementations: ``evidence.storage.local.LocalWormStore`` (embedded default) and
``evidence.storage.azure.AzureBlobStore``; the one in use is named by ``CUSTODIA_EVIDENCE_STORE``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator
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

    @contextlib.contextmanager
    def durable_batch(self, *, prefix: str) -> Iterator[DurableBatch]:
        """Defer durability of the puts under ``prefix`` (from any thread) while the batch is open.

        Outside a batch every put is durable when it returns (contents and name survive a power loss).
        Inside one, a put under ``prefix`` may return before its object is on stable storage; the caller
        makes the objects it will reference durable with one ``batch.sync(keys)`` barrier, before writing
        anything that names them (the index, the manifest, a database row). Until that barrier a power loss
        may leave such an object missing, empty or torn under its name: the caller must recognise it as
        damaged (sealed chunks are authenticated) and write the bytes again under another key, since the
        store is write-once. Leaving the block normally syncs what was put and not yet synced; leaving
        it on an exception syncs nothing. Stores whose puts are durable anyway (Azure) keep this default:
        every put stays durable and ``sync`` does nothing."""
        yield DurableBatch()

    def check_ready(self) -> None:
        """Called at start-up and before accepting evidence: raise StoreError when the store cannot
        guarantee write-once behaviour (for example an Azure container without a locked immutability policy)."""
        return None


class DurableBatch:
    """The barrier of ``EvidenceStore.durable_batch``: here (stores that are always durable) a no-op."""

    def sync(self, keys: Iterable[str] = ()) -> None:
        """Make durable every object put unsynced in this batch and every object named in ``keys`` (which
        may have been written unsynced by an earlier process that was killed before its barrier)."""
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
