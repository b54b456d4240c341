"""What a capture needs from Azure, behind one small interface, and its Azure implementation.

``CaptureClient`` is the seam: the capture service (``evidence.capture.services``) calls only these
methods, so that the steps can be tested through the real Azure SDK clients with a fake *transport*
(tests/evidence/fake_azure_capture.py) and run for real against Azure Resource Manager and Key Vault.

Sign-in (step 1 of the runbook) is a managed identity or a service principal of the organisation that
owns the case, read from the worker's environment (or ``*_FILE`` secret files), never from the database:

- ``CUSTODIA_CAPTURE_<ORG>_TENANT_ID``, ``…_CLIENT_ID`` and ``…_CLIENT_SECRET`` (or ``…_CLIENT_CERTIFICATE_PATH``):
  a service principal; ``<ORG>`` is the organisation's slug in capitals, ``-`` as ``_``;
- ``CUSTODIA_CAPTURE_<ORG>_MANAGED_IDENTITY_CLIENT_ID``: a user-assigned managed identity;
- ``CUSTODIA_CAPTURE_<ORG>_MANAGED_IDENTITY=true``: the worker VM's system-assigned identity;
- the same names without ``<ORG>_`` apply to every organisation that has none of its own.

Nothing this module raises or logs carries a SAS URL, a token or a key value: ``CaptureError`` messages
name the operation and Azure's status and error code only.
"""

from __future__ import annotations

import abc
import base64
import binascii
import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

ARM_SCOPE = "https://management.azure.com/.default"
# The runbook's snapshots are read for minutes, not days: access ends by itself if the finally never runs.
DEFAULT_ACCESS_SECONDS = 4 * 3600


class CaptureError(Exception):
    """A capture operation failed. ``transient`` says whether trying again later may help (throttling,
    an unavailable service). Messages never contain a SAS URL, token or key material."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class DiskEncryption:
    """Where Azure Disk Encryption keeps a disk's keys: URLs that name secrets and keys, not their values."""

    secret_url: str
    source_vault_id: str = ""
    key_url: str = ""
    key_vault_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "secret_url": self.secret_url,
            "source_vault_id": self.source_vault_id,
            "key_url": self.key_url,
            "key_vault_id": self.key_vault_id,
        }


@dataclass(frozen=True)
class VmDisk:
    name: str
    disk_id: str
    lun: int | None
    is_os_disk: bool
    os_type: str = ""
    size_bytes: int | None = None
    encryption: DiskEncryption | None = None


@dataclass(frozen=True)
class VmDescription:
    name: str
    vm_id: str
    location: str
    disks: tuple[VmDisk, ...]


@dataclass(frozen=True)
class Snapshot:
    name: str
    snapshot_id: str


@dataclass(frozen=True)
class EncryptionMaterial:
    """A disk's key as the VM's key vault holds it, unwrapped where a KEK wraps it.

    ``bek`` is the clear disk encryption key (a BitLocker .BEK file, or a LUKS passphrase); ``stored_value``
    the secret exactly as the vault holds it (wrapped by the KEK, if one); ``kek_backup`` the KEK as Key
    Vault's protected backup blob. ``repr`` shows none of them.
    """

    bek: bytes = field(repr=False)
    stored_value: bytes = field(repr=False)
    tags: dict[str, str]
    kek_id: str = ""
    kek_backup: bytes | None = field(default=None, repr=False)


