"""A write-once evidence store in an Azure Blob Storage container (azure-storage-blob).

Write-once comes from two places:

- every put is conditional (``If-None-Match: *``), so an existing key is never overwritten (ObjectExists);
- the container must have version-level immutability (WORM) with a *locked* default policy, so that not
  even an account administrator can remove or shorten the protection. ``check_ready`` verifies that and
  every put refuses evidence until it has, unless ``allow_mutable_container`` (development, Azurite).

What the data plane tells us (and what it does not): Get Container Properties returns only two booleans,
``x-ms-immutable-storage-with-versioning-enabled`` and ``x-ms-has-immutability-policy``; whether the
container's policy is *locked* is a management-plane (ARM) property. A blob, however, reports the policy
it carries in ``x-ms-immutability-policy-mode`` (``unlocked``/``locked``) and a new blob version inherits
the container's default policy. So ``check_ready`` writes a tiny readiness probe blob under
``.custodia/readiness/`` and reads its mode; because locking cannot be undone, one probe seen ``locked``
(with an expiry ahead) is proof enough, and later checks reuse it instead of writing another.

Retention and legal hold (``set_retention``) are applied per blob with Set Blob Immutability Policy
(mode ``locked``, only ever extended) and Set Legal Hold, and are also recorded as append-only record
blobs under ``.custodia/retention/`` so that objects written later under the same prefix get the same
protection at upload, and ``delete`` refuses them even where the service cannot enforce it (Azurite).
On this store a retention prefix must end with ``/`` (for example ``evidence/<uuid>/``): each put then
looks up one record folder per path level of its key instead of scanning every record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ImmutabilityPolicy

from evidence.storage.base import EvidenceStore, ObjectExists, ObjectMissing, RetentionViolation, StoreError
from evidence.storage.local import validate_key, validate_prefix

logger = logging.getLogger(__name__)

CONTROL_PREFIX = ".custodia/"
READINESS_PREFIX = CONTROL_PREFIX + "readiness/"
RETENTION_PREFIX = CONTROL_PREFIX + "retention/"
# Separates a prefix from the record's own name; not a key character, so one prefix's records can
# be listed without picking up those of a longer prefix.
_RECORD_SEPARATOR = "@"
_IMMUTABLE_ERROR_CODES = {
    "BlobImmutableDueToPolicy",
    "BlobImmutableDueToLegalHold",
    "ContainerImmutableDueToPolicy",
    "ImmutabilityPolicyLocked",
}
_COPY_POLL_SECONDS = 0.2
_COPY_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class Protection:
    """The retention date and legal hold that apply to a key (the strictest over all its records)."""

    until: date | None = None
    legal_hold: bool = False

    @property
    def active(self) -> bool:
        return self.legal_hold or (self.until is not None and self.until > datetime.now(UTC).date())

    def describe(self) -> str:
        reasons = []
        if self.legal_hold:
            reasons.append("legal hold")
        if self.until is not None and self.until > datetime.now(UTC).date():
            reasons.append(f"retention until {self.until.isoformat()}")
        return " and ".join(reasons)


def _expiry(until: date) -> datetime:
    # Retention "until" a date ends at the start of that day (UTC), as the local store counts it.
    return datetime.combine(until, clock_time.min, tzinfo=UTC)


class AzureBlobStore(EvidenceStore):
    """Write-once objects in one Azure Blob Storage container."""

    def __init__(
        self,
        *,
        account_url: str | None = None,
        connection_string: str | None = None,
        container: str,
        credential: Any = None,
        allow_mutable_container: bool = False,
        transport: Any = None,
    ) -> None:
        client_options: dict[str, Any] = {}
        if transport is not None:
            client_options["transport"] = transport
        if connection_string:
            service = BlobServiceClient.from_connection_string(
                connection_string, credential=credential, **client_options
            )
        elif account_url:
            if credential is None:
                # Managed identity, workload identity or a developer's `az login`: no secret in settings.
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            service = BlobServiceClient(account_url=account_url, credential=credential, **client_options)
        else:
            raise StoreError("AzureBlobStore needs account_url or connection_string")
        self.container_name = container
        self.allow_mutable_container = allow_mutable_container
        self._container = service.get_container_client(container)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._warned_about_unenforced_retention = False

    def __repr__(self) -> str:
        # The account URL only: a connection string carries the account key.
        return f"AzureBlobStore(account={self._container.primary_hostname!r}, container={self.container_name!r})"

    # --- readiness --------------------------------------------------------------------------------

    def check_ready(self) -> None:
        with self._ready_lock:
            if self._ready:
                return  # a locked policy cannot be unlocked or removed: once seen, it stays true
            problem = self._immutability_problem()
            if problem is not None:
                if not self.allow_mutable_container:
                    raise StoreError(
                        f"Azure container {self.container_name!r} cannot hold evidence: {problem}. Enable "
                        "version-level immutability with a locked default time-based retention policy on the "
                        "container (or, for development only, set CUSTODIA_AZURE_ALLOW_MUTABLE_CONTAINER)."
                    )
                logger.warning(
                    "Azure container %r is NOT write-once (%s); accepted because allow_mutable_container is set. "
                    "Development only: never use this setting for real evidence.",
                    self.container_name,
                    problem,
                )
            self._ready = True

    def _immutability_problem(self) -> str | None:
        """None when the container is write-once, else what is missing."""
        try:
            properties = self._container.get_container_properties()
        except ResourceNotFoundError:
            if not self.allow_mutable_container:
                return "the container does not exist"
            with self._azure_errors("create container"), contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            return "the container was just created by the application, without any immutability policy"
        except AzureError as error:
            raise StoreError(f"cannot read the properties of Azure container {self.container_name!r}: "
                             f"{_describe(error)}") from None  # fmt: skip
        if not properties.immutable_storage_with_versioning_enabled:
            return "version-level immutability (immutable storage with versioning) is not enabled"
        if not properties.has_immutability_policy:
            return "it has no default immutability policy"
        mode = self._probe_policy_mode()
        if mode != "locked":
            return f"its default immutability policy is {mode or 'not applied to new blobs'}, not locked"
        return None

    def _probe_policy_mode(self) -> str | None:
        """The immutability mode a new blob receives from the container's default policy."""
        now = datetime.now(UTC)
        with self._azure_errors("list readiness probes"):
            for blob in self._container.list_blobs(name_starts_with=READINESS_PREFIX, include=["immutabilitypolicy"]):
                policy = blob.immutability_policy
                if _mode(policy) == "locked" and policy.expiry_time and _aware(policy.expiry_time) > now:
                    return "locked"
        probe_name = f"{READINESS_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        with self._azure_errors("write readiness probe"):
            probe = self._container.get_blob_client(probe_name)
            probe.upload_blob(b"custodia readiness probe: shows the container's default immutability policy\n")
            return _mode(probe.get_blob_properties().immutability_policy)

    def _require_ready(self) -> None:
        if not self._ready:
            self.check_ready()

    # --- objects ----------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        validate_key(key)
        self._require_ready()
        protection = self._protection_from_records(key)
        options: dict[str, Any] = {}
        if protection.until is not None and protection.until > datetime.now(UTC).date():
            options["immutability_policy"] = ImmutabilityPolicy(
                expiry_time=_expiry(protection.until), policy_mode="Locked"
            )
        if protection.legal_hold:
            options["legal_hold"] = True
        if isinstance(data, bytes | bytearray | memoryview):
            payload: Any = bytes(data[:length] if length is not None else data)
            if length is not None and len(payload) != length:
                raise StoreError(f"short write for {key}: expected {length} bytes, got {len(payload)}")
            length = len(payload)
        else:
            payload = _ExactLengthReader(data, length=length, key=key) if length is not None else data
        with self._azure_errors("put", key):
            try:
                # A large upload stages blocks and commits them in one request at the end: a failed
                # put leaves only uncommitted blocks, which no reader sees and Azure discards.
                self._container.get_blob_client(key).upload_blob(payload, length=length, overwrite=False, **options)
            except ResourceExistsError:
                raise ObjectExists(f"object already written: {key}") from None
            except ResourceModifiedError:
                raise ObjectExists(f"object already written: {key}") from None

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise StoreError("offset and length must not be negative")
        if length == 0:
            self.size(key)  # still report a missing object
            return b""
        with self._azure_errors("read", key):
            try:
                return self._container.get_blob_client(key).download_blob(offset=offset, length=length).readall()
            except HttpResponseError as error:
                if error.status_code == 416:  # range starts at or beyond the end: nothing to read
                    self.size(key)
                    return b""
                raise

    def size(self, key: str) -> int:
        validate_key(key)
        with self._azure_errors("size", key):
            return self._container.get_blob_client(key).get_blob_properties().size

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._azure_errors("exists", key):
            return self._container.get_blob_client(key).exists()

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        with self._azure_errors("list", prefix):
            # The service returns names in lexical (UTF-8 byte) order, which for our key alphabet is str order.
            for name in self._container.list_blob_names(name_starts_with=prefix):
                if not name.startswith(CONTROL_PREFIX):
                    yield name

    def delete(self, key: str) -> None:
        validate_key(key)
        blob = self._container.get_blob_client(key)
        with self._azure_errors("delete", key):
            properties = blob.get_blob_properties()
        protection = self._protection_from_records(key)
        if protection.active:
            raise RetentionViolation(f"cannot delete {key}: {protection.describe()}")
        if properties.has_legal_hold:
            raise RetentionViolation(f"cannot delete {key}: legal hold on the blob")
        policy = properties.immutability_policy
        if policy is not None and policy.expiry_time and _aware(policy.expiry_time) > datetime.now(UTC):
            raise RetentionViolation(f"cannot delete {key}: immutability policy until {policy.expiry_time:%Y-%m-%d}")
        with self._azure_errors("delete", key):
            blob.delete_blob()

    def copy(self, source_key: str, target_key: str) -> None:
        """Server-side copy to a new key (write-once like any put); waits until the copy has finished."""
        validate_key(source_key)
        validate_key(target_key)
        self._require_ready()
        source = self._container.get_blob_client(source_key)
        target = self._container.get_blob_client(target_key)
        with self._azure_errors("copy from", source_key):
            source.get_blob_properties()
        with self._azure_errors("copy to", target_key):
            try:
                target.start_copy_from_url(source.url, match_condition=MatchConditions.IfMissing)
            except (ResourceExistsError, ResourceModifiedError):
                raise ObjectExists(f"object already written: {target_key}") from None
            deadline = time.monotonic() + _COPY_TIMEOUT_SECONDS
            while True:
                status = target.get_blob_properties().copy.status
                if status in (None, "success"):
                    break
                if status in ("failed", "aborted") or time.monotonic() > deadline:
                    raise StoreError(f"copy of {source_key} to {target_key} ended with status {status}")
                time.sleep(_COPY_POLL_SECONDS)
        protection = self._protection_from_records(target_key)
        if protection.active:
            self._protect_blob(target_key, protection, current_expiry=None, current_hold=False)

    # --- retention and legal hold -----------------------------------------------------------------

    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        """Record and apply retention for ``prefix``, which must end with ``/``. ``until=None`` keeps the
        recorded date; an earlier date than the recorded one is refused."""
        validate_prefix(prefix)
        if not prefix.endswith("/"):
            raise StoreError("on the Azure store a retention prefix must end with '/' (for example evidence/<uuid>/)")
        recorded = self._latest_record(prefix)
        if recorded.until is not None and until is not None and until < recorded.until:
            raise RetentionViolation(
                f"retention of {prefix!r} runs until {recorded.until.isoformat()}: it can be extended, "
                f"never shortened (asked for {until.isoformat()})"
            )
        new_until = until if until is not None else recorded.until
        record = {
            "prefix": prefix,
            "until": new_until.isoformat() if new_until else None,
            "legal_hold": bool(legal_hold),
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        # Records are never overwritten (the container may be WORM): each change is a new record blob,
        # named so that the newest sorts last, which also keeps the history of every change.
        record_name = (
            f"{RETENTION_PREFIX}{prefix}{_RECORD_SEPARATOR}"
            f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"
        )
        with self._azure_errors("record retention for", prefix):
            self._container.get_blob_client(record_name).upload_blob(
                json.dumps(record, sort_keys=True).encode(), overwrite=False
            )
        protection = Protection(until=new_until, legal_hold=bool(legal_hold))
        with self._azure_errors("list for retention", prefix):
            blobs = list(
                self._container.list_blobs(name_starts_with=prefix, include=["immutabilitypolicy", "legalhold"])
            )
        for blob in blobs:
            if blob.name.startswith(CONTROL_PREFIX):
                continue
            # A blob under a longer prefix may carry a hold of its own record; lifting this prefix's
            # hold must not lift that one.
            effective = self._protection_from_records(blob.name) if not legal_hold else protection
            self._protect_blob(
                blob.name,
                Protection(until=protection.until, legal_hold=effective.legal_hold),
                current_expiry=blob.immutability_policy.expiry_time if blob.immutability_policy else None,
                current_hold=bool(blob.has_legal_hold),
            )
        logger.info("retention set", extra={"prefix": prefix, "until": record["until"], "legal_hold": legal_hold})

    def _protect_blob(
        self, key: str, protection: Protection, *, current_expiry: datetime | None, current_hold: bool
    ) -> None:
        blob = self._container.get_blob_client(key)
        try:
            if protection.until is not None and protection.until > datetime.now(UTC).date():
                wanted = _expiry(protection.until)
                if current_expiry is None or _aware(current_expiry) < wanted:
                    blob.set_immutability_policy(ImmutabilityPolicy(expiry_time=wanted, policy_mode="Locked"))
            if protection.legal_hold != current_hold:
                blob.set_legal_hold(protection.legal_hold)
        except HttpResponseError as error:
            if error.status_code == 501 and self.allow_mutable_container:
                # Azurite implements neither call. The record blobs still make delete() refuse.
                if not self._warned_about_unenforced_retention:
                    logger.warning(
                        "the blob service does not implement immutability policies or legal holds (501); "
                        "retention is enforced by this application only (development setting)"
                    )
                    self._warned_about_unenforced_retention = True
                return
            raise StoreError(f"cannot protect {key}: {_describe(error)}") from None
        except AzureError as error:
            raise StoreError(f"cannot protect {key}: {_describe(error)}") from None

    def _latest_record(self, prefix: str) -> Protection:
        folder = f"{RETENTION_PREFIX}{prefix}{_RECORD_SEPARATOR}"
        with self._azure_errors("read retention of", prefix):
            names = list(self._container.list_blob_names(name_starts_with=folder))
            if not names:
                return Protection()
            record = json.loads(self._container.get_blob_client(max(names)).download_blob().readall())
        return Protection(
            until=date.fromisoformat(record["until"]) if record.get("until") else None,
            legal_hold=bool(record.get("legal_hold")),
        )

    def _protection_from_records(self, key: str) -> Protection:
        """The strictest recorded protection over every path level (``a/``, ``a/b/`` …) of ``key``."""
        candidates = [key[: index + 1] for index, character in enumerate(key) if character == "/"]
        until: date | None = None
        legal_hold = False
        for candidate in candidates:
            recorded = self._latest_record(candidate)
            legal_hold = legal_hold or recorded.legal_hold
            if recorded.until is not None and (until is None or recorded.until > until):
                until = recorded.until
        return Protection(until=until, legal_hold=legal_hold)

    # --- errors -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _azure_errors(self, operation: str, key: str = "") -> Iterator[None]:
        """Map the SDK's exceptions onto the store's, with short messages (no response bodies)."""
        subject = f"{operation} {key}".strip()
        try:
            yield
        except ResourceNotFoundError:
            raise ObjectMissing(f"no object: {key}" if key else f"{subject}: not found") from None
        except HttpResponseError as error:
            # The storage SDK adds error_code to the errors it raises; azure-core's class does not declare it.
            error_code = getattr(error, "error_code", None)
            if error_code in _IMMUTABLE_ERROR_CODES:
                raise RetentionViolation(f"{subject} refused by the container's immutability: {error_code}") from None
            raise StoreError(f"Azure Blob Storage: {subject} failed: {_describe(error)}") from None
        except AzureError as error:
            raise StoreError(f"Azure Blob Storage: {subject} failed: {_describe(error)}") from None


class _ExactLengthReader:
    """Hands the SDK at most ``length`` bytes of a stream and fails loudly if the stream ends early, so a
    truncated upload is never committed as a short object."""

    def __init__(self, stream: BinaryIO, *, length: int, key: str) -> None:
        self._stream = stream
        self._remaining = length
        self._length = length
        self._key = key

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        wanted = self._remaining if size is None or size < 0 else min(size, self._remaining)
        # Fill the request completely: the SDK sends what it gets with a Content-Length it already knows.
        blocks: list[bytes] = []
        collected = 0
        while collected < wanted:
            block = self._stream.read(wanted - collected)
            if not block:
                raise StoreError(
                    f"short write for {self._key}: expected {self._length} bytes, "
                    f"got {self._length - self._remaining + collected}"
                )
            blocks.append(block)
            collected += len(block)
        self._remaining -= collected
        return b"".join(blocks)


def _mode(policy: ImmutabilityPolicy | None) -> str | None:
    mode = getattr(policy, "policy_mode", None)
    return str(getattr(mode, "value", mode)).lower() if mode else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _describe(error: AzureError) -> str:
    status = getattr(error, "status_code", None)
    code = getattr(error, "error_code", None)
    if status or code:
        return " ".join(str(part) for part in (status, code) if part)
    return type(error).__name__
