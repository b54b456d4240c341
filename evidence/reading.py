"""The door through which the search app reads evidence: its acquired bytes and its escrowed secrets.

Search (extraction and the data service) never reaches past this module into the evidence app's store,
key store, container or intake: it opens a sealed item with :func:`open_acquired`, which decrypts chunks on
demand (no decrypted copy is ever written), and asks :func:`unlock_credentials` for the secrets that unlock
the encrypted volumes inside it. Besides this module, search imports from evidence only ``evidence.models``,
``evidence.selectors`` and ``evidence.signals`` (the signals evidence sends, such as ``evidence_sealed``,
are a door the other way round: evidence announces, search listens). ``tests/test_architecture.py`` holds
the line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import BinaryIO, TypedDict, cast

from custodia.errors import ServiceError
from evidence.container.reader import open_container
from evidence.intake.errors import FormatError
from evidence.intake.ewf import EWF1_SIGNATURES, EWF2_SIGNATURES, ewf_segment_suffix, parse_ewf_suffix
from evidence.intake.formats import ImageFormat, detect_format, slice_segments
from evidence.models import Evidence, SecretKind
from evidence.selectors import evidence_parent_chain
from evidence.services.escrow import secret_values_for_extraction
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store

# The one table from an escrowed secret's kind to the credential that unlocks its volume, named as libbde
# and libluksde (through dfVFS's key chain) name them. A LUKS passphrase is what libluksde calls a password.
# Kinds not listed (a document password) unlock no volume.
SECRET_KIND_CREDENTIALS: Mapping[str, str] = {
    SecretKind.BITLOCKER_PASSWORD: "password",
    SecretKind.BITLOCKER_RECOVERY: "recovery_password",
    SecretKind.BITLOCKER_STARTUP_KEY: "startup_key",
    SecretKind.LUKS_PASSPHRASE: "password",
}
# A startup key is the bytes of a .BEK file; every other credential is text.
BINARY_CREDENTIALS = frozenset({"startup_key"})
# The name an item acquired without a file name is read under.
DEFAULT_FILE_NAME = "image.raw"
# The suffix each format's library wants a lone file to carry (libewf refuses "image.raw": "invalid segment
# file extension"); a file named otherwise is read under its stem and this suffix.
FORMAT_SUFFIXES: Mapping[str, str] = {
    ImageFormat.EWF: ".E01",
    ImageFormat.VHD: ".vhd",
    ImageFormat.VHDX: ".vhdx",
    ImageFormat.VMDK: ".vmdk",
    ImageFormat.QCOW2: ".qcow2",
}


class UnlockCredential(TypedDict):
    """One escrowed secret as the walker takes it: ``kind`` a credential name, ``value`` text or bytes."""

    kind: str
    value: str | bytes


@dataclass(frozen=True)
class AcquiredEvidence:
    """A sealed evidence item opened for reading, as it was acquired.

    ``reader`` is the whole item's bytes (every segment one after the other), a seekable binary file object
    with ``get_size()``. ``files`` are the files the item was acquired as, by name, each a file object over
    its part of ``reader``: one file, or an E01's segments (``image.E01``, ``image.E02``…), which readers
    of the image find beside the first by name. ``first_name`` names the file to start reading from.
    ``acquired_alone`` is true for one file acquired by itself (a mailbox, an archive, a document) in which
    intake found no storage media.
    """

    reader: BinaryIO
    files: Mapping[str, BinaryIO]
    first_name: str
    acquired_alone: bool
    # The names the files came with (for display), in the order of ``files``; ``files`` are keyed by the
    # names they are read under (``presented_names``).
    original_names: tuple[str, ...] = ()
    # The names the parents of a linked differencing disk are read under (each also in ``files``).
    parent_names: tuple[str, ...] = ()

    @property
    def related_files(self) -> dict[str, BinaryIO]:
        """The files other than the first (the further segments), by name."""
        return {name: file_object for name, file_object in self.files.items() if name != self.first_name}


@contextmanager
def open_acquired(*, evidence: Evidence) -> Iterator[AcquiredEvidence]:
    """Open a sealed evidence item's acquired bytes for the ``with`` block; closed when it ends.

    The data key is unwrapped for this opening only (ServiceError ``keystore_unavailable`` when the key
    store cannot); the container checks every chunk's hash as it reads it. A differencing disk linked to
    its parents (``evidence.services.chain``) comes with each parent's sealed bytes among its ``files``,
    under the name the child looks it up by, so the image libraries find them beside it."""
    with ExitStack() as stack:
        reader = stack.enter_context(
            open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store())
        )
        acquired = _acquired(evidence=evidence, reader=reader)
        parents: dict[str, BinaryIO] = {}
        for link in evidence_parent_chain(evidence=evidence):
            parent = link["evidence"]
            name = link["read_as"]
            if name in acquired.files or name in parents:
                raise ServiceError(
                    f"The parent {parent.label!r} would be read as {name!r}, a name the chain already uses.",
                    code="parent_name_clash",
                )
            parents[name] = stack.enter_context(
                open_container(evidence_id=parent.pk, data_key=data_key_for(parent), store=get_store())
            )
        if parents:
            acquired = replace(acquired, files={**acquired.files, **parents}, parent_names=tuple(parents))
        yield acquired


def presented_names(*, image_format: str, names: Sequence[str]) -> list[str]:
    """The names ``names`` (one file, or an image's segments in order) are read under.

    The libraries find a format's files by name: libewf wants ``.E01``, ``.E02``… and refuses anything
    else, whatever the bytes. An item uploaded without a name (read as ``image.raw``) or under another one
    keeps that name for display; it is read under the detected format's names. Names that already fit are
    kept (a VMDK descriptor's extents are found by the names it gives, so split VMDKs are never renamed).
    """
    names = list(names)
    if image_format == ImageFormat.EWF:
        # Kept only when they number the segments 1, 2, … as libewf does (".raw" parses as a far segment).
        parsed = [parse_ewf_suffix(PurePosixPath(name).suffix) for name in names]
        if all(found is not None and found[1] == index + 1 for index, found in enumerate(parsed)):
            return names
        stem = PurePosixPath(names[0]).stem or "image"
        return [f"{stem}.{ewf_segment_suffix(number=index + 1, family='E')}" for index in range(len(names))]
    suffix = FORMAT_SUFFIXES.get(image_format)
    if suffix is None or len(names) != 1 or PurePosixPath(names[0]).suffix.lower() == suffix.lower():
        return names
    return [f"{PurePosixPath(names[0]).stem or 'image'}{suffix}"]


def _acquired(*, evidence: Evidence, reader: BinaryIO) -> AcquiredEvidence:
    segments = (evidence.format_details or {}).get("segments") or []
    if len(segments) > 1:
        originals = [s["name"] for s in segments]
        names = presented_names(image_format=evidence.format, names=originals)
        slices = slice_segments(stream=reader, sizes=[s["size"] for s in segments], names=names)
        # A StreamSlice is a binary file object (io.RawIOBase), which typing's nominal BinaryIO does not name.
        files = {name: cast(BinaryIO, piece) for name, piece in zip(names, slices, strict=True)}
        return AcquiredEvidence(
            reader=reader, files=files, first_name=names[0], acquired_alone=False, original_names=tuple(originals)
        )
    originals = [name.strip() for name in evidence.original_name.split(",") if name.strip()]
    (name,) = presented_names(image_format=evidence.format, names=[originals[0] if originals else DEFAULT_FILE_NAME])
    alone = evidence.format in (ImageFormat.FILE, ImageFormat.ARCHIVE)
    return AcquiredEvidence(
        reader=reader, files={name: reader}, first_name=name, acquired_alone=alone, original_names=tuple(originals)
    )


def unlock_credentials(*, evidence: Evidence) -> list[UnlockCredential]:
    """The secrets escrowed for the item that unlock volumes, in escrow order, as credentials.

    Read from the key store on each call (never cached); a secret the key store cannot return is left out.
    Text credentials are decoded as UTF-8 (an undecodable byte becomes U+FFFD)."""
    credentials: list[UnlockCredential] = []
    for secret in secret_values_for_extraction(evidence=evidence):
        credential = SECRET_KIND_CREDENTIALS.get(secret["kind"])
        if credential:
            value = secret["value"]
            if credential not in BINARY_CREDENTIALS:
                value = value.decode("utf-8", errors="replace")
            credentials.append({"kind": credential, "value": value})
    return credentials


def document_passwords(*, evidence: Evidence) -> list[tuple[int, str]]:
    """The document passwords escrowed for the item, in escrow order: (escrow id, password as text).

    The id is what a trace records of the password that opened a document; the text never leaves the
    extraction run."""
    return [
        (secret["id"], secret["value"].decode("utf-8", errors="replace"))
        for secret in secret_values_for_extraction(evidence=evidence)
        if secret["kind"] == SecretKind.DOCUMENT_PASSWORD
    ]


def disk_image_format(*, head: bytes, tail: bytes | None, name: str) -> str | None:
    """The storage-media format of a stream found inside evidence (a file on a seized disk, an archive
    member), by intake's signatures: ``ewf``, ``vhd``, ``vhdx``, ``vmdk``, ``qcow2``, or ``raw`` for a
    disk or volume that starts with a partition table or a file system; None for anything else.

    ``head`` is the stream's first bytes (64 KiB finds every signature; 8 KiB all but ISO 9660's), ``tail``
    its last 512 (a fixed VHD's only footer), or None. A name claiming an image format the bytes do not
    bear is no image here (intake refuses such a file; inside evidence it is just a file)."""
    if not _could_be_disk_image(head=head, name=name):
        return None  # most files: decided without running every detector (nor libmagic)
    try:
        detected = detect_format(head=head, tail=tail, name=name)
    except FormatError:
        return None
    if not detected.is_disk_image:
        return None
    if detected.format == ImageFormat.RAW and detected.details.get("layout") in (None, "unknown"):
        return None  # named .img or .dd without any structure: nothing to walk
    if detected.format == ImageFormat.EWF and detected.details.get("segment_number", 1) != 1:
        return None  # a further segment is read with the first, found beside it by name
    return str(detected.format)


# First bytes a disk image may start with (EWF, dynamic VHD, VHDX, VMDK sparse/COWD/descriptor, qcow, LUKS).
_IMAGE_PREFIXES = (
    *EWF1_SIGNATURES,
    *EWF2_SIGNATURES,
    *(b"conectix", b"vhdxfile", b"KDMV", b"COWD", b"# Disk DescriptorFile", b"QFI\xfb", b"LUKS\xba\xbe"),
)
# Names whose format keeps its signature at the end (a fixed VHD) or nowhere (split raw names).
_IMAGE_NAME_SUFFIXES = (".vhd", ".avhd")


def _could_be_disk_image(*, head: bytes, name: str) -> bool:
    """A cheap first look, so that ``detect_format`` runs only on streams that may be images: a known
    prefix, a boot sector's 55 AA, a GPT or LVM label, an ext superblock's magic, or a VHD name."""
    return (
        head.startswith(_IMAGE_PREFIXES)
        or head[510:512] == b"\x55\xaa"
        or head[512:520] in (b"EFI PART", b"LABELONE")
        or head[1080:1082] == b"\x53\xef"
        or head[1024:1026] in (b"H+", b"HX")
        or head[32:36] == b"NXSB"
        or head.startswith(b"XFSB")
        or name.lower().endswith(_IMAGE_NAME_SUFFIXES)
    )
