"""Storage-media extraction: walk an image read through a Python file object and yield its traces.

Layers, each a trace: the evidence image (EWF, VHD, VHDX, VMDK, qcow2 or raw, decoded by dfVFS and the
libyal bindings) → partition tables (MBR with nested extended partitions, GPT, … via The Sleuth Kit) or
other volume systems (LVM, APFS containers, Core Storage via dfVFS) → encrypted volumes (BitLocker and
LUKS, unlocked with the evidence's escrowed secrets) → volume shadow copies → file systems → folders and
files, allocated and deleted, with every data stream (NTFS alternate data streams included).

The file-system walk uses pytsk3 directly (dfVFS's TSK back-end skips deleted names): the same listing
``fls -r -p`` gives, so The Sleuth Kit's own output is the answer key. File systems TSK cannot read
(APFS, XFS, …) are walked through dfVFS's file entries.

Every stream is read once, in large blocks, and every tool runs on that one read: MD5, SHA-1, SHA-256,
Shannon entropy and the MIME type of its first bytes.

Determinism: children are ordered by a stable key (partitions by start, directory entries by name bytes
then inode), a child's uid is its parent's uid plus its ordinal, and no value depends on time, load or
the order in which a library happens to return entries. Two walks of the same bytes give equal traces.

The package, one module a layer, in the order a walk meets them:

- ``walk``: ``walk_image`` and the driver ``Walk``, which picks the layer that reads each run of bytes;
- ``images``: the evidence itself (storage media image formats, or one file acquired alone);
- ``nested``: disk images found inside files, walked as child sources under the evidence's budget;
- ``volumes``: partition tables (TSK) and the volume systems dfVFS walks;
- ``encrypted``: encrypted volumes, unlocked through ``search.extraction.unlock``;
- ``file_systems_tsk`` and ``file_systems_dfvfs``: folders and files;
- ``reader`` (hashing, entropy, the order traces leave in) and ``mime`` (typing, extension mismatch):
  what is done with every stream read;
- ``options`` (``WalkOptions``) and ``common`` (tool references and helpers the layers share).
"""

from search.extraction.unlock import Secret, normalise_secrets
from search.extraction.walker.common import TOOL_DFVFS, TOOL_PYTSK3, iso8601
from search.extraction.walker.encrypted import TOOL_LUKS1
from search.extraction.walker.file_systems_tsk import NTFS_BAD_CLUSTERS_INODE
from search.extraction.walker.mime import TOOL_MAGIC, MimeSniffer, extension_mismatch
from search.extraction.walker.nested import NestedRoot
from search.extraction.walker.options import MIB, WalkOptions
from search.extraction.walker.reader import TOOL_HASHES, StreamDigest
from search.extraction.walker.walk import Walk, walk_image

__all__ = [
    "MIB",
    "NTFS_BAD_CLUSTERS_INODE",
    "TOOL_DFVFS",
    "TOOL_HASHES",
    "TOOL_LUKS1",
    "TOOL_MAGIC",
    "TOOL_PYTSK3",
    "MimeSniffer",
    "NestedRoot",
    "Secret",
    "StreamDigest",
    "Walk",
    "WalkOptions",
    "extension_mismatch",
    "iso8601",
    "normalise_secrets",
    "walk_image",
]
