"""FAKE Azure Key Vault, in process: a test double behind the SDK's transport seam, not a vault.

Just enough of the Key Vault REST API (learn.microsoft.com/rest/api/keyvault) for the key store, shaped
like the documented responses, so the real azure-keyvault-keys / -secrets clients run unmodified:

- the authentication challenge: a request without a bearer token gets ``401`` with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"``, which the SDK's ChallengeAuthPolicy answers by asking the
  credential for a token and sending the request again; a wrong token gets 401 as well;
- ``GET /keys/{name}[/{version}]`` (an RSA key as a JSON Web Key, public half only),
  ``POST /keys/{name}/{version}/wrapkey|unwrapkey`` doing real RSA-OAEP-256 with ``cryptography``,
  ``POST /keys/{name}/{version}`` (create a new version: rotation);
- EC P-256 keys (``ec_key_names``) with ``POST /keys/{name}/{version}/sign`` doing real ES256 with
  ``cryptography`` over the digest the client sends, answering the raw r||s as the vault does;
- ``PUT /secrets/{name}`` and ``GET /secrets/{name}[/{version}]``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline._tools import handle_non_stream_rest_response
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

FAKE_TENANT = "00000000-0000-0000-0000-00000000fake"
FAKE_TOKEN = "fake-access-token-for-a-fake-vault"
OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StaticTokenCredential:
    """A credential stub: always the same token; records the scopes it was asked for."""

    def __init__(self, token: str = FAKE_TOKEN) -> None:
        self.token = token
        self.requested_scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.requested_scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class FakeKeyVersion:
    version: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class FakeSecret:
    value: str
    version: str
    tags: dict[str, str]
    content_type: str | None
    created: int = field(default_factory=lambda: int(time.time()))


class FakeKeyVaultTransport(HttpTransport):
    """An in-memory FAKE of one Key Vault (keys and secrets) for the Azure SDK clients."""

    def __init__(
        self,
        *,
        vault_url: str,
        key_names: tuple[str, ...] = ("custodia-kek",),
        key_size: int = 2048,
        ec_key_names: tuple[str, ...] = ("custodia-audit-signing",),
    ):
        self.vault_url = vault_url.rstrip("/")
        self.key_size = key_size
        self.keys: dict[str, list[FakeKeyVersion]] = {}
        self.secrets: dict[str, list[FakeSecret]] = {}
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a valid bearer token)
        self.unwrap_calls = 0
        self._lock = threading.Lock()
        for name in key_names:
            self.rotate_key(name)
        for name in ec_key_names:
            private_key = ec.generate_private_key(ec.SECP256R1())
            self.keys.setdefault(name, []).append(FakeKeyVersion(version=uuid.uuid4().hex, private_key=private_key))

    def rotate_key(self, name: str) -> str:
        version = uuid.uuid4().hex
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=self.key_size)
        self.keys.setdefault(name, []).append(FakeKeyVersion(version=version, private_key=private_key))
        return version

    # The transport protocol.
    def __enter__(self) -> FakeKeyVaultTransport:
        return self

    def __exit__(self, *exc_details) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        path = unquote(url.path).strip("/")
        authorised = request.headers.get("Authorization") == f"Bearer {FAKE_TOKEN}"
        with self._lock:
            self.requests.append((request.method, path, authorised))
            if f"{url.scheme}://{url.netloc}" != self.vault_url:
                status, headers, body = 404, {}, {"error": {"code": "NotFound", "message": "no such vault"}}
            elif not authorised:
                # The challenge: tells the client which tenant and resource to get a token for.
                status = 401
                headers = {
                    "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{FAKE_TENANT}", '
                    'resource="https://vault.azure.net"'
                }
                body = {
                    "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
                }
            else:
                status, headers, body = self._route(request.method, path.split("/"), _json_body(request))
        return _response(request, status, headers, body, **kwargs)

    # --- routes -----------------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str], body: dict) -> tuple[int, dict[str, str], dict]:
        if parts[0] == "keys" and len(parts) >= 2:
            return self._keys(method, parts[1:], body)
        if parts[0] == "secrets" and len(parts) >= 2:
            return self._secrets(method, parts[1:], body)
        return 400, {}, {"error": {"code": "BadParameter", "message": "Unsupported by the fake vault"}}

    def _find_key(self, name: str, version: str | None) -> FakeKeyVersion | None:
        versions = self.keys.get(name) or []
        if not versions:
            return None
        if not version:
            return versions[-1]
        return next((candidate for candidate in versions if candidate.version == version), None)

    def _key_bundle(self, name: str, key: FakeKeyVersion) -> dict:
        if isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            point = key.private_key.public_key().public_numbers()
            jwk = {
                "kid": f"{self.vault_url}/keys/{name}/{key.version}",
                "kty": "EC",
                "crv": "P-256",
                "key_ops": ["sign", "verify"],
                "x": b64url(point.x.to_bytes(32, "big")),
                "y": b64url(point.y.to_bytes(32, "big")),
            }
            return {"key": jwk, "attributes": {"enabled": True, "created": key.created, "updated": key.created}}
        numbers = key.private_key.public_key().public_numbers()
        return {
            "key": {
                "kid": f"{self.vault_url}/keys/{name}/{key.version}",
                "kty": "RSA",
                "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
                "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            },
            "attributes": {
                "enabled": True,
                "created": key.created,
                "updated": key.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": {},
        }

    def _keys(self, method: str, parts: list[str], body: dict) -> tuple[int, dict[str, str], dict]:
        name = parts[0]
        operations = ("wrapkey", "unwrapkey", "sign")
        version = parts[1] if len(parts) >= 2 and parts[1] not in operations else None
        operation = parts[-1] if parts[-1] in operations else None
        key = self._find_key(name, version)
        if key is None:
            message = f"A key with (name/id) {name} was not found in this key vault."
            return 404, {}, {"error": {"code": "KeyNotFound", "message": message}}
        kid = f"{self.vault_url}/keys/{name}/{key.version}"
        if method == "GET" and operation is None:
            return 200, {}, self._key_bundle(name, key)
        if method == "POST" and operation == "sign":
            if body.get("alg") != "ES256" or not isinstance(key.private_key, ec.EllipticCurvePrivateKey):
                return 400, {}, {"error": {"code": "BadParameter", "message": "Unsupported algorithm"}}
            digest = from_b64url(body.get("value", ""))
            der = key.private_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            r, s = decode_dss_signature(der)
            return 200, {}, {"kid": kid, "value": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}
        if method == "POST" and operation is not None:
            if body.get("alg") != "RSA-OAEP-256":
                return 400, {}, {"error": {"code": "BadParameter", "message": "Unsupported algorithm"}}
            value = from_b64url(body.get("value", ""))
            if operation == "wrapkey":
                return 200, {}, {"kid": kid, "value": b64url(key.private_key.public_key().encrypt(value, OAEP_SHA256))}
            self.unwrap_calls += 1
            try:
                plain = key.private_key.decrypt(value, OAEP_SHA256)
            except ValueError:
                return 400, {}, {"error": {"code": "BadParameter", "message": "The parameter is incorrect.\r\n"}}
            return 200, {}, {"kid": kid, "value": b64url(plain)}
        return 405, {}, {"error": {"code": "BadParameter", "message": "Method not supported by the fake vault"}}

    def _secrets(self, method: str, parts: list[str], body: dict) -> tuple[int, dict[str, str], dict]:
        name = parts[0]
        if method == "PUT" and len(parts) == 1:
            secret = FakeSecret(
                value=body["value"], version=uuid.uuid4().hex, tags=body.get("tags") or {},
                content_type=body.get("contentType"),
            )  # fmt: skip
            self.secrets.setdefault(name, []).append(secret)
            return 200, {}, self._secret_bundle(name, secret)
        if method == "GET":
            versions = self.secrets.get(name) or []
            wanted = parts[1] if len(parts) >= 2 and parts[1] else None
            secret = next((s for s in versions if s.version == wanted), None) if wanted else (versions or [None])[-1]
            if secret is None:
                message = f"A secret with (name/id) {name} was not found in this key vault."
                return 404, {}, {"error": {"code": "SecretNotFound", "message": message}}
            return 200, {}, self._secret_bundle(name, secret)
        return 405, {}, {"error": {"code": "BadParameter", "message": "Method not supported by the fake vault"}}

    def _secret_bundle(self, name: str, secret: FakeSecret) -> dict:
        bundle = {
            "value": secret.value,
            "id": f"{self.vault_url}/secrets/{name}/{secret.version}",
            "attributes": {
                "enabled": True,
                "created": secret.created,
                "updated": secret.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": secret.tags,
        }
        if secret.content_type:
            bundle["contentType"] = secret.content_type
        return bundle


def _json_body(request) -> dict:
    raw = getattr(request, "content", None) if isinstance(request, RestHttpRequest) else request.data
    if not raw:
        return {}
    if isinstance(raw, str):
        raw = raw.encode()
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def _response(request, status: int, headers: dict[str, str], body: dict, **kwargs):
    payload = json.dumps(body).encode() if body else b""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
    raw.headers.update(
        {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(payload)),
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-service-version": "1.9.0.0",
            **headers,
        }
    )
    raw._content = payload
    raw._content_consumed = True  # the body is in memory: iter_content serves it from there
    raw.url = request.url
    if isinstance(request, RestHttpRequest):
        # As RequestsTransport does for the SDK's newer request type.
        response = RestRequestsTransportResponse(request=request, internal_response=raw)
        if not kwargs.get("stream"):
            handle_non_stream_rest_response(response)
        return response
    return RequestsTransportResponse(request, raw)
