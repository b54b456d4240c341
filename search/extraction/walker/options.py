"""How to walk one piece of evidence: ``WalkOptions``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from search.extraction.budget import ExtractionBudget
    from search.extraction.walker.nested import NestedRoot

MIB = 1024 * 1024


@dataclass(frozen=True)
class WalkOptions:
    """How to walk one piece of evidence.

    ``file_name`` is the evidence file's name: dfVFS needs it to find an E01's next segments
    (``image.E02``…), a VMDK's extent files and a differencing VHD's parent, which are passed, by name,
    in ``related_files``. ``parents`` is accepted as another name for the same mapping.
    """

    file_name: str = "image.raw"
    # The name the root trace shows: the file name the evidence was acquired or uploaded under, which may
    # differ from ``file_name`` (an E01 uploaded as "disk.bin" is read as "disk.E01"). Empty: ``file_name``.
    root_name: str = ""
    related_files: Mapping[str, BinaryIO] = field(default_factory=dict)
    parents: Mapping[str, BinaryIO] = field(default_factory=dict)
    block_size: int = MIB
    mime_sniff_bytes: int = 8192
    # Hashing whole partitions reads the disk twice; the intake already hashed the image itself.
    hash_volumes: bool = False
    # A decrypted volume's hash is the proof that its secret was right: on by default.
    hash_decrypted_volumes: bool = True
    # TSK for every file system it reads (deleted files, fls-identical paths); dfVFS back-ends otherwise.
    prefer_tsk: bool = True
    max_depth: int = 16
    # libmagic threads (0: sniff in the walking thread). libmagic runs outside the GIL, so its work (the
    # most expensive per-file step) overlaps the walk; results are applied in order, output unchanged.
    mime_threads: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    # (index, count): walk only the share ``index`` of ``count`` worker processes. Each file system's
    # top-level entries are dealt out by ordinal (entry k to share k % count) with their whole subtree;
    # the layers above them (image, volumes, file systems) come from share 0. The union of the shares is
    # exactly the one-worker walk: same traces, uids and properties.
    shard: tuple[int, int] | None = None
    # Hand each file trace its raw stream as read here (``TraceRecord.content``), so that the content tools
    # run on this one read: the bytes themselves up to ``keep_content_max_bytes``, a reader through the
    # walk's open file beyond. Off by default: a walk that only lists and hashes keeps no bytes.
    keep_content: bool = False
    # The evidence is one file acquired alone (a mailbox, an archive, a document), not storage media:
    # its root is a file trace, which the content tools open as they would a file found on a disk.
    root_is_file: bool = False
    keep_content_max_bytes: int = 4 * MIB
    # The evidence item's absolute budget (bytes decompressed, images nested, time), shared with the content
    # tools. With one, disk images found inside files (a .vhd on a seized disk) are walked as child sources
    # within it; without (None: the walker alone, in tests and benchmarks), none is opened.
    budget: ExtractionBudget | None = None
    # Set for the walk of an image found inside an archive member: where its root hangs in the tree.
    root: NestedRoot | None = None
