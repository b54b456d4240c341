"""Signed checkpoints of the audit chain (docs/audit.md, "Chains and checkpoints").

A checkpoint signs the head of the global chain and the head of every case chain that advanced since
the checkpoint before, each as its own statement (CONTRACT: "Checkpoints"), and is written once to an
archive no database administrator can rewrite. ``audit`` imports no app of ours, so the two things a
checkpoint needs from outside come through small interfaces chosen by dotted path in settings, as the
search backends are:

- a ``CheckpointSigner`` (``CUSTODIA_AUDIT_SIGNER``): the organisation's signing key, held by the key store;
- a ``CheckpointArchive`` (``CUSTODIA_AUDIT_ARCHIVE``): write-once storage under retention (the evidence store).

This module holds the interfaces, the formats and the reading and checking of checkpoints;
``audit.checkpoint_writer`` signs and stores them.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from django.conf import settings
from django.utils.module_loading import import_string

from audit.chain import GENESIS_HASH
from audit.models import AuditCaseCheckpoint

logger = logging.getLogger(__name__)

# Version 2 of the global statement also signs the digest of the checkpoint's case statements
# (``cases_digest``), so that verifying the trail checks one signature a checkpoint rather than one a case
# statement; each case statement stays signed on its own for the case's export. Version 1 (no digest) is
# still read: its case statements are each checked.
CHECKPOINT_FORMAT = "custodia-checkpoint/2"
CHECKPOINT_FORMAT_V1 = "custodia-checkpoint/1"
CASE_CHECKPOINT_FORMAT = "custodia-case-checkpoint/1"
ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
ALGORITHMS = (ED25519, ECDSA_P256_SHA256)


class CheckpointError(Exception):
    """A checkpoint could not be signed, stored or read."""


class CheckpointExists(CheckpointError):
    """The archive already holds a checkpoint under that name: checkpoints are write-once."""


class CheckpointMissing(CheckpointError):
    """The archive holds no checkpoint under that name."""


class CheckpointSigner(abc.ABC):
    """The organisation's checkpoint signing key. The private half never leaves the key store."""

    algorithm: str  # one of ALGORITHMS

    @abc.abstractmethod
    def public_key_bytes(self) -> bytes:
        """Ed25519: the raw 32 bytes; ECDSA P-256: the DER SubjectPublicKeyInfo."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Ed25519: the 64-byte RFC 8032 signature of ``data``; ECDSA P-256: raw r||s over SHA-256(``data``)."""

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key_bytes())