class CaptureClient(abc.ABC):
    """What the capture steps need from Azure. One instance per run (it holds the signed-in credential)."""

    @abc.abstractmethod
    def sign_in(self) -> dict[str, str]:
        """Sign in and return what identity was used (kind, client id): never a token or a secret."""

    @abc.abstractmethod
    def list_vms(self, *, subscription_id: str, resource_group: str) -> list[str]:
        """The VM names of a resource group, for the pick list (CaptureError when the identity may not list)."""

    @abc.abstractmethod
    def describe_vm(self, *, subscription_id: str, resource_group: str, vm_name: str) -> VmDescription: ...

    @abc.abstractmethod
    def create_snapshot(
        self, *, subscription_id: str, resource_group: str, location: str, disk: VmDisk, snapshot_name: str
    ) -> Snapshot:
        """Create (or find, when it exists) a full snapshot of ``disk`` named ``snapshot_name``."""

    @abc.abstractmethod
    def grant_access(
        self, *, subscription_id: str, resource_group: str, snapshot_name: str, seconds: int = DEFAULT_ACCESS_SECONDS
    ) -> str:
        """Read access to the snapshot for ``seconds``: its SAS URL. Keep it in memory only; never log it."""

    @abc.abstractmethod
    def revoke_access(self, *, subscription_id: str, resource_group: str, snapshot_name: str) -> None: ...

    @abc.abstractmethod
    def delete_snapshot(self, *, subscription_id: str, resource_group: str, snapshot_name: str) -> None: ...

    @abc.abstractmethod
    def snapshot_size(self, *, sas_url: str) -> int: ...

    @abc.abstractmethod
    def read_snapshot_range(self, *, sas_url: str, offset: int, length: int) -> bytes: ...

    @abc.abstractmethod
    def open_snapshot(self, *, sas_url: str) -> BinaryIO:
        """The snapshot's bytes from the start, as a file object read once to its end (``close`` it)."""

    @abc.abstractmethod
    def copy_snapshot(self, *, sas_url: str, blob_name: str) -> dict[str, Any]:
        """Copy the snapshot server-side (``start_copy_from_url``) into the immutable container under
        ``blob_name``, wait for the copy, and return the blob's properties (never the source URL)."""

    @abc.abstractmethod
    def read_encryption_material(self, *, encryption: DiskEncryption) -> EncryptionMaterial: ...


def get_capture_client(*, organisation: str) -> CaptureClient:
    """The configured client (``CUSTODIA_CAPTURE_CLIENT``) signed in as ``organisation``'s identity."""
    factory = import_string(settings.CUSTODIA_CAPTURE_CLIENT)
    return factory(organisation=organisation, **settings.CUSTODIA_CAPTURE_CLIENT_OPTIONS)


# --- credentials ------------------------------------------------------------------------------------


def _organisation_prefix(organisation: str) -> str:
    return "CUSTODIA_CAPTURE_" + re.sub(r"[^A-Z0-9]", "_", organisation.upper()) + "_"


def _setting(organisation: str, name: str) -> str:
    """``name`` for the organisation, else for every organisation; a ``*_FILE`` variable names a file."""
    for prefix in (_organisation_prefix(organisation), "CUSTODIA_CAPTURE_"):
        variable = prefix + name
        if os.environ.get(variable):
            return os.environ[variable].strip()
        file_name = os.environ.get(variable + "_FILE")
        if file_name:
            try:
                return Path(file_name).read_text().strip()
            except OSError as exc:
                raise CaptureError(f"{variable}_FILE: cannot read the file ({exc.strerror})") from None
    return ""


def credential_for(*, organisation: str) -> tuple[Any, dict[str, str]]:
    """The Azure credential of ``organisation``'s capture identity, and a description fit for the audit."""
    tenant, client_id = _setting(organisation, "TENANT_ID"), _setting(organisation, "CLIENT_ID")
    secret, certificate = _setting(organisation, "CLIENT_SECRET"), _setting(organisation, "CLIENT_CERTIFICATE_PATH")
    if tenant and client_id and (secret or certificate):
        from azure.identity import CertificateCredential, ClientSecretCredential

        if secret:
            return ClientSecretCredential(tenant, client_id, secret), {
                "kind": "service_principal",
                "client_id": client_id,
            }
        return (
            CertificateCredential(tenant, client_id, certificate_path=certificate),
            {"kind": "service_principal_certificate", "client_id": client_id},
        )
    managed_client = _setting(organisation, "MANAGED_IDENTITY_CLIENT_ID")
    if managed_client or _setting(organisation, "MANAGED_IDENTITY").lower() in {"1", "true", "yes", "on"}:
        from azure.identity import ManagedIdentityCredential

        if managed_client:
            return ManagedIdentityCredential(client_id=managed_client), {
                "kind": "managed_identity",
                "client_id": managed_client,
            }
        return ManagedIdentityCredential(), {"kind": "managed_identity", "client_id": "system-assigned"}
    raise CaptureError(
        f"no Azure identity is configured for capture by organisation {organisation!r}: set "
        f"{_organisation_prefix(organisation)}TENANT_ID, …_CLIENT_ID and …_CLIENT_SECRET, or …_MANAGED_IDENTITY"
    )


