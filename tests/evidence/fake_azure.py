"""FAKE Azure Blob Storage, in process: a test double, not Azure and not an emulator for anything else.

Azurite (the real emulator the suite starts) answers 501 to immutability and legal-hold calls, so the
store's write-once checks are tested through the real azure-storage-blob SDK against this transport. It
answers the handful of operations the store uses, shaped like Azure's documented REST responses
(learn.microsoft.com/rest/api/storageservices): Get Container Properties (``x-ms-has-immutability-policy``,
``x-ms-immutable-storage-with-versioning-enabled``), Put Blob (``If-None-Match: *``, inherited default
policy), Get Blob Properties (``x-ms-immutability-policy-until-date``, ``x-ms-immutability-policy-mode``,
``x-ms-legal-hold``), Get Blob (ranges), List Blobs (XML), Set Blob Immutability Policy, Set Legal Hold and
Delete Blob (refused with ``BlobImmutableDueToPolicy`` / ``BlobImmutableDueToLegalHold``).
It checks no signatures and keeps no versions.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import requests
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse

FAKE_ACCOUNT = "custodiafake"
# Any base64 will do: the fake does not verify shared-key signatures.
FAKE_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName={FAKE_ACCOUNT};"
    "AccountKey=ZmFrZS1rZXktZm9yLWEtZmFrZS1henVyZS1ibG9iLXNlcnZpY2U=;EndpointSuffix=core.windows.net"
)
API_VERSION = "2025-01-05"


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@dataclass
class FakeBlob:
    data: bytes
    created: datetime
    etag: str = field(default_factory=lambda: f'"0x{uuid.uuid4().hex[:15].upper()}"')
    policy_until: datetime | None = None
    policy_mode: str | None = None  # "unlocked" / "locked", as Azure spells it in responses
    legal_hold: bool = False


@dataclass
class FakeContainer:
    """What Azure would report for the container; ``default_policy_state`` is the management-plane state
    ("Locked"/"Unlocked") of the default version-level policy, visible to the data plane only through the
    mode new blobs inherit."""

    exists: bool = True
    versioning_worm: bool = True
    default_policy_state: str | None = "Locked"
    default_retention_days: int = 1
    legal_hold: bool = False
    blobs: dict[str, FakeBlob] = field(default_factory=dict)


class FakeAzureTransport(HttpTransport):
    """An in-memory, single-container FAKE of the Azure Blob service behind the SDK's transport seam."""

    def __init__(self, *, container_name: str = "evidence", container: FakeContainer | None = None) -> None:
        self.container_name = container_name
        self.container = container or FakeContainer()
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # (method, blob name, query)
        self._lock = threading.Lock()

    # The transport protocol: the pipeline opens, sends and closes.
    def __enter__(self) -> FakeAzureTransport:
        return self

    def __exit__(self, *exc_details) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request, **kwargs) -> RequestsTransportResponse:
        url = urlsplit(request.url)
        query = parse_qs(url.query, keep_blank_values=True)
        path = unquote(url.path).lstrip("/")
        container_name, _, blob_name = path.partition("/")
        with self._lock:
            self.requests.append((request.method, blob_name, query))
            if container_name != self.container_name:
                status, headers, body = self._error(404, "ContainerNotFound")
            elif not blob_name:
                status, headers, body = self._container_operation(request, query)
            else:
                status, headers, body = self._blob_operation(request, blob_name, query)
        return self._response(request, status, headers, body)

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _response(request, status: int, headers: dict[str, str], body: bytes) -> RequestsTransportResponse:
        raw = requests.Response()
        raw.status_code = status
        raw.reason = {200: "OK", 201: "Created", 202: "Accepted", 206: "Partial Content"}.get(status, "Error")
        raw.headers.update(
            {
                "x-ms-request-id": str(uuid.uuid4()),
                "x-ms-version": API_VERSION,
                "Date": http_date(datetime.now(UTC)),
                "Content-Length": str(len(body)),
                **headers,
            }
        )
        raw._content = body
        raw._content_consumed = True  # the body is in memory: iter_content serves it from there
        raw.url = request.url
        return RequestsTransportResponse(request, raw)

    @staticmethod
    def _error(status: int, code: str) -> tuple[int, dict[str, str], bytes]:
        body = (
            '<?xml version="1.0" encoding="utf-8"?><Error>'
            f"<Code>{code}</Code><Message>{code} (fake Azure)\nRequestId:{uuid.uuid4()}</Message></Error>"
        ).encode()
        return status, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body

    @staticmethod
    def _body(request) -> bytes:
        data = request.data if hasattr(request, "data") else request.content
        if data is None:
            return b""
        if isinstance(data, bytes | bytearray):
            return bytes(data)
        if isinstance(data, str):
            return data.encode()
        if hasattr(data, "read"):
            return data.read()
        return b"".join(data)

    # --- container --------------------------------------------------------------------------------

    def _container_operation(self, request, query) -> tuple[int, dict[str, str], bytes]:
        container = self.container
        comp = query.get("comp", [""])[0]
        if request.method == "PUT" and not comp:
            if container.exists:
                return self._error(409, "ContainerAlreadyExists")
            container.exists, container.versioning_worm, container.default_policy_state = True, False, None
            return 201, {"ETag": '"0x1"', "Last-Modified": http_date(datetime.now(UTC))}, b""
        if not container.exists:
            return self._error(404, "ContainerNotFound")
        if request.method in ("GET", "HEAD") and comp == "list":
            return self._list(query)
        if request.method in ("GET", "HEAD") and not comp:
            return (
                200,
                {
                    "ETag": '"0x8D0000000000001"',
                    "Last-Modified": http_date(datetime(2026, 1, 5, tzinfo=UTC)),
                    "x-ms-lease-status": "unlocked",
                    "x-ms-lease-state": "available",
                    "x-ms-has-immutability-policy": _flag(container.default_policy_state is not None),
                    "x-ms-has-legal-hold": _flag(container.legal_hold),
                    "x-ms-immutable-storage-with-versioning-enabled": _flag(container.versioning_worm),
                    "x-ms-default-encryption-scope": "$account-encryption-key",
                    "x-ms-deny-encryption-scope-override": "false",
                },
                b"",
            )
        return self._error(400, "UnsupportedByFake")

    def _list(self, query) -> tuple[int, dict[str, str], bytes]:
        prefix = query.get("prefix", [""])[0]
        include = ",".join(query.get("include", [])).lower()
        entries = []
        for name in sorted(self.container.blobs):
            if not name.startswith(prefix):
                continue
            blob = self.container.blobs[name]
            properties = [
                f"<Creation-Time>{http_date(blob.created)}</Creation-Time>",
                f"<Last-Modified>{http_date(blob.created)}</Last-Modified>",
                f"<Etag>{escape(blob.etag)}</Etag>",
                f"<Content-Length>{len(blob.data)}</Content-Length>",
                "<Content-Type>application/octet-stream</Content-Type>",
                "<BlobType>BlockBlob</BlobType>",
                "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>",
            ]
            if "immutabilitypolicy" in include and blob.policy_until is not None:
                properties.append(
                    f"<ImmutabilityPolicyUntilDate>{http_date(blob.policy_until)}</ImmutabilityPolicyUntilDate>"
                )
                properties.append(f"<ImmutabilityPolicyMode>{blob.policy_mode}</ImmutabilityPolicyMode>")
            if "legalhold" in include:
                properties.append(f"<LegalHold>{_flag(blob.legal_hold)}</LegalHold>")
            entries.append(f"<Blob><Name>{escape(name)}</Name><Properties>{''.join(properties)}</Properties></Blob>")
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="https://{FAKE_ACCOUNT}.blob.core.windows.net/" '
            f'ContainerName="{self.container_name}"><Prefix>{escape(prefix)}</Prefix>'
            f"<Blobs>{''.join(entries)}</Blobs><NextMarker /></EnumerationResults>"
        ).encode()
        return 200, {"Content-Type": "application/xml"}, body

    # --- blobs ------------------------------------------------------------------------------------

    def _blob_operation(self, request, name: str, query) -> tuple[int, dict[str, str], bytes]:
        container = self.container
        if not container.exists:
            return self._error(404, "ContainerNotFound")
        comp = query.get("comp", [""])[0]
        blob = container.blobs.get(name)
        headers = {key.lower(): value for key, value in request.headers.items()}
        now = datetime.now(UTC)

        if request.method == "PUT" and not comp:
            if headers.get("x-ms-copy-source"):
                return self._error(400, "UnsupportedByFake")
            if blob is not None and headers.get("if-none-match") == "*":
                return self._error(409, "BlobAlreadyExists")
            if blob is not None and _protected(blob, now):
                return self._error(409, "BlobImmutableDueToPolicy")
            blob = FakeBlob(data=self._body(request), created=now)
            if container.versioning_worm and container.default_policy_state:
                # A new version inherits the container's default time-based policy.
                blob.policy_until = now + timedelta(days=container.default_retention_days)
                blob.policy_mode = container.default_policy_state.lower()
            if headers.get("x-ms-immutability-policy-until-date"):
                blob.policy_until = parsedate_to_datetime(headers["x-ms-immutability-policy-until-date"])
                blob.policy_mode = headers.get("x-ms-immutability-policy-mode", "unlocked").lower()
            if headers.get("x-ms-legal-hold"):
                blob.legal_hold = headers["x-ms-legal-hold"].lower() == "true"
            container.blobs[name] = blob
            return 201, {"ETag": blob.etag, "Last-Modified": http_date(now), "x-ms-request-server-encrypted": "true",
                         "x-ms-version-id": now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")}, b""  # fmt: skip

        if blob is None:
            return self._error(404, "BlobNotFound")

        if request.method == "HEAD":
            return 200, self._blob_headers(blob), b""
        if request.method == "GET" and not comp:
            data = blob.data
            byte_range = headers.get("x-ms-range") or headers.get("range")
            if not byte_range:
                return 200, {**self._blob_headers(blob), "Content-Length": str(len(data))}, data
            start_text, _, end_text = byte_range.removeprefix("bytes=").partition("-")
            start = int(start_text)
            end = min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
            if start >= len(data):
                status, error_headers, body = self._error(416, "InvalidRange")
                return status, {**error_headers, "Content-Range": f"bytes */{len(data)}"}, body
            part = data[start : end + 1]
            return (
                206,
                {**self._blob_headers(blob), "Content-Length": str(len(part)),
                 "Content-Range": f"bytes {start}-{end}/{len(data)}"},
                part,
            )  # fmt: skip
        if request.method == "PUT" and comp == "immutabilityPolicies":
            until = parsedate_to_datetime(headers["x-ms-immutability-policy-until-date"])
            mode = headers.get("x-ms-immutability-policy-mode", "unlocked").lower()
            if blob.policy_mode == "locked" and blob.policy_until and until < blob.policy_until:
                return self._error(409, "ImmutabilityPolicyLocked")
            blob.policy_until, blob.policy_mode = until, mode
            return 200, {"x-ms-immutability-policy-until-date": http_date(until),
                         "x-ms-immutability-policy-mode": mode}, b""  # fmt: skip
        if request.method == "PUT" and comp == "legalhold":
            blob.legal_hold = headers.get("x-ms-legal-hold", "false").lower() == "true"
            return 200, {"x-ms-legal-hold": _flag(blob.legal_hold)}, b""
        if request.method == "DELETE":
            if blob.legal_hold:
                return self._error(409, "BlobImmutableDueToLegalHold")
            if _protected(blob, now):
                return self._error(409, "BlobImmutableDueToPolicy")
            del container.blobs[name]
            return 202, {"x-ms-delete-type-permanent": "false"}, b""
        return self._error(400, "UnsupportedByFake")

    @staticmethod
    def _blob_headers(blob: FakeBlob) -> dict[str, str]:
        headers = {
            "Content-Length": str(len(blob.data)),
            "Content-Type": "application/octet-stream",
            "ETag": blob.etag,
            "Last-Modified": http_date(blob.created),
            "x-ms-creation-time": http_date(blob.created),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-lease-status": "unlocked",
            "x-ms-lease-state": "available",
            "x-ms-server-encrypted": "true",
            "x-ms-legal-hold": _flag(blob.legal_hold),
            "Accept-Ranges": "bytes",
        }
        if blob.policy_until is not None:
            headers["x-ms-immutability-policy-until-date"] = http_date(blob.policy_until)
            headers["x-ms-immutability-policy-mode"] = blob.policy_mode or "unlocked"
        return headers


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _protected(blob: FakeBlob, now: datetime) -> bool:
    return blob.policy_until is not None and blob.policy_until > now
