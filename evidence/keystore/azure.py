"""The Azure Key Vault key store: data keys wrapped by an RSA key in the vault, secrets escrowed as vault
secrets.

- Wrapping uses RSA-OAEP-256 through azure-keyvault-keys' ``CryptographyClient``. The SDK wraps locally
  with the key's public half (no private key ever leaves the vault); unwrapping is a vault call
  (``keys/unwrapKey`` permission). ``WrappedKey.key_id`` is the full key id *with its version*, so data
  keys wrapped before a key rotation still unwrap with the version that wrapped them.
- Escrowed secrets are vault secrets named ``custodia-<random hex>`` (never derived from case or evidence
  names), value base64, with the caller's tags.
- The audit signing key is a second key of the vault, an EC P-256 key (Key Vault has no Ed25519):
  checkpoints are signed ES256 by the vault (``keys/sign`` permission) over SHA-256 of the statement,
  and the signature is the raw r||s the vault returns. The public key is published as DER
  SubjectPublicKeyInfo. The key version is fixed for the life of the process, so the fingerprint a
  statement names is the key that signed it.
- Before any token is sent to a key id read back from the database, its host must be this vault's:
  a tampered ``key_id`` cannot make the application hand its credential to another server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import KeyClient, KeyVaultKey, KeyVaultKeyIdentifier
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.keystore.base import EscrowedSecret, KeyStore, KeyStoreError, WrappedKey

logger = logging.getLogger(__name__)

ALGORITHM = "RSA-OAEP-256"
ESCROW_CONTENT_TYPE = "application/octet-stream; base64"
_SECRET_NAME = re.compile(r"custodia-[0-9a-f]{32}")
_RSA_KEY_TYPES = {"RSA", "RSA-HSM"}
_EC_KEY_TYPES = {"EC", "EC-HSM"}


class AzureKeyVaultStore(KeyStore):
    """Wraps data keys with ``key_name`` in the vault at ``vault_url`` and escrows secrets there."""

    def __init__(
        self,
        *,
        vault_url: str,
        key_name: str,
        signing_key_name: str = "custodia-audit-signing",
        credential: Any = None,
        transport: Any = None,
    ) -> None:
        if not vault_url or not key_name:
            raise KeyStoreError("AzureKeyVaultStore needs vault_url and key_name")
        if credential is None:
            # Managed identity, workload identity or a developer's `az login`: no secret in settings.
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.vault_url = vault_url.rstrip("/")
        self.key_name = key_name
        self.signing_key_name = signing_key_name
        self._signing_key: KeyVaultKey | None = None
        self._credential = credential
        self._client_options: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._keys = KeyClient(vault_url=self.vault_url, credential=credential, **self._client_options)
        self._secrets = SecretClient(vault_url=self.vault_url, credential=credential, **self._client_options)
        self._lock = threading.Lock()
        self._current_key: KeyVaultKey | None = None
        self._crypto_clients: dict[str, CryptographyClient] = {}

    def __repr__(self) -> str:
        return f"AzureKeyVaultStore(vault_url={self.vault_url!r}, key_name={self.key_name!r})"

    # --- data keys --------------------------------------------------------------------------------

    def _key(self) -> KeyVaultKey:
        with self._lock:
            if self._current_key is None:
                with _vault_errors(f"read key {self.key_name!r}"):
                    key = self._keys.get_key(self.key_name)
                if key.key_type not in _RSA_KEY_TYPES:
                    raise KeyStoreError(f"Key Vault key {self.key_name!r} is {key.key_type}, not an RSA key")
                if key.properties.enabled is False:
                    raise KeyStoreError(f"Key Vault key {self.key_name!r} is disabled")
                self._current_key = key
            return self._current_key

    def _crypto_client(self, key_id: str) -> CryptographyClient:
        with self._lock:
            client = self._crypto_clients.get(key_id)
            if client is None:
                client = CryptographyClient(key_id, credential=self._credential, **self._client_options)
                self._crypto_clients[key_id] = client
            return client

    def wrap_key(self, data_key: bytes) -> WrappedKey:
        key = self._key()
        # Built from the fetched key, the client wraps locally with the public key; the id keeps the version.
        client = CryptographyClient(key, credential=self._credential, **self._client_options)
        with _vault_errors("wrap a data key"):
            result = client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, bytes(data_key))
        return WrappedKey(key_id=result.key_id or key.id, algorithm=ALGORITHM, wrapped=result.encrypted_key)

    def unwrap_key(self, wrapped: WrappedKey) -> bytes:
        if wrapped.algorithm != ALGORITHM:
            raise KeyStoreError(f"the Key Vault store unwraps {ALGORITHM}, not {wrapped.algorithm!r}")
        self._require_key_of_this_vault(wrapped.key_id)
        with _vault_errors("unwrap a data key"):
            result = self._crypto_client(wrapped.key_id).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.wrapped)
        return result.key

    def _require_key_of_this_vault(self, key_id: str) -> None:
        try:
            identifier = KeyVaultKeyIdentifier(key_id)
        except (ValueError, TypeError):
            raise KeyStoreError(f"{key_id!r} is not a Key Vault key id") from None
        if urlsplit(identifier.vault_url).netloc.lower() != urlsplit(self.vault_url).netloc.lower():
            raise KeyStoreError(f"the data key was wrapped by a key of another vault ({identifier.vault_url})")
        if not identifier.version:
            raise KeyStoreError("the wrapping key id carries no version: cannot tell which key version to use")

    # --- the audit signing key ----------------------------------------------------------------------

    signing_algorithm = "ecdsa-p256-sha256"

    def _signing(self) -> KeyVaultKey:
        with self._lock:
            if self._signing_key is None:
                with _vault_errors(f"read the audit signing key {self.signing_key_name!r}"):
                    key = self._keys.get_key(self.signing_key_name)
                curve = key.key.crv  # type: ignore[attr-defined]  # JsonWebKey sets its fields dynamically
                if key.key_type not in _EC_KEY_TYPES or str(getattr(curve, "value", curve)) != "P-256":
                    raise KeyStoreError(f"Key Vault key {self.signing_key_name!r} is not an EC P-256 key")
                if key.properties.enabled is False:
                    raise KeyStoreError(f"Key Vault key {self.signing_key_name!r} is disabled")
                self._signing_key = key
            return self._signing_key

    def signing_public_key(self) -> bytes:
        jwk = self._signing().key
        x, y = jwk.x, jwk.y  # type: ignore[attr-defined]  # JsonWebKey sets its fields dynamically
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(bytes(x), "big"), int.from_bytes(bytes(y), "big"), ec.SECP256R1()
        )
        return numbers.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        key = self._signing()
        digest = hashlib.sha256(bytes(data)).digest()
        with _vault_errors("sign an audit checkpoint"):
            result = self._crypto_client(key.id).sign(SignatureAlgorithm.es256, digest)
        if len(result.signature) != 64:
            raise KeyStoreError("Key Vault returned an ES256 signature that is not 64 bytes (r||s)")
        return bytes(result.signature)

    # --- escrowed secrets -------------------------------------------------------------------------

    def put_secret(self, value: bytes, *, tags: dict[str, str]) -> EscrowedSecret:
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise KeyStoreError("tags must be a dict of strings to strings")
        name = f"custodia-{uuid.uuid4().hex}"
        with _vault_errors("escrow a secret"):
            self._secrets.set_secret(
                name,
                base64.b64encode(bytes(value)).decode("ascii"),
                tags=dict(tags),
                content_type=ESCROW_CONTENT_TYPE,
            )
        logger.info("secret escrowed", extra={"reference": name, "tag_names": sorted(tags)})
        return EscrowedSecret(reference=name, tags=dict(tags))

    def get_secret(self, reference: str) -> bytes:
        if not isinstance(reference, str) or not _SECRET_NAME.fullmatch(reference):
            raise KeyStoreError(f"no escrowed secret under reference {reference!r}")
        try:
            with _vault_errors("read an escrowed secret"):
                secret = self._secrets.get_secret(reference)
        except _NotFound:
            raise KeyStoreError(f"no escrowed secret under reference {reference!r}") from None
        try:
            return base64.b64decode(secret.value or "", validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError(f"escrowed secret {reference!r} is not in the expected encoding") from None

    def check_ready(self) -> None:
        key = self._key()
        operations = {str(getattr(op, "value", op)) for op in (key.key_operations or [])}
        missing = {"wrapKey", "unwrapKey"} - operations
        if operations and missing:
            raise KeyStoreError(f"Key Vault key {self.key_name!r} does not allow {', '.join(sorted(missing))}")


class _NotFound(KeyStoreError):
    pass


@contextlib.contextmanager
def _vault_errors(operation: str) -> Iterator[None]:
    """Map the SDK's exceptions onto KeyStoreError with the status and error code only: response bodies
    and exception texts are not repeated, so nothing the vault echoes can end up in a message or log."""
    try:
        yield
    except KeyStoreError:
        raise
    except ResourceNotFoundError:
        raise _NotFound(f"Key Vault: {operation}: not found") from None
    except HttpResponseError as error:
        code = error.error.code if error.error is not None else None
        detail = " ".join(str(part) for part in (error.status_code, code) if part)
        raise KeyStoreError(f"Key Vault refused to {operation} ({detail})") from None
    except AzureError as error:
        raise KeyStoreError(f"Key Vault unreachable: could not {operation} ({type(error).__name__})") from None
    except (ValueError, TypeError):
        # e.g. the SDK's local RSA code refusing a malformed data key
        raise KeyStoreError(f"could not {operation}: malformed input") from None