class CheckpointArchive(abc.ABC):
    """Write-once storage of checkpoint documents by name (``000000000001.json``)."""

    @abc.abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` once; CheckpointExists when the name is taken."""

    @abc.abstractmethod
    def get(self, name: str) -> bytes:
        """The document under ``name``; CheckpointMissing when there is none."""

    @abc.abstractmethod
    def list(self) -> list[str]:
        """Every name in the archive, in lexical (and so numeric) order."""


def get_signer() -> CheckpointSigner:
    return import_string(settings.CUSTODIA_AUDIT_SIGNER)(**settings.CUSTODIA_AUDIT_SIGNER_OPTIONS)


def get_archive() -> CheckpointArchive:
    return import_string(settings.CUSTODIA_AUDIT_ARCHIVE)(**settings.CUSTODIA_AUDIT_ARCHIVE_OPTIONS)


# --- the formats ----------------------------------------------------------------------------------


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def checkpoint_name(number: int) -> str:
    return f"{number:012d}.json"


def number_of(name: str) -> int | None:
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix == "json" and len(stem) == 12 and stem.isdigit():
        return int(stem)
    return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class PublicKey:
    algorithm: str
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)

    def as_dict(self) -> dict:
        return {"algorithm": self.algorithm, "public_key": b64(self.public_key), "fingerprint": self.fingerprint}


def signer_public_key(signer: CheckpointSigner | None = None) -> PublicKey:
    signer = signer or get_signer()
    return PublicKey(algorithm=signer.algorithm, public_key=signer.public_key_bytes())


def signature_valid(key: PublicKey, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` signs ``data`` under ``key`` (both algorithms of the contract)."""
    try:
        if key.algorithm == ED25519:
            ed25519.Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, data)
            return True
        if key.algorithm == ECDSA_P256_SHA256:
            public = load_der_public_key(key.public_key)
            if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
                return False
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError, TypeError):
        return False
    return False


def case_statements_digest(statement_texts: list[str]) -> str:
    """SHA-256 (hex) of a checkpoint's case statements, in the document's order, one a line."""
    return hashlib.sha256("\n".join(statement_texts).encode("utf-8")).hexdigest()


def signed_entry(signer: CheckpointSigner, statement: bytes) -> dict:
    """A statement with its signature, as the archive document and the export carry it."""
    return {
        "statement": statement.decode("utf-8"),
        "signature": b64(signer.sign(statement)),
        "algorithm": signer.algorithm,
    }


# --- reading --------------------------------------------------------------------------------------


@dataclass
class ArchivedCheckpoint:
    number: int
    statement_text: str
    statement: dict
    signature: bytes
    algorithm: str
    cases: list[dict] = field(default_factory=list)  # {"statement_text", "statement", "signature", "algorithm"}

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.statement_text.encode("utf-8")).hexdigest()


@dataclass
class ArchiveReport:
    checkpoints: list[ArchivedCheckpoint]
    problem: str = ""


def _parse_signed(entry: Any) -> tuple[str, dict, bytes, str]:
    if not isinstance(entry, dict):
        raise ValueError("a signed statement must be an object")
    text, signature, algorithm = entry.get("statement"), entry.get("signature"), entry.get("algorithm")
    if not isinstance(text, str) or not isinstance(signature, str) or not isinstance(algorithm, str):
        raise ValueError("a signed statement needs statement, signature and algorithm")
    statement = json.loads(text)
    if not isinstance(statement, dict):
        raise ValueError("a statement must be an object")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signature is not base64") from None
    return text, statement, raw_signature, algorithm


def read_archive(*, keys: list[PublicKey], archive: CheckpointArchive | None = None) -> ArchiveReport:
    """Every checkpoint of the archive, each signature checked under ``keys`` and each ``previous`` link
    followed; stops at the first problem (the checkpoints before it are returned)."""
    archive = archive or get_archive()
    by_fingerprint = {key.fingerprint: key for key in keys}
    found: list[ArchivedCheckpoint] = []
    previous_digest = GENESIS_HASH
    for expected, name in enumerate(archive.list(), start=1):
        number = number_of(name)
        if number is None:
            return ArchiveReport(found, f"the archive holds {name!r}, which is not a checkpoint name")
        if number != expected:
            return ArchiveReport(found, f"checkpoint {expected} is missing from the archive (the next is {number})")
        try:
            document = json.loads(archive.get(name))
            text, statement, signature, algorithm = _parse_signed(document["global"])
            cases = [
                dict(zip(("statement_text", "statement", "signature", "algorithm"), _parse_signed(entry), strict=True))
                for entry in document["cases"]
            ]
        except (KeyError, TypeError, ValueError, CheckpointError) as error:
            return ArchiveReport(found, f"checkpoint {number} is unreadable: {error}")
        checkpoint = ArchivedCheckpoint(number, text, statement, signature, algorithm, cases)
        problem = _statement_problem(checkpoint, by_fingerprint, previous_digest)
        if problem:
            return ArchiveReport(found, f"checkpoint {number}: {problem}")
        found.append(checkpoint)
        previous_digest = checkpoint.digest
    return ArchiveReport(found)


def _signature_problem(text: str, statement: dict, signature: bytes, algorithm: str, keys: dict[str, PublicKey]) -> str:
    key = keys.get(statement.get("key_fingerprint", ""))
    if key is None:
        return f"signed by an unknown key {statement.get('key_fingerprint')!r}"
    if key.algorithm != algorithm:
        return f"says {algorithm}, but key {key.fingerprint[:16]}… is {key.algorithm}"
    if not signature_valid(key, text.encode("utf-8"), signature):
        return f"the signature does not verify under key {key.fingerprint[:16]}…"
    return ""


def _statement_problem(checkpoint: ArchivedCheckpoint, keys: dict[str, PublicKey], previous_digest: str) -> str:
    statement = checkpoint.statement
    version = statement.get("format")
    if version not in (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_V1) or statement.get("checkpoint") != checkpoint.number:
        return "the statement is not this checkpoint's"
    if not isinstance(statement.get("sequence"), int) or not isinstance(statement.get("hash"), str):
        return "the statement names no sequence and hash"
    problem = _signature_problem(checkpoint.statement_text, statement, checkpoint.signature, checkpoint.algorithm, keys)
    if problem:
        return problem
    if statement.get("previous") != previous_digest:
        return "its previous link does not match the checkpoint before it"
    # Version 2 signs the case statements' digest: they are bound by the signature just checked.
    bound = version == CHECKPOINT_FORMAT
    if bound and statement.get("cases_digest") != case_statements_digest(
        [entry["statement_text"] for entry in checkpoint.cases]
    ):
        return "its case statements are not the ones it signed"
    for entry in checkpoint.cases:
        case_statement = entry["statement"]
        if (
            case_statement.get("format") != CASE_CHECKPOINT_FORMAT
            or case_statement.get("checkpoint") != checkpoint.number
        ):
            return "a case statement is not this checkpoint's"
        if bound:
            continue
        problem = _signature_problem(
            entry["statement_text"], case_statement, entry["signature"], entry["algorithm"], keys
        )
        if problem:
            return f"case {case_statement.get('case')}: {problem}"
    return ""


def case_checkpoint_entries(
    *, case_id: int, through_case_sequence: int | None = None, archive: CheckpointArchive | None = None
) -> list[dict]:
    """The signed statements of one case, in checkpoint order, read from the archive (the index table
    only says which checkpoints to read), up to those that sign ``through_case_sequence``.
    Each: ``{"statement", "signature", "algorithm", "key_fingerprint"}``."""
    archive = archive or get_archive()
    heads = AuditCaseCheckpoint.objects.filter(case_id=case_id)
    if through_case_sequence is not None:
        heads = heads.filter(case_sequence__lte=through_case_sequence)
    entries = []
    for number in heads.order_by("checkpoint_id").values_list("checkpoint_id", flat=True):
        document = json.loads(archive.get(checkpoint_name(number)))
        for entry in document["cases"]:
            statement = json.loads(entry["statement"])
            if statement.get("case") == case_id:
                entries.append(
                    {
                        "statement": entry["statement"],
                        "signature": entry["signature"],
                        "algorithm": entry["algorithm"],
                        "key_fingerprint": statement.get("key_fingerprint"),
                    }
                )
    return entries
