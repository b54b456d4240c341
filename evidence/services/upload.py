"""Resumable upload and sealing.

The client sends byte ranges (``Content-Range: bytes START-END/TOTAL``) in any order; every range starts on
a chunk boundary and covers whole chunks (the last chunk may be short). Each chunk is sealed (zstd +
AES-256-GCM) and written once to the evidence store as soon as it is complete, and recorded in the
database with the SHA-256 of its plaintext: a dropped connection loses at most the chunk in flight.

MD5, SHA-1 and SHA-256 of the whole image are computed while the bytes are received, in order: a range
that continues the hashed prefix is hashed from the request itself; a range that arrives ahead of a gap is
hashed when the gap closes, from its sealed copy (whose per-chunk SHA-256, taken at receipt, is checked
first). The hash state lives in the database between requests, so any web process can take the next range.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO, cast

from django.db import transaction

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import Conflict, ServiceError
from evidence.container.errors import ContainerError
from evidence.container.format import MAX_CHUNK_ATTEMPT, ChunkRecord, ImageHashes, chunk_key, sha256_hex
from evidence.container.reader import ChunkOpener
from evidence.container.writer import ChunkSealer, ContainerWriter
from evidence.intake.errors import FormatError
from evidence.intake.formats import HEAD_SIZE, TAIL_SIZE, detect_format
from evidence.intake.hashing import ResumableHasher
from evidence.models import Evidence, EvidenceChunk, EvidenceState
from evidence.selectors import evidence_get, evidence_received_ranges
from evidence.services.registration import data_key_for
from evidence.services.sealing import acquisition_facts, record_failed, record_sealed
from evidence.services.upload_ewf import check_uploaded_ewf
from evidence.storage.base import EvidenceStore, ObjectExists, StoreError, get_store

_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")
# The largest evidence item accepted (1 PiB): far beyond any disk, far below the database's 64-bit sizes.
MAX_EVIDENCE_BYTES = 1 << 50


@dataclass(frozen=True)
class ContentRange:
    start: int | None  # None for "bytes */TOTAL" (declares the size only; used for empty evidence)
    end: int | None  # inclusive, as in HTTP
    total: int

    @property
    def length(self) -> int:
        if self.start is None or self.end is None:
            return 0
        return self.end - self.start + 1


def parse_content_range(header: str) -> ContentRange:
    match = _RANGE.match(header.strip())
    if not match:
        raise ServiceError(
            "Send a Content-Range header: 'bytes START-END/TOTAL' (END inclusive), or 'bytes */TOTAL'.",
            code="invalid_range",
        )
    start, end, total = match.groups()
    if len(total) > 20 or int(total) > MAX_EVIDENCE_BYTES:
        raise ServiceError(f"Evidence is at most {MAX_EVIDENCE_BYTES} bytes long.", code="invalid_range")
    total = int(total)
    if start is None:
        return ContentRange(None, None, total)
    start, end = int(start), int(end)
    if end < start or end >= total:
        raise ServiceError(f"Content-Range {header!r} is not within 0..{total - 1}.", code="invalid_range")
    return ContentRange(start, end, total)


def _check_alignment(*, evidence: Evidence, content_range: ContentRange) -> None:
    chunk = evidence.chunk_size
    if content_range.start is None:
        return
    if content_range.start % chunk:
        raise ServiceError(
            f"A range must start on a chunk boundary (a multiple of {chunk} bytes).", code="invalid_range"
        )
    if content_range.end is None:
        return
    stop = content_range.end + 1
    if stop != content_range.total and stop % chunk:
        raise ServiceError(
            f"A range must end on a chunk boundary (a multiple of {chunk} bytes) or at the end of the image.",
            code="invalid_range",
        )


def _read_exactly(stream: BinaryIO, length: int) -> bytes:
    parts, remaining = [], length
    while remaining:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _locked(evidence: Evidence) -> Evidence:
    return Evidence.objects.select_for_update().get(pk=evidence.pk)


def clean_file_name(name: str) -> str:
    """The last part of a client's file name (no folders), without control characters; "" when unusable."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or any(ord(character) < 32 or ord(character) == 127 for character in name):
        return ""
    return name[:500]


