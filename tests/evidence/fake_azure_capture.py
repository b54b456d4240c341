"""FAKES for testing capture without Azure: in-process transports behind the real Azure SDK clients.

Azure Resource Manager and Key Vault cannot run on a test machine, so capture is tested through the real
azure-mgmt-compute, azure-keyvault-secrets and azure-keyvault-keys clients, each given one of these fake
*transports* (azure-core's seam) instead of HTTP. They answer the documented REST calls, shaped like
Azure's responses (learn.microsoft.com/rest/api/compute, /rest/api/keyvault), and nothing more:

- ``FakeArmTransport``: ``GET`` a VM (``storageProfile`` with its managed OS and data disks), the VMs of a
  resource group, a managed disk (``encryptionSettingsCollection``: Azure Disk Encryption's BEK secret URL and
  KEK key URL); snapshot create as a **long-running operation** (``202`` + ``Azure-AsyncOperation``, polled
  to ``Succeeded``); ``beginGetAccess`` (``202`` + ``Location``, polled to the ``accessSAS``),
  ``endGetAccess`` and snapshot ``DELETE`` (both ``202`` + ``Location``).
  The snapshot's bytes are REAL: creating a snapshot copies the disk's blob in a real **Azurite**, and the
  SAS URL that ``beginGetAccess`` answers is a real read-only SAS for that Azurite blob, so streaming,
  hashing, sealing and ``start_copy_from_url`` run for real.
- ``FakeVault``: tests/evidence/fake_keyvault.py's fake vault, plus ``POST /keys/{name}/backup`` and
  injected failures (``429`` with ``Retry-After``, ``500``, ``403``) for secret writes;
  ``FakeVaults`` routes each request to the fake vault of its host (the VM's vault, the SOC vault).

Bearer tokens are checked against tests/evidence/fake_keyvault.py's ``FAKE_TOKEN``; nothing is signed.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import requests
from azure.core.pipeline._tools import handle_non_stream_rest_response
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.evidence.fake_keyvault import (
    FAKE_TOKEN,
    OAEP_SHA256,
    FakeKeyVaultTransport,
    FakeSecret,
    StaticTokenCredential,
    b64url,
)
from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY

ARM = "https://management.azure.com"
SUBSCRIPTION = "6f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
RESOURCE_GROUP = "rg-production"
VM_NAME = "vm-web-01"
SOURCE_VAULT = "https://kv-production.vault.azure.net"
SOC_VAULT = "https://kv-soc.vault.azure.net"
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Compute"

__all__ = ["FAKE_TOKEN", "StaticTokenCredential"]


@dataclass
class FakeDisk:
    name: str
    content: bytes = field(repr=False)
    lun: int | None = None  # None: the OS disk
    os_type: str = "Windows"
    bek_secret_url: str = ""
    kek_url: str = ""

    @property
    def resource_id(self) -> str:
        return f"{GROUP_ID}/disks/{self.name}"


@dataclass
class FakeSnapshot:
    name: str
    disk: FakeDisk
    blob: str
    access: bool = False


class FakeArmTransport(HttpTransport):
    """A FAKE of the Azure Resource Manager compute API for one subscription, one resource group, its VMs."""

    def __init__(self, *, connection_string: str, container: str, vms: dict[str, list[FakeDisk]]) -> None:
        self.vms = vms
        self.container = container
        self.blobs = BlobServiceClient.from_connection_string(connection_string)
        with_container = self.blobs.get_container_client(container)
        if not with_container.exists():
            with_container.create_container()
        for disks in vms.values():
            for disk in disks:
                with_container.get_blob_client(f"disks/{disk.name}").upload_blob(disk.content, overwrite=True)
        self.snapshots: dict[str, FakeSnapshot] = {}
        self.deleted: list[str] = []
        self.revoked: list[str] = []
        self.granted: list[str] = []
        self.sas_urls: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.polls = 0
        self.refuse_list = False
        self._operations: dict[str, dict] = {}
        self._lock = threading.Lock()

    # The transport protocol.
    def __enter__(self) -> FakeArmTransport:
        return self

    def __exit__(self, *exc_details) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        path = unquote(url.path).rstrip("/")
        with self._lock:
            self.calls.append((request.method, path))
            if f"{url.scheme}://{url.netloc}" != ARM:
                status, headers, body = 404, {}, {"error": {"code": "NotFound", "message": "no such host"}}
            elif request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
                status, headers, body = 401, {}, {"error": {"code": "AuthenticationFailed", "message": "no token"}}
            else:
                status, headers, body = self._route(request.method, path, _json_body(request))
        return _response(request, status, headers, body, **kwargs)

    # --- routes -----------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: dict):
        parts = path.strip("/").split("/")
        if "operations" in parts:
            return self._operation(parts[-1])
        prefix = ["subscriptions", SUBSCRIPTION, "resourceGroups", RESOURCE_GROUP, "providers", "Microsoft.Compute"]
        if parts[: len(prefix)] != prefix:
            return 404, {}, {"error": {"code": "ResourceGroupNotFound", "message": "no such resource group"}}
        kind, rest = parts[len(prefix)], parts[len(prefix) + 1 :]
        if kind == "virtualMachines":
            if not rest and method == "GET":
                if self.refuse_list:
                    return 403, {}, {"error": {"code": "AuthorizationFailed", "message": "may not list"}}
                return 200, {}, {"value": [self._vm(name) for name in sorted(self.vms)]}
            if len(rest) == 1 and method == "GET" and rest[0] in self.vms:
                return 200, {}, self._vm(rest[0])
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no such VM"}}
        if kind == "disks" and len(rest) == 1 and method == "GET":
            disk = self._disk(rest[0])
            if disk is None:
                return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no such disk"}}
            return 200, {}, self._disk_json(disk)
        if kind == "snapshots" and rest:
            return self._snapshot(method, rest[0], rest[1:], body)
        return 400, {}, {"error": {"code": "InvalidRequest", "message": "unsupported by the fake"}}

    def _disk(self, name: str) -> FakeDisk | None:
        return next((disk for disks in self.vms.values() for disk in disks if disk.name == name), None)

    def _vm(self, name: str) -> dict:
        disks = self.vms[name]
        os_disk = next(disk for disk in disks if disk.lun is None)
        return {
            "id": f"{GROUP_ID}/virtualMachines/{name}",
            "name": name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": "westeurope",
            "properties": {
                "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "storageProfile": {
                    "osDisk": {
                        "osType": os_disk.os_type,
                        "name": os_disk.name,
                        "createOption": "FromImage",
                        "managedDisk": {"id": os_disk.resource_id},
                    },
                    "dataDisks": [
                        {
                            "lun": disk.lun,
                            "name": disk.name,
                            "createOption": "Attach",
                            "managedDisk": {"id": disk.resource_id},
                        }
                        for disk in disks
                        if disk.lun is not None
                    ],
                },
                "provisioningState": "Succeeded",
            },
        }

    def _disk_json(self, disk: FakeDisk) -> dict:
        properties: dict = {"diskSizeBytes": len(disk.content), "provisioningState": "Succeeded"}
        if disk.lun is None:
            properties["osType"] = disk.os_type
        if disk.bek_secret_url:
            setting = {
                "diskEncryptionKey": {
                    "secretUrl": disk.bek_secret_url,
                    "sourceVault": {
                        "id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/kv-production"
                    },
                }
            }
            if disk.kek_url:
                setting["keyEncryptionKey"] = {
                    "keyUrl": disk.kek_url,
                    "sourceVault": {
                        "id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/kv-production"
                    },
                }
            properties["encryptionSettingsCollection"] = {
                "enabled": True,
                "encryptionSettings": [setting],
                "encryptionSettingsVersion": "1.1",
            }
        return {"id": disk.resource_id, "name": disk.name, "location": "westeurope", "properties": properties}

    def _snapshot_json(self, snapshot: FakeSnapshot, state: str) -> dict:
        return {
            "id": f"{GROUP_ID}/snapshots/{snapshot.name}",
            "name": snapshot.name,
            "location": "westeurope",
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": snapshot.disk.resource_id},
                "diskSizeBytes": len(snapshot.disk.content),
                "provisioningState": state,
            },
        }

    def _new_operation(self, result: dict | None, *, polls: int = 1) -> str:
        operation = uuid.uuid4().hex
        self._operations[operation] = {"remaining": polls, "result": result}
        return operation

    def _operation_url(self, operation: str) -> str:
        return (
            f"{ARM}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westeurope/operations/"
            f"{operation}?api-version=2026-03-02"
        )

    def _operation(self, operation: str):
        state = self._operations.get(operation)
        if state is None:
            return 404, {}, {"error": {"code": "NotFound", "message": "no such operation"}}
        self.polls += 1
        if state["remaining"] > 0:  # still running: the client must poll again
            state["remaining"] -= 1
            if state.get("location"):
                return 202, {"Location": self._operation_url(operation), "Retry-After": "0"}, {}
            return 200, {"Retry-After": "0"}, {"status": "InProgress"}
        if state.get("location"):
            return 200, {}, state["result"] or {}
        return 200, {}, {"status": "Succeeded", "endTime": datetime.now(UTC).isoformat()}

    def _located(self, result: dict | None) -> tuple[int, dict, dict]:
        operation = self._new_operation(result)
        self._operations[operation]["location"] = True
        return 202, {"Location": self._operation_url(operation), "Retry-After": "0"}, {}

    def _snapshot(self, method: str, name: str, action: list[str], body: dict):
        snapshot = self.snapshots.get(name)
        if method == "PUT" and not action:
            source = body.get("properties", {}).get("creationData", {}).get("sourceResourceId", "")
            disk = self._disk(source.rsplit("/", 1)[-1])
            if disk is None:
                return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no such source disk"}}
            blob = f"snapshots/{name}"
            container = self.blobs.get_container_client(self.container)
            container.get_blob_client(blob).upload_blob(disk.content, overwrite=True)
            snapshot = self.snapshots[name] = FakeSnapshot(name=name, disk=disk, blob=blob)
            operation = self._new_operation(None)
            headers = {"Azure-AsyncOperation": self._operation_url(operation), "Retry-After": "0"}
            return 202, headers, self._snapshot_json(snapshot, "Creating")
        if snapshot is None:
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "no such snapshot"}}
        if method == "GET" and not action:
            return 200, {}, self._snapshot_json(snapshot, "Succeeded")
        if method == "POST" and action == ["beginGetAccess"]:
            seconds = int(body.get("durationInSeconds") or 3600)
            snapshot.access = True
            self.granted.append(name)
            sas = generate_blob_sas(
                account_name=AZURITE_ACCOUNT,
                container_name=self.container,
                blob_name=snapshot.blob,
                account_key=AZURITE_KEY,
                permission=BlobSasPermissions(read=True),
                expiry=datetime.now(UTC) + timedelta(seconds=seconds),
            )
            url = f"{self.blobs.url.rstrip('/')}/{self.container}/{snapshot.blob}?{sas}"
            self.sas_urls.append(url)
            return self._located({"accessSAS": url})
        if method == "POST" and action == ["endGetAccess"]:
            snapshot.access = False
            self.revoked.append(name)
            return self._located(None)
        if method == "DELETE" and not action:
            if snapshot.access:
                return 409, {}, {"error": {"code": "OperationNotAllowed", "message": "snapshot has active SAS"}}
            del self.snapshots[name]
            self.deleted.append(name)
            self.blobs.get_blob_client(self.container, snapshot.blob).delete_blob()
            return self._located(None)
        return 400, {}, {"error": {"code": "InvalidRequest", "message": "unsupported by the fake"}}


class FakeVault(FakeKeyVaultTransport):
    """A FAKE Key Vault (tests/evidence/fake_keyvault.py) that can also back up keys and fail on purpose.

    ``secret_write_failures``: statuses the next secret writes are answered with, in order (429 comes with
    ``Retry-After: 0``), before writes succeed again.
    """

    def __init__(self, *, vault_url: str, **options) -> None:
        super().__init__(vault_url=vault_url, **options)
        self.secret_write_failures: list[int] = []
        self.secret_writes = 0

    def send(self, request, **kwargs):
        path = urlsplit(request.url).path
        authorised = request.headers.get("Authorization") == f"Bearer {FAKE_TOKEN}"
        if request.method == "PUT" and path.startswith("/secrets/") and authorised:
            with self._lock:
                self.secret_writes += 1
                status = self.secret_write_failures.pop(0) if self.secret_write_failures else None
            if status is not None:
                headers = {"Retry-After": "0"} if status == 429 else {}
                code = {429: "Throttled", 403: "Forbidden"}.get(status, "InternalServerError")
                return _response(
                    request, status, headers, {"error": {"code": code, "message": "fake failure"}}, **kwargs
                )
        return super().send(request, **kwargs)

    def _route(self, method: str, parts: list[str], body: dict):
        if method == "POST" and len(parts) == 3 and parts[0] == "keys" and parts[2] == "backup":
            if parts[1] not in self.keys:
                return 404, {}, {"error": {"code": "KeyNotFound", "message": "no such key"}}
            blob = b"fake-key-backup:" + parts[1].encode() + b":" + self.keys[parts[1]][-1].version.encode()
            return 200, {}, {"value": b64url(blob)}
        return super()._route(method, parts, body)

    def put_ade_secret(self, *, name: str, value: bytes, tags: dict[str, str]) -> str:
        """Store a secret as Azure Disk Encryption does (base64 value, its tags); returns its URL."""
        version = uuid.uuid4().hex
        self.secrets.setdefault(name, []).append(
            FakeSecret(value=base64.b64encode(value).decode(), version=version, tags=tags, content_type="BEK")
        )
        return f"{self.vault_url}/secrets/{name}/{version}"

    def wrap_with(self, key_name: str, data: bytes) -> tuple[bytes, str]:
        """``data`` wrapped RSA-OAEP-256 by the key's newest version, and that version's key URL."""
        key = self.keys[key_name][-1]
        assert isinstance(key.private_key, rsa.RSAPrivateKey)
        return key.private_key.public_key().encrypt(
            data, OAEP_SHA256
        ), f"{self.vault_url}/keys/{key_name}/{key.version}"


class FakeVaults(HttpTransport):
    """Routes each Key Vault request to the FAKE vault of its host."""

    def __init__(self, *vaults: FakeVault) -> None:
        self.vaults = {vault.vault_url: vault for vault in vaults}

    def __enter__(self) -> FakeVaults:
        return self

    def __exit__(self, *exc_details) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        vault = self.vaults.get(f"{url.scheme}://{url.netloc}")
        if vault is None:
            return _response(request, 404, {}, {"error": {"code": "NotFound", "message": "no such vault"}}, **kwargs)
        return vault.send(request, **kwargs)


def _json_body(request) -> dict:
    raw = getattr(request, "content", None) if isinstance(request, RestHttpRequest) else request.data
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def _response(request, status: int, headers: dict[str, str], body: dict, **kwargs):
    """A response as the SDK's requests transport builds one (both of the SDK's request types)."""
    payload = json.dumps(body).encode() if body else b""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = {200: "OK", 201: "Created", 202: "Accepted", 401: "Unauthorized", 404: "Not Found"}.get(
        status, "Error"
    )
    raw.headers.update(
        {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(payload)),
         "x-ms-request-id": str(uuid.uuid4()), **headers}
    )  # fmt: skip
    raw._content = payload
    raw._content_consumed = True
    raw.url = request.url
    if isinstance(request, RestHttpRequest):
        response = RestRequestsTransportResponse(request=request, internal_response=raw)
        if not kwargs.get("stream"):
            handle_non_stream_rest_response(response)
        return response
    return RequestsTransportResponse(request, raw)