# --- the Azure implementation --------------------------------------------------------------------------


def _raw(model: Any) -> dict:
    """An SDK model as the JSON Azure sent (the generated models are mappings over it)."""
    if model is None:
        return {}
    if hasattr(model, "as_dict"):
        try:
            return model.as_dict(exclude_readonly=False)
        except TypeError:
            return model.as_dict()
    return dict(model)


def _get(document: dict, *path: str) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)  # type: ignore[assignment]
    return document


def _parse_vault_item(url: str, *, kind: str) -> tuple[str, str, str]:
    """(vault URL, name, version) of a Key Vault ``secrets``/``keys`` URL; CaptureError when it is not one."""
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme != "https" or len(segments) < 2 or segments[0] != kind:
        raise CaptureError(f"the disk's encryption settings name no Key Vault {kind[:-1]}")
    return f"https://{parts.netloc}", segments[1], segments[2] if len(segments) > 2 else ""


@contextlib.contextmanager
def azure_errors(operation: str) -> Iterator[None]:
    """Map the SDK's exceptions onto CaptureError with the status and error code only (Azure echoes
    request URLs, SAS included, in some messages: those are never repeated)."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except CaptureError:
        raise
    except ClientAuthenticationError:
        raise CaptureError(f"Azure refused the sign-in or the permission to {operation}") from None
    except ResourceNotFoundError:
        raise CaptureError(f"Azure: {operation}: not found") from None
    except HttpResponseError as error:
        odata = getattr(error, "error", None)
        code = odata.code if odata is not None else None
        detail = " ".join(str(part) for part in (error.status_code, code) if part)
        transient = error.status_code in (408, 429) or (error.status_code or 0) >= 500
        raise CaptureError(f"Azure refused to {operation} ({detail})", transient=transient) from None
    except (ServiceRequestError, ServiceResponseError) as error:
        raise CaptureError(
            f"Azure unreachable: could not {operation} ({type(error).__name__})", transient=True
        ) from None
    except AzureError as error:
        raise CaptureError(f"Azure: could not {operation} ({type(error).__name__})", transient=True) from None


# A SAS signature (or a whole SAS query) in a log record: urllib3 logs every request line at DEBUG, query
# string included, and a SAS URL read there grants access to the snapshot until it expires.
_SAS_SIGNATURE = re.compile(r"(?i)\b(sig|skoid|sktid|skt|ske|sks|skv|saoid|suoid)=[^&\s\"']+")
SAS_LOGGERS = ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy", "azure")


class SasRedactingFilter(logging.Filter):
    """Replaces SAS signature values in a record's message with ``REDACTED`` (the record still logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        redacted = _SAS_SIGNATURE.sub(lambda match: f"{match.group(1)}=REDACTED", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_sas_log_redaction() -> None:
    """Put the redacting filter on the loggers that see request URLs (once per process)."""
    for name in SAS_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(existing, SasRedactingFilter) for existing in target.filters):
            target.addFilter(SasRedactingFilter())