@transaction.atomic
def evidence_receive(
    *,
    actor: User,
    evidence: Evidence,
    content_range: ContentRange,
    stream: BinaryIO,
    content_length: int | None = None,
    file_name: str = "",
) -> Evidence:
    """Receive one range of an upload. ``file_name`` is the name of the file the bytes come from (the
    browser's file, ``X-File-Name`` over the API): kept as the item's original name when it has none, so
    the root trace and a link download are named by it."""
    evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.REGISTER_EVIDENCE)
    evidence = _locked(evidence)
    if evidence.state not in (EvidenceState.REGISTERED, EvidenceState.RECEIVING):
        raise Conflict(f"This evidence is {evidence.state}: it accepts no more bytes.", code="not_receiving")
    if evidence.size is not None and content_range.total != evidence.size:
        raise ServiceError(
            f"This evidence is {evidence.size} bytes long; the range says {content_range.total}.", code="invalid_range"
        )
    if evidence.declared_size is not None and content_range.total != evidence.declared_size:
        raise ServiceError(
            f"The declared size is {evidence.declared_size} bytes; the range says {content_range.total}.",
            code="invalid_range",
        )
    _check_alignment(evidence=evidence, content_range=content_range)
    if content_length is not None and content_length != content_range.length:
        raise ServiceError(
            f"The body has {content_length} bytes but the range covers {content_range.length}.", code="invalid_range"
        )
    first_bytes = evidence.state == EvidenceState.REGISTERED
    named = clean_file_name(file_name)
    if named and not evidence.original_name:
        evidence.original_name = named
    evidence.size = content_range.total
    evidence.state = EvidenceState.RECEIVING

    store, data_key = get_store(), data_key_for(evidence)
    chunk_size = evidence.chunk_size
    sealer = ChunkSealer(evidence_id=evidence.pk, data_key=data_key, chunk_size=chunk_size)
    received_now: dict[int, bytes] = {}
    new_chunks = 0
    offset = content_range.start if content_range.start is not None else 0
    stop = offset + content_range.length
    truncated = False
    while offset < stop:
        index = offset // chunk_size
        expected = min(chunk_size, stop - offset)
        plaintext = _read_exactly(stream, expected)
        if len(plaintext) != expected:
            truncated = True  # keep the whole chunks before it; the client resends from here
            break
        digest = hashlib.sha256(plaintext).hexdigest()
        existing = EvidenceChunk.objects.filter(evidence=evidence, index=index).first()
        if existing is not None:
            if existing.sha256 != digest or existing.plain_length != len(plaintext):
                raise Conflict(
                    f"Chunk {index} (bytes {offset}-{offset + expected - 1}) was already received with different "
                    "bytes; an overlapping range must carry identical bytes.",
                    code="overlap_mismatch",
                )
        else:
            stored = sealer.seal(index=index, plaintext=plaintext).stored
            attempt = _put_chunk(
                store=store,
                evidence=evidence,
                index=index,
                stored=stored,
                data_key=data_key,
                digest=digest,
                plain_length=len(plaintext),
            )
            EvidenceChunk.objects.create(
                evidence=evidence,
                index=index,
                plain_length=len(plaintext),
                stored_length=len(stored),
                sha256=digest,
                attempt=attempt,
            )
            evidence.received_bytes += len(plaintext)
            new_chunks += 1
        received_now[index] = plaintext
        offset += expected

    _advance_hashes(evidence=evidence, received_now=received_now, data_key=data_key)
    evidence.save()
    if first_bytes:
        audit_record(
            action="evidence.upload.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"size": evidence.size, "file_name": evidence.original_name},
        )
    if truncated:
        # What arrived whole is kept (and committed with this row); the client resumes from the status.
        audit_record(
            action="evidence.upload.truncated",
            actor=actor,
            outcome="failed",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"range": [content_range.start, content_range.end], "kept_through": offset},
        )
    return evidence


def _put_chunk(
    *,
    store: EvidenceStore,
    evidence: Evidence,
    index: int,
    stored: bytes,
    data_key: bytes,
    digest: str,
    plain_length: int,
) -> int:
    """Store one received chunk (no database row records it yet); return the attempt it is stored as.

    The usual key may already hold a copy written by an earlier request that failed before its row was
    committed: an orphan. The same bytes are simply kept (a retry). Other bytes (the client sent something
    else this time, which it may: nothing was ever recorded) cannot replace it in a write-once store, so
    they are stored as the next attempt (``chunk/NNNNNNNN.aK``), the row and later the index record that
    attempt, and the orphan is named in the audit trail: superseded, kept, never used.
    """
    opener = ChunkOpener(evidence_id=evidence.pk, data_key=data_key)
    for attempt in range(MAX_CHUNK_ATTEMPT + 1):
        key = chunk_key(evidence.pk, index, attempt)
        try:
            store.put(key, stored)
            return attempt
        except ObjectExists:
            existing = store.read(key)
            try:
                previous = opener.open(index=index, stored=existing, plain_length=plain_length)
            except ContainerError:
                previous = None  # another length, or not a chunk of this position: certainly not these bytes
            if previous is not None and hashlib.sha256(previous).hexdigest() == digest:
                return attempt  # these very bytes, from a request that failed after storing them
            audit_record(
                action="evidence.chunk.orphan",
                actor=None,
                target_type="evidence",
                target_id=evidence.pk,
                case_id=evidence.case_id,
                details={
                    "chunk": index,
                    "key": key,
                    "stored_sha256": sha256_hex(existing),
                    "plaintext_sha256": hashlib.sha256(previous).hexdigest() if previous is not None else None,
                    "found": "upload retry with other bytes",
                    "superseded_by": chunk_key(evidence.pk, index, attempt + 1)
                    if attempt < MAX_CHUNK_ATTEMPT
                    else None,
                },
            )
        except StoreError as exc:
            raise ServiceError(
                f"The evidence store refused chunk {index}: {exc}", code="store_unavailable", status_code=503
            ) from exc
    raise Conflict(
        f"Chunk {index} has been sent with different bytes {MAX_CHUNK_ATTEMPT + 1} times; refusing another attempt.",
        code="overlap_mismatch",
    )


