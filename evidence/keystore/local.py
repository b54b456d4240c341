"""The local key store (the embedded default): one master key from the environment, one keystore file.

- Data keys are wrapped with AES key wrap (RFC 3394, "A256KW") under a key-encryption key derived from
  the master key with HKDF. ``WrappedKey.key_id`` is ``local:<first 8 hex of SHA-256(master key)>``, so a
  wrapped key presented to a store with another master key is refused by name before any unwrapping.
- Escrowed secrets are encrypted with AES-256-GCM under a second HKDF-derived key, with the reference and
  the tags as associated data (altering either is detected). They live in a JSON file, written atomically
  (temporary file + rename, mode 0600), which must sit outside the evidence folder: the keys that open
  the evidence must not travel with it. Tags are stored in clear; values never are.

The master key is base64 of 32 random bytes: ``python -m evidence.keystore.local`` prints a new one.
Settings pass it from ``CUSTODIA_MASTER_KEY`` or the file named by ``CUSTODIA_MASTER_KEY_FILE``.

- The audit signing key is an Ed25519 key of its own, kept apart from the master key (its own variable
  ``CUSTODIA_AUDIT_SIGNING_KEY`` or file ``CUSTODIA_AUDIT_SIGNING_KEY_FILE``: base64 of the 32-byte seed,
  made the same way as a master key). Whoever holds the master key to open evidence does not thereby
  hold the key that vouches for the audit trail, and the same key is refused for both.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.keystore.base import EscrowedSecret, KeyStore, KeyStoreError, WrappedKey

logger = logging.getLogger(__name__)

ALGORITHM = "A256KW"
MASTER_KEY_BYTES = 32
FILE_FORMAT = "custodia-local-keystore"
FILE_VERSION = 1
_KEY_WRAP_INFO = b"custodia/local-keystore/v1/key-wrap"
_ESCROW_INFO = b"custodia/local-keystore/v1/escrow"
_NONCE_BYTES = 12


def generate_master_key() -> str:
    """A new master key: base64 of 32 random bytes (for `make run`, the README and operators)."""
    return base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode("ascii")


def parse_master_key(value: str | bytes, *, what: str = "the master key") -> bytes:
    """The 32 key bytes from base64 text (str or bytes, surrounding whitespace ignored) or raw bytes.
    Error messages describe the expected form and never echo the value. ``what`` names the key in them."""
    if isinstance(value, bytes) and len(value) == MASTER_KEY_BYTES:
        return value
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        # Accept both base64 alphabets; validate=True refuses stray characters instead of skipping them.
        decoded = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"{what} is not valid base64 (expected base64 of 32 random bytes)") from None
    if len(decoded) != MASTER_KEY_BYTES:
        raise KeyStoreError(f"{what} must be base64 of {MASTER_KEY_BYTES} bytes, it decodes to {len(decoded)}")
    return decoded


def master_key_id(master_key: bytes) -> str:
    # A 32-bit fingerprint names the key without helping anyone guess a 256-bit random key.
    return "local:" + hashlib.sha256(master_key).hexdigest()[:8]


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


class LocalKeyStore(KeyStore):
    """Wraps data keys under a master key and escrows secrets in an encrypted file at ``path``."""

    def __init__(
        self,
        *,
        path: str | Path,
        master_key: str | bytes | None = None,
        master_key_file: str | Path | None = None,
        signing_key: str | bytes | None = None,
        signing_key_file: str | Path | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self._lock = threading.Lock()
        self._master_key: bytes | None = None
        if master_key is None and master_key_file is not None:
            try:
                master_key = Path(master_key_file).read_bytes()
            except OSError as error:
                raise KeyStoreError(f"cannot read the master key file {master_key_file}: {error.strerror}") from None
        if master_key is not None:
            self._master_key = parse_master_key(master_key)
        self.key_id = master_key_id(self._master_key) if self._master_key else None
        if signing_key is None and signing_key_file is not None:
            try:
                signing_key = Path(signing_key_file).read_bytes()
            except OSError as error:
                raise KeyStoreError(
                    f"cannot read the audit signing key file {signing_key_file}: {error.strerror}"
                ) from None
        self._signing_key: Ed25519PrivateKey | None = None
        self._signing_seed_is_master_key = False
        if signing_key is not None:
            seed = parse_master_key(signing_key, what="the audit signing key")
            self._signing_key = Ed25519PrivateKey.from_private_bytes(seed)
            self._signing_seed_is_master_key = seed == self._master_key

    def __repr__(self) -> str:
        # Never the key itself; the id is a fingerprint.
        return f"LocalKeyStore(path={str(self.path)!r}, key_id={self.key_id!r})"

    def _require_master_key(self) -> bytes:
        if self._master_key is None:
            raise KeyStoreError(
                "no master key configured for the local key store: set CUSTODIA_MASTER_KEY (base64 of 32 bytes) "
                "or CUSTODIA_MASTER_KEY_FILE"
            )
        return self._master_key

    # --- data keys --------------------------------------------------------------------------------

    def wrap_key(self, data_key: bytes) -> WrappedKey:
        master_key = self._require_master_key()
        try:
            wrapped = aes_key_wrap(_derive(master_key, _KEY_WRAP_INFO), bytes(data_key))
        except ValueError:
            raise KeyStoreError("a data key must be at least 16 bytes long and a multiple of 8 bytes") from None
        return WrappedKey(key_id=master_key_id(master_key), algorithm=ALGORITHM, wrapped=wrapped)

    def unwrap_key(self, wrapped: WrappedKey) -> bytes:
        master_key = self._require_master_key()
        if wrapped.algorithm != ALGORITHM:
            raise KeyStoreError(f"the local key store unwraps {ALGORITHM}, not {wrapped.algorithm!r}")
        if wrapped.key_id != self.key_id:
            raise KeyStoreError(
                f"the data key was wrapped by {wrapped.key_id!r}, but this key store holds {self.key_id!r}: "
                "wrong master key"
            )
        try:
            return aes_key_unwrap(_derive(master_key, _KEY_WRAP_INFO), wrapped.wrapped)
        except (InvalidUnwrap, ValueError):
            raise KeyStoreError("the wrapped data key failed its integrity check: it was altered") from None

    # --- the audit signing key ----------------------------------------------------------------------

    signing_algorithm = "ed25519"

    def _require_signing_key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            raise KeyStoreError(
                "no audit signing key configured for the local key store: set CUSTODIA_AUDIT_SIGNING_KEY "
                "(base64 of a 32-byte Ed25519 seed) or CUSTODIA_AUDIT_SIGNING_KEY_FILE"
            )
        return self._signing_key

    def signing_public_key(self) -> bytes:
        return self._require_signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._require_signing_key().sign(bytes(data))

    # --- escrowed secrets -------------------------------------------------------------------------

    def put_secret(self, value: bytes, *, tags: dict[str, str]) -> EscrowedSecret:
        master_key = self._require_master_key()
        clean_tags = _validate_tags(tags)
        reference = f"local-{uuid.uuid4().hex}"
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = AESGCM(_derive(master_key, _ESCROW_INFO)).encrypt(
            nonce, bytes(value), _associated_data(reference, clean_tags)
        )
        with self._locked_file() as document:
            document["secrets"][reference] = {
                "nonce": base64.b64encode(nonce).decode("ascii"),
                "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
                "tags": clean_tags,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self._write(document)
        logger.info("secret escrowed", extra={"reference": reference, "tag_names": sorted(clean_tags)})
        return EscrowedSecret(reference=reference, tags=clean_tags)

    def get_secret(self, reference: str) -> bytes:
        master_key = self._require_master_key()
        with self._locked_file() as document:
            entry = document["secrets"].get(reference)
        if entry is None:
            raise KeyStoreError(f"no escrowed secret under reference {reference!r}")
        try:
            nonce = base64.b64decode(entry["nonce"], validate=True)
            ciphertext = base64.b64decode(entry["ciphertext"], validate=True)
            tags = entry.get("tags") or {}
            return AESGCM(_derive(master_key, _ESCROW_INFO)).decrypt(
                nonce, ciphertext, _associated_data(reference, tags)
            )
        except (InvalidTag, KeyError, TypeError, ValueError, binascii.Error):
            raise KeyStoreError(
                f"escrowed secret {reference!r} failed its integrity check: it or its tags were altered"
            ) from None

    def get_tags(self, reference: str) -> dict[str, str]:
        """The clear-text tags of an escrowed secret (no decryption, no master key needed)."""
        with self._locked_file() as document:
            entry = document["secrets"].get(reference)
        if entry is None:
            raise KeyStoreError(f"no escrowed secret under reference {reference!r}")
        return dict(entry.get("tags") or {})

    def check_ready(self) -> None:
        self._require_master_key()
        # A missing signing key is reported by the audit app's own deployment check (audit.E002).
        if self._signing_seed_is_master_key:
            raise KeyStoreError("the audit signing key must not be the master key: give it a key of its own")
        self._refuse_inside_evidence_folder()
        with self._locked_file():
            pass  # creates the folder, checks the file's format and that it belongs to this master key

    # --- the file ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[dict[str, Any]]:
        """Load the keystore under a thread lock and an exclusive lock on a sibling lock file, so that
        read-modify-write cycles of threads and processes never lose an entry."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise KeyStoreError(f"cannot create the keystore folder {self.path.parent}: {error.strerror}") from None
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock:
            lock_descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                fcntl.flock(lock_descriptor, fcntl.LOCK_EX)
                yield self._load()
            finally:
                os.close(lock_descriptor)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FILE_FORMAT, "version": FILE_VERSION, "key_id": self.key_id, "secrets": {}}
        except OSError as error:
            raise KeyStoreError(f"cannot read the keystore {self.path}: {error.strerror}") from None
        try:
            document = json.loads(raw)
        except ValueError:
            raise KeyStoreError(f"the keystore {self.path} is not valid JSON") from None
        if (
            not isinstance(document, dict)
            or document.get("format") != FILE_FORMAT
            or not isinstance(document.get("secrets"), dict)
        ):
            raise KeyStoreError(f"{self.path} is not a Custodia keystore")
        if document.get("version") != FILE_VERSION:
            raise KeyStoreError(f"the keystore {self.path} has unsupported version {document.get('version')!r}")
        if self.key_id is not None and document.get("key_id") != self.key_id:
            raise KeyStoreError(
                f"the keystore {self.path} belongs to master key {document.get('key_id')!r}, "
                f"not to the configured {self.key_id!r}: wrong master key"
            )
        return document

    def _write(self, document: dict[str, Any]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        payload = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as error:
            raise KeyStoreError(f"cannot write the keystore {self.path}: {error.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _refuse_inside_evidence_folder(self) -> None:
        from django.conf import settings

        options = getattr(settings, "CUSTODIA_EVIDENCE_STORE_OPTIONS", None) or {}
        evidence_root = options.get("root")
        if evidence_root and self.path.is_relative_to(Path(evidence_root).resolve()):
            raise KeyStoreError(
                f"the keystore {self.path} lies inside the evidence folder {evidence_root}: "
                "keep the keys apart from the evidence they open"
            )


def _validate_tags(tags: dict[str, str]) -> dict[str, str]:
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise KeyStoreError("tags must be a dict of strings to strings")
    return dict(tags)


def _associated_data(reference: str, tags: dict[str, str]) -> bytes:
    return json.dumps({"reference": reference, "tags": tags}, sort_keys=True, separators=(",", ":")).encode()


if __name__ == "__main__":  # pragma: no cover - `python -m evidence.keystore.local` prints a new master key
    print(generate_master_key())
