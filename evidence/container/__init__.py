"""The sealed evidence container: the one at-rest format of evidence (see docs/container.md).

Chunks of the acquired bytes, each compressed (zstd) and encrypted (AES-256-GCM) under a per-evidence data
key, bound to their evidence item and position; an index of the chunks; a manifest of acquisition facts and
whole-image hashes. Pure Python: no Django models; the store is any ``EvidenceStore``.
"""

from evidence.container.errors import (
    ChunkConflict,
    ChunkIntegrityError,
    ContainerError,
    ContainerFormatError,
    ContainerIncomplete,
    HashMismatch,
    IndexIntegrityError,
)
from evidence.container.format import (
    CHUNK_SIZE,
    ChunkRecord,
    ContainerIndex,
    ImageHashes,
    Manifest,
    chunk_key,
    evidence_prefix,
    index_key,
    manifest_key,
)
from evidence.container.reader import ContainerReader, SealedEvidenceFile, open_container
from evidence.container.verify import VerificationReport, verify_container
from evidence.container.writer import ChunkSealer, ContainerWriter, MultiHasher, SealedChunk, SealResult, seal_stream

__all__ = [
    "CHUNK_SIZE",
    "ChunkConflict",
    "ChunkIntegrityError",
    "ChunkRecord",
    "ChunkSealer",
    "ContainerError",
    "ContainerFormatError",
    "ContainerIncomplete",
    "ContainerIndex",
    "ContainerReader",
    "ContainerWriter",
    "HashMismatch",
    "ImageHashes",
    "IndexIntegrityError",
    "Manifest",
    "MultiHasher",
    "SealResult",
    "SealedChunk",
    "SealedEvidenceFile",
    "VerificationReport",
    "chunk_key",
    "evidence_prefix",
    "index_key",
    "manifest_key",
    "open_container",
    "seal_stream",
    "verify_container",
]