class PrefetchingReader:
    """A file object over a blob download: a thread fetches the next pieces while the caller seals the last.

    Bounded (``depth`` pieces in flight), so memory stays flat whatever the size of the disk.
    """

    def __init__(self, chunks: Iterator[bytes], *, depth: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._buffer = memoryview(b"")
        self._done = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fetch, args=(chunks,), name="custodia-capture-fetch", daemon=True)
        self._thread.start()

    def _fetch(self, chunks: Iterator[bytes]) -> None:
        try:
            for piece in chunks:
                while not self._closed.is_set():
                    try:
                        self._queue.put(piece, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._closed.is_set():
                    return
            self._queue.put(None)
        except BaseException as error:  # handed to the reader, which raises it in the caller's thread
            self._queue.put(error)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size is not None and size >= 0 else None
        while wanted is None or wanted > 0:
            if not self._buffer:
                if self._done:
                    break
                item = self._queue.get()
                if item is None:
                    self._done = True
                    break
                if isinstance(item, BaseException):
                    self._done = True
                    with azure_errors("read the snapshot"):
                        raise item
                self._buffer = memoryview(item)
            take = len(self._buffer) if wanted is None else min(wanted, len(self._buffer))
            parts.append(bytes(self._buffer[:take]))
            self._buffer = self._buffer[take:]
            if wanted is not None:
                wanted -= take
        return b"".join(parts)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def __enter__(self) -> PrefetchingReader:
        return self

    def __exit__(self, *exc_details: object) -> None:
        self.close()


class AzureCaptureClient(CaptureClient):
    """Azure Resource Manager (azure-mgmt-compute), Key Vault and Blob Storage through the Azure SDK.

    ``credential`` and the transports are for tests (a fake transport behind the real SDK clients); in
    production the credential comes from ``credential_for`` and the SDK's own HTTP transport is used.
    The immutable container for the native copy is the evidence store's (``CUSTODIA_EVIDENCE_STORE_OPTIONS``)
    unless ``native_account_url``/``native_connection_string``/``native_container`` say otherwise.
    """

    def __init__(
        self,
        *,
        organisation: str,
        credential: Any = None,
        arm_transport: Any = None,
        vault_transport: Any = None,
        blob_transport: Any = None,
        polling_interval: float = 5.0,
        native_account_url: str | None = None,
        native_connection_string: str | None = None,
        native_container: str | None = None,
        download_chunk_bytes: int = 4 << 20,
        download_concurrency: int = 4,
    ) -> None:
        install_sas_log_redaction()
        self.organisation = organisation
        self._credential = credential
        self._identity: dict[str, str] = {"kind": "configured credential"} if credential is not None else {}
        self._arm_transport = arm_transport
        self._vault_transport = vault_transport
        self._blob_transport = blob_transport
        self._polling_interval = polling_interval
        store_options = getattr(settings, "CUSTODIA_EVIDENCE_STORE_OPTIONS", {}) or {}
        self._native_account_url = native_account_url or store_options.get("account_url")
        self._native_connection_string = native_connection_string or store_options.get("connection_string")
        self._native_container = native_container or store_options.get("container") or "evidence"
        self._download_chunk_bytes = download_chunk_bytes
        self._download_concurrency = download_concurrency
        self._compute: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"AzureCaptureClient(organisation={self.organisation!r})"

    # --- sign-in ------------------------------------------------------------------------------------

    def sign_in(self) -> dict[str, str]:
        if self._credential is None:
            self._credential, self._identity = credential_for(organisation=self.organisation)
        with azure_errors("sign in"):
            self._credential.get_token(ARM_SCOPE)  # proves the identity works before anything is created
        return dict(self._identity)

    def _require_credential(self) -> Any:
        if self._credential is None:
            self.sign_in()
        return self._credential

    def _options(self, transport: Any) -> dict[str, Any]:
        return {"transport": transport} if transport is not None else {}

    def _compute_client(self, subscription_id: str) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        client = self._compute.get(subscription_id)
        if client is None:
            client = ComputeManagementClient(
                self._require_credential(),
                subscription_id,
                polling_interval=self._polling_interval,
                **self._options(self._arm_transport),
            )
            self._compute[subscription_id] = client
        return client

    # --- the VM ---------------------------------------------------------------------------------------

    def list_vms(self, *, subscription_id: str, resource_group: str) -> list[str]:
        with azure_errors("list the VMs of the resource group"):
            return sorted(vm.name for vm in self._compute_client(subscription_id).virtual_machines.list(resource_group))

    def describe_vm(self, *, subscription_id: str, resource_group: str, vm_name: str) -> VmDescription:
        compute = self._compute_client(subscription_id)
        with azure_errors("read the VM"):
            vm = _raw(compute.virtual_machines.get(resource_group, vm_name))
        storage = _get(vm, "properties", "storageProfile") or {}
        os_disk = storage.get("osDisk") or {}
        entries: list[tuple[dict, int | None, bool]] = [(os_disk, None, True)]
        entries += [(disk, disk.get("lun"), False) for disk in storage.get("dataDisks") or []]
        disks = []
        for entry, lun, is_os in entries:
            disk_id = _get(entry, "managedDisk", "id") or ""
            if not disk_id:
                raise CaptureError("the VM has an unmanaged (VHD-backed) disk: only managed disks can be snapshotted")
            disk_rg, disk_name = _resource_group_and_name(disk_id)
            with azure_errors("read a disk of the VM"):
                disk = _raw(compute.disks.get(disk_rg, disk_name))
            disks.append(
                VmDisk(
                    name=disk_name,
                    disk_id=disk_id,
                    lun=lun,
                    is_os_disk=is_os,
                    os_type=str(entry.get("osType") or _get(disk, "properties", "osType") or ""),
                    size_bytes=_get(disk, "properties", "diskSizeBytes"),
                    encryption=_encryption_of(disk, vm_disk_entry=entry),
                )
            )
        return VmDescription(
            name=vm.get("name") or vm_name,
            vm_id=str(_get(vm, "properties", "vmId") or ""),
            location=vm.get("location") or "",
            disks=tuple(disks),
        )

    # --- snapshots ----------------------------------------------------------------------------------

    def create_snapshot(
        self, *, subscription_id: str, resource_group: str, location: str, disk: VmDisk, snapshot_name: str
    ) -> Snapshot:
        body = {
            "location": location,
            "tags": {"custodia": "capture", "sourceDisk": disk.name},
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk.disk_id}},
        }
        with azure_errors("create a snapshot"):
            poller = self._compute_client(subscription_id).snapshots.begin_create_or_update(
                resource_group, snapshot_name, body
            )
            snapshot = _raw(poller.result())
        return Snapshot(name=snapshot.get("name") or snapshot_name, snapshot_id=snapshot.get("id") or "")

    def grant_access(
        self, *, subscription_id: str, resource_group: str, snapshot_name: str, seconds: int = DEFAULT_ACCESS_SECONDS
    ) -> str:
        with azure_errors("grant read access to the snapshot"):
            poller = self._compute_client(subscription_id).snapshots.begin_grant_access(
                resource_group, snapshot_name, {"access": "Read", "durationInSeconds": int(seconds)}
            )
            access = _raw(poller.result())
        url = access.get("accessSAS") or access.get("access_sas")
        if not url:
            raise CaptureError("Azure granted access to the snapshot without a SAS URL")
        return str(url)

    def revoke_access(self, *, subscription_id: str, resource_group: str, snapshot_name: str) -> None:
        with azure_errors("revoke access to the snapshot"):
            self._compute_client(subscription_id).snapshots.begin_revoke_access(resource_group, snapshot_name).result()

    def delete_snapshot(self, *, subscription_id: str, resource_group: str, snapshot_name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with azure_errors("delete the snapshot"):
            try:
                self._compute_client(subscription_id).snapshots.begin_delete(resource_group, snapshot_name).result()
            except ResourceNotFoundError:
                return  # gone already: what the step wants

    # --- the snapshot's bytes ------------------------------------------------------------------------

    def _blob(self, sas_url: str) -> Any:
        from azure.storage.blob import BlobClient

        return BlobClient.from_blob_url(
            sas_url,
            max_single_get_size=self._download_chunk_bytes,
            max_chunk_get_size=self._download_chunk_bytes,
            **self._options(self._blob_transport),
        )

    def snapshot_size(self, *, sas_url: str) -> int:
        with azure_errors("read the snapshot's size"):
            return int(self._blob(sas_url).get_blob_properties().size)

    def read_snapshot_range(self, *, sas_url: str, offset: int, length: int) -> bytes:
        with azure_errors("read the snapshot"):
            return self._blob(sas_url).download_blob(offset=offset, length=length).readall()

    def open_snapshot(self, *, sas_url: str) -> BinaryIO:
        blob = self._blob(sas_url)
        with azure_errors("read the snapshot's size"):
            size = int(blob.get_blob_properties().size)
        pieces = _ranged_pieces(
            blob, size=size, piece=self._download_chunk_bytes, concurrency=self._download_concurrency
        )
        return PrefetchingReader(pieces, depth=self._download_concurrency)  # type: ignore[return-value]

    def copy_snapshot(self, *, sas_url: str, blob_name: str) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobServiceClient

        options = self._options(self._blob_transport)
        if self._native_connection_string:
            service = BlobServiceClient.from_connection_string(self._native_connection_string, **options)
        elif self._native_account_url:
            service = BlobServiceClient(self._native_account_url, credential=self._require_credential(), **options)
        else:
            raise CaptureError("no Azure storage account is configured for the native copy")
        target = service.get_blob_client(self._native_container, blob_name)
        with azure_errors("copy the snapshot into the immutable container"):
            try:
                properties = target.get_blob_properties()  # copied by an earlier attempt: write-once, reuse it
            except ResourceNotFoundError:
                target.start_copy_from_url(sas_url, requires_sync=False)
                properties = target.get_blob_properties()
            deadline = time.monotonic() + 6 * 3600
            while properties.copy.status == "pending" and time.monotonic() < deadline:
                time.sleep(2)
                properties = target.get_blob_properties()
        if properties.copy.status not in (None, "success"):
            raise CaptureError(f"the server-side copy ended {properties.copy.status}")
        account_url = service.url.rstrip("/")
        return {
            "account_url": account_url,
            "container": self._native_container,
            "blob": blob_name,
            "size": properties.size,
            "etag": str(properties.etag or "").strip('"'),
            "last_modified": properties.last_modified.isoformat() if properties.last_modified else None,
            "version_id": getattr(properties, "version_id", None),
            "copy_id": properties.copy.id,
            "copy_status": properties.copy.status,
            "copy_completed_on": properties.copy.completion_time.isoformat()
            if properties.copy.completion_time
            else None,
            "content_md5": base64.b64encode(bytes(properties.content_settings.content_md5)).decode()
            if properties.content_settings.content_md5
            else None,
        }

    # --- keys -----------------------------------------------------------------------------------------

    def read_encryption_material(self, *, encryption: DiskEncryption) -> EncryptionMaterial:
        from azure.keyvault.keys import KeyClient
        from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
        from azure.keyvault.secrets import SecretClient

        vault_url, name, version = _parse_vault_item(encryption.secret_url, kind="secrets")
        credential = self._require_credential()
        options = self._options(self._vault_transport)
        with azure_errors("read the disk's encryption secret (BEK) from the VM's key vault"):
            secret = SecretClient(vault_url=vault_url, credential=credential, **options).get_secret(
                name, version or None
            )
        tags = {str(k): str(v) for k, v in (secret.properties.tags or {}).items()}
        try:
            stored = base64.b64decode(secret.value or "", validate=True)
        except (binascii.Error, ValueError):
            raise CaptureError(
                "the disk's encryption secret is not base64, as Azure Disk Encryption stores it"
            ) from None
        key_url = encryption.key_url or tags.get("DiskEncryptionKeyEncryptionKeyURL", "")
        if not key_url:
            return EncryptionMaterial(bek=stored, stored_value=stored, tags=tags)
        key_vault_url, key_name, _ = _parse_vault_item(key_url, kind="keys")
        try:
            algorithm = KeyWrapAlgorithm(tags.get("DiskEncryptionKeyEncryptionAlgorithm") or "RSA-OAEP")
        except ValueError:
            raise CaptureError("the disk's key is wrapped with an algorithm Key Vault does not unwrap") from None
        with azure_errors("unwrap the disk's key with its KEK in the VM's key vault"):
            unwrapped = CryptographyClient(key_url, credential=credential, **options).unwrap_key(algorithm, stored)
        with azure_errors("back up the KEK from the VM's key vault"):
            backup = KeyClient(vault_url=key_vault_url, credential=credential, **options).backup_key(key_name)
        return EncryptionMaterial(
            bek=unwrapped.key, stored_value=stored, tags=tags, kek_id=key_url, kek_backup=bytes(backup)
        )


def _ranged_pieces(blob: Any, *, size: int, piece: int, concurrency: int) -> Iterator[bytes]:
    """The blob's bytes in order, as ranged GETs of ``piece`` bytes on ``concurrency`` connections (the SDK's
    ``chunks()`` fetches one at a time; ``readinto`` is parallel but wants the whole destination at once).

    Twice as many pieces are requested as there are connections, so that a connection never waits for the
    slowest piece ahead of it to be taken: at most ``2 * concurrency`` pieces are in memory."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    def fetch(offset: int) -> bytes:
        return blob.download_blob(offset=offset, length=min(piece, size - offset)).readall()

    window = 2 * concurrency
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="custodia-capture-get") as pool:
        offsets = iter(range(0, size, piece))
        pending: deque = deque(pool.submit(fetch, offset) for _, offset in zip(range(window), offsets, strict=False))
        while pending:
            data = pending.popleft().result()
            next_offset = next(offsets, None)
            if next_offset is not None:
                pending.append(pool.submit(fetch, next_offset))
            yield data


def _resource_group_and_name(resource_id: str) -> tuple[str, str]:
    segments = [segment for segment in resource_id.split("/") if segment]
    lowered = [segment.lower() for segment in segments]
    try:
        group = segments[lowered.index("resourcegroups") + 1]
    except (ValueError, IndexError):
        raise CaptureError("a disk id of the VM is not an Azure resource id") from None
    return group, segments[-1]


def _encryption_of(disk: dict, *, vm_disk_entry: dict) -> DiskEncryption | None:
    """Azure Disk Encryption's settings of a managed disk (the disk's own collection, or the VM's older
    per-disk ``encryptionSettings``)."""
    collection = _get(disk, "properties", "encryptionSettingsCollection") or {}
    settings_list = collection.get("encryptionSettings") or []
    if collection.get("enabled") is False:
        settings_list = []
    entry = settings_list[0] if settings_list else None
    if entry is None and _get(vm_disk_entry, "encryptionSettings", "enabled"):
        entry = vm_disk_entry["encryptionSettings"]
    if not entry or not _get(entry, "diskEncryptionKey", "secretUrl"):
        return None
    return DiskEncryption(
        secret_url=_get(entry, "diskEncryptionKey", "secretUrl"),
        source_vault_id=_get(entry, "diskEncryptionKey", "sourceVault", "id") or "",
        key_url=_get(entry, "keyEncryptionKey", "keyUrl") or "",
        key_vault_id=_get(entry, "keyEncryptionKey", "sourceVault", "id") or "",
    )


ProgressCallback = Callable[[int], None]
