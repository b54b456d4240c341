"""An uploaded E01's own stored MD5, checked at sealing as a server import's is (issue #18 item 10).

An EWF image carries the MD5 (and often the SHA-1) of the media it holds. A server import decodes the
media from the files on disk and compares; an upload has only its received chunks, so they are read here,
decrypted one at a time, as the single segment libewf opens. A mismatch or a damaged image fails the
evidence item (audited) exactly as for an import; without libewf the check is recorded as not made.
"""

from __future__ import annotations

import io
from typing import Any, cast

from cases.models import User
from custodia.errors import Conflict
from evidence.container.format import chunk_key
from evidence.container.reader import ChunkOpener
from evidence.intake.errors import FormatError, MissingDependency
from evidence.intake.ewf import verify_ewf_media
from evidence.models import Evidence, EvidenceChunk
from evidence.services.registration import data_key_for
from evidence.services.sealing import record_failed
from evidence.storage.base import get_store


class ReceivedChunksFile(io.RawIOBase):
    """The received bytes of an unsealed upload as a seekable file, each chunk decrypted when read (the
    last one kept, as libewf reads a chunk's sections in small steps)."""

    def __init__(self, *, evidence: Evidence):
        super().__init__()
        self._evidence_id = evidence.pk
        self._size = cast(int, evidence.size)
        self._chunk_size = evidence.chunk_size
        self._opener = ChunkOpener(evidence_id=evidence.pk, data_key=data_key_for(evidence))
        self._store = get_store()
        self._chunks = {
            index: (attempt, plain_length)
            for index, attempt, plain_length in EvidenceChunk.objects.filter(evidence=evidence).values_list(
                "index", "attempt", "plain_length"
            )
        }
        self._cached: tuple[int, bytes] | None = None
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _plaintext(self, index: int) -> bytes:
        if self._cached is None or self._cached[0] != index:
            attempt, plain_length = self._chunks[index]
            stored = self._store.read(chunk_key(self._evidence_id, index, attempt))
            self._cached = (index, self._opener.open(index=index, stored=stored, plain_length=plain_length))
        return self._cached[1]

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._offset)
        if wanted <= 0:
            return 0
        index, within = divmod(self._offset, self._chunk_size)
        data = self._plaintext(index)[within : within + wanted]
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._offset
        elif whence == io.SEEK_END:
            offset += self._size
        if offset < 0:
            raise ValueError("negative seek position")
        self._offset = offset
        return offset

    def tell(self) -> int:
        return self._offset

    def get_size(self) -> int:  # what libewf's file-object bridge asks for
        return self._size


def check_uploaded_ewf(*, actor: User, evidence: Evidence) -> dict:
    """Decode an uploaded E01's media and compare it with the MD5 the image stores: the check's record for
    ``format_details["ewf_check"]``; a `Conflict` (the item marked failed, audited) when it does not match
    or the image is damaged."""
    reader = io.BufferedReader(ReceivedChunksFile(evidence=evidence), buffer_size=1 << 20)
    try:
        check = verify_ewf_media(segments=[reader])
    except MissingDependency as exc:
        return {"checked": False, "reason": exc.detail}
    except FormatError as exc:
        record_failed(
            actor=actor, evidence=evidence, action="evidence.seal", reason=f"The E01 image is damaged: {exc.detail}"
        )
        raise Conflict(f"The E01 image is damaged: {exc.detail}", code="ewf_damaged") from exc
    result = {
        "checked": True,
        "stored_md5": check.stored_md5,
        "media_md5": check.computed_md5,
        "stored_sha1": check.stored_sha1,
        "media_sha1": check.computed_sha1,
        "media_size": check.media_size,
        "matches": check.matches,
    }
    if check.matches is False:
        record_failed(
            actor=actor,
            evidence=evidence,
            action="evidence.seal",
            reason=f"The E01's stored MD5 {check.stored_md5} differs from its media's MD5 {check.computed_md5}.",
            details={"ewf": result},
        )
        raise Conflict("The E01's own stored MD5 does not match its media.", code="ewf_hash_mismatch")
    return result