def _advance_hashes(*, evidence: Evidence, received_now: dict[int, bytes], data_key: bytes) -> None:
    """Extend the in-order hashed prefix as far as the received chunks reach."""
    chunk_size = evidence.chunk_size
    hasher = ResumableHasher.from_state(bytes(evidence.hasher_state)) if evidence.hasher_state else ResumableHasher()
    store = get_store()
    opener = ChunkOpener(evidence_id=evidence.pk, data_key=data_key)
    advanced = False
    while evidence.hashed_through < (evidence.size or 0):
        index = evidence.hashed_through // chunk_size
        plaintext = received_now.get(index)
        if plaintext is None:
            chunk = EvidenceChunk.objects.filter(evidence=evidence, index=index).first()
            if chunk is None:
                break  # a gap: the rest is hashed when it is filled
            plaintext = opener.open(
                index=index,
                stored=store.read(chunk_key(evidence.pk, index, chunk.attempt)),
                plain_length=chunk.plain_length,
            )
            if hashlib.sha256(plaintext).hexdigest() != chunk.sha256:
                raise ServiceError(
                    f"Chunk {index} no longer matches the hash taken at receipt.", code="integrity", status_code=500
                )
        hasher.update(plaintext)
        evidence.hashed_through += len(plaintext)
        advanced = True
    if advanced or not evidence.hasher_state:
        evidence.hasher_state = hasher.to_state()


def upload_status(*, evidence: Evidence) -> dict:
    received = evidence_received_ranges(evidence=evidence)
    missing, cursor = [], 0
    size = evidence.size
    for start, end in received:
        if start > cursor:
            missing.append([cursor, start])
        cursor = end
    if size is not None and cursor < size:
        missing.append([cursor, size])
    return {
        "state": evidence.state,
        "size": size,
        "chunk_size": evidence.chunk_size,
        "received_bytes": evidence.received_bytes,
        "hashed_through": evidence.hashed_through,
        "received": [[start, end] for start, end in received],
        "missing": missing,
    }


def evidence_seal(*, actor: User, evidence: Evidence) -> Evidence:
    """Close the upload: every byte present and hashed, declared hashes agree; write index and manifest."""
    with transaction.atomic():
        evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.REGISTER_EVIDENCE)
        evidence = _locked(evidence)
        if evidence.is_sealed:
            raise Conflict("This evidence is already sealed.", code="already_sealed")
        if evidence.state == EvidenceState.FAILED:
            raise Conflict(f"This evidence failed: {evidence.failure_reason}", code="failed")
        if evidence.size is None:
            raise ServiceError("Nothing has been uploaded yet.", code="incomplete")
        status = upload_status(evidence=evidence)
        if status["missing"] or evidence.hashed_through != evidence.size:
            first = status["missing"][0] if status["missing"] else [evidence.hashed_through, evidence.size]
            raise ServiceError(
                f"The upload is incomplete: bytes {first[0]}-{first[1] - 1} are missing.",
                code="incomplete",
                extra={"missing": status["missing"]},
            )
        # Every received range saved the hasher's state with it (cast: the column is nullable before the first).
        hashes = ResumableHasher.from_state(bytes(cast(bytes, evidence.hasher_state))).hexdigests()
    mismatches = declared_mismatches(evidence=evidence, hashes=hashes)
    if mismatches:
        algorithm, declared, computed = mismatches[0]
        record_failed(
            actor=actor,
            evidence=evidence,
            action="evidence.seal",
            reason=f"Declared {algorithm} {declared} differs from the computed {computed}.",
            details={"declared": {m[0]: m[1] for m in mismatches}, "computed": hashes},
        )
        # The failure is committed (and audited) before the refusal is reported.
        raise Conflict(
            f"The declared {mismatches[0][0]} does not match the received bytes: declared {mismatches[0][1]}, "
            f"computed {mismatches[0][2]}. The evidence is marked failed.",
            code="hash_mismatch",
        )
    # An E01 carries its media's MD5: checked before sealing, as for a server import (#18 item 10).
    detected = _uploaded_format(evidence=evidence)
    ewf_check = None
    if detected[0] == "ewf":
        ewf_check = check_uploaded_ewf(actor=actor, evidence=evidence)
    return _finish_seal(actor=actor, evidence=evidence, hashes=hashes, detected=detected, ewf_check=ewf_check)


def _uploaded_format(*, evidence: Evidence) -> tuple[str, dict]:
    """The format the received bytes are in, and its details (from the head and tail chunks, once)."""
    if evidence.format:
        return evidence.format, evidence.format_details
    probe = Evidence.objects.get(pk=evidence.pk)
    _detect_uploaded_format(evidence=probe, data_key=data_key_for(probe))
    return probe.format, probe.format_details


def declared_mismatches(*, evidence: Evidence, hashes: dict[str, str]) -> list[tuple[str, str, str]]:
    declared = {"md5": evidence.declared_md5, "sha1": evidence.declared_sha1, "sha256": evidence.declared_sha256}
    return [(name, value, hashes[name]) for name, value in declared.items() if value and value != hashes[name]]


@transaction.atomic
def _finish_seal(
    *,
    actor: User | None,
    evidence: Evidence,
    hashes: dict[str, str],
    detected: tuple[str, dict] | None = None,
    ewf_check: dict | None = None,
) -> Evidence:
    evidence = _locked(evidence)
    data_key = data_key_for(evidence)
    if not evidence.format and detected is not None:
        evidence.format, evidence.format_details = detected
    if not evidence.format:
        _detect_uploaded_format(evidence=evidence, data_key=data_key)
    if ewf_check is not None:
        evidence.format_details = {**evidence.format_details, "ewf_check": ewf_check}
    chunk_size = evidence.chunk_size
    rows = EvidenceChunk.objects.filter(evidence=evidence).order_by("index")
    received = [
        ChunkRecord(
            index=index,
            offset=index * chunk_size,
            plain_length=plain,
            stored_length=stored,
            sha256=digest,
            attempt=attempt,
        )
        for index, plain, stored, digest, attempt in rows.values_list(
            "index", "plain_length", "stored_length", "sha256", "attempt"
        )
    ]
    writer = ContainerWriter(evidence_id=evidence.pk, data_key=data_key, store=get_store(), chunk_size=chunk_size)
    # Each chunk's record was taken from its plaintext when it arrived: the writer need not decrypt every
    # chunk again to learn it (integrity verification re-reads them, on demand and on schedule).
    writer.adopt_records(received)
    try:
        manifest = writer.finish(
            facts=acquisition_facts(evidence=evidence), hashes=ImageHashes(size=cast(int, evidence.size), **hashes)
        )
    except ContainerError as exc:
        raise ServiceError(f"The container could not be finished: {exc}", code="seal_failed", status_code=500) from exc
    return record_sealed(
        actor=actor,
        evidence=evidence,
        hashes=hashes,
        manifest_sha256=sha256_hex(manifest.to_bytes()),
        chunks=len(received),
        details={"ewf_check": ewf_check} if ewf_check is not None else None,
    )


def _detect_uploaded_format(*, evidence: Evidence, data_key: bytes) -> None:
    """Name the format from the first and last bytes received (the chunks, not a second pass)."""
    if not evidence.size:
        evidence.format, evidence.format_details = "file", {"empty": True}
        return
    opener, store = ChunkOpener(evidence_id=evidence.pk, data_key=data_key), get_store()
    last = _last_index(evidence)
    # The tail may straddle the last two chunks when the last one is shorter than the tail.
    wanted = {0, last, max(0, last - 1)}
    chunks = {c.index: c for c in EvidenceChunk.objects.filter(evidence=evidence, index__in=wanted)}

    @functools.cache  # each chunk is read and decrypted once, however many of head and tail it serves
    def plaintext(index: int) -> bytes:
        chunk = chunks[index]
        return opener.open(
            index=index,
            stored=store.read(chunk_key(evidence.pk, index, chunk.attempt)),
            plain_length=chunk.plain_length,
        )

    head = plaintext(0)[:HEAD_SIZE]
    tail = plaintext(last)[-TAIL_SIZE:]  # from the whole last chunk, also when it is the only one
    if last and len(tail) < TAIL_SIZE:
        tail = (plaintext(last - 1) + plaintext(last))[-TAIL_SIZE:]
    try:
        detected = detect_format(head=head, tail=tail, name=evidence.original_name or "")
    except FormatError as exc:
        detected_format, details = "unknown", {"problem": exc.detail}
    else:
        detected_format, details = str(detected.format), detected.details
    evidence.format, evidence.format_details = detected_format, details


def _last_index(evidence: Evidence) -> int:
    return max(0, (cast(int, evidence.size) - 1) // evidence.chunk_size)  # (cast: known once uploading)
