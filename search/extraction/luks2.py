"""LUKS2 in Python: the JSON metadata, PBKDF2 and Argon2i/Argon2id key slots, AES payloads.

libluksde reads LUKS1 only: given a LUKS2 volume it fails with internal messages ("unable to close
volume … missing file IO handle"). This module reads LUKS2 as cryptsetup does (cryptsetup's
docs/on-disk-format-luks2.pdf): the binary header and its JSON area (the copy with the higher sequence id
whose SHA checksum is right), then, for a passphrase, each key slot's KDF (PBKDF2, or Argon2i/Argon2id
through argon2-cffi's low-level API) → key-area decryption → anti-forensic merge → digest check; the
volume key decrypts the crypt segment sector by sector, exposed to dfVFS as the layer
``CUSTODIA_LUKS2`` (read on demand, never copied).

Ciphers: AES in xts-plain64 (cryptsetup's LUKS2 default), cbc-essiv:<hash>, cbc-plain, cbc-plain64 and
ecb; 512- to 4096-byte sectors. Others (serpent, twofish, authenticated segments) are described but
refused with a clear message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from argon2 import exceptions as argon2_exceptions
from argon2 import low_level as argon2_low_level
from dfvfs.credentials import credentials as dfvfs_credentials
from dfvfs.credentials import manager as credentials_manager
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory as path_spec_factory
from dfvfs.path import path_spec as dfvfs_path_spec
from dfvfs.resolver import resolver as dfvfs_resolver
from dfvfs.resolver_helpers import manager as resolver_helper_manager
from dfvfs.resolver_helpers import resolver_helper

from search.extraction.luks import LUKS_MAGIC, SECTOR_SIZE, Luks1FileIO, SectorCipher, af_merge, read_at

TYPE_INDICATOR_LUKS2 = "CUSTODIA_LUKS2"
# The binary header: magic, version, header size, sequence id, label, checksum algorithm, salt, UUID,
# subsystem, header offset, padding, checksum (cryptsetup's struct luks2_hdr_disk).
_BINARY_HEADER = struct.Struct(">6sHQQ48s32s64s40s48sQ184s64s")
_CHECKSUM_OFFSET = _BINARY_HEADER.size - 64
_JSON_OFFSET = 4096  # the binary header is padded to 4 KiB; the JSON area follows it
_SECONDARY_OFFSETS = (0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000)
_ARGON2_TYPES = {"argon2i": argon2_low_level.Type.I, "argon2id": argon2_low_level.Type.ID}
# Bounds on what a header may ask for (a damaged or hostile one must not cost hours or all the memory).
# cryptsetup writes 4000 stripes, keys up to 64 bytes, Argon2 memory up to 4 GiB (the format's limit) and
# iteration counts it benchmarked for a few seconds on the machine that made the volume.
_MAX_STRIPES = 65_536
_MAX_KEY_BYTES = 256
_MAX_PBKDF2_ITERATIONS = 100_000_000
_MAX_ARGON2_TIME = 1_000
_MAX_ARGON2_MEMORY_KIB = 4 * 1024 * 1024
_MAX_ARGON2_THREADS = 64


class Luks2Error(ValueError):
    """A LUKS2 volume this module cannot read, in words fit for an examiner (never a library's)."""


@dataclass(frozen=True)
class Luks2KeySlot:
    identifier: str
    key_size: int  # of the volume key it holds
    kdf: dict[str, Any]
    area_offset: int
    area_size: int
    area_encryption: str
    area_key_size: int
    af_stripes: int
    af_hash: str
    priority: int


@dataclass(frozen=True)
class Luks2Segment:
    offset: int
    size: int | None  # None: "dynamic", to the end of the device
    encryption: str
    sector_size: int
    iv_tweak: int


@dataclass(frozen=True)
class Luks2Header:
    uuid: str
    label: str
    sequence_id: int
    key_slots: tuple[Luks2KeySlot, ...]
    segment: Luks2Segment
    digests: tuple[dict[str, Any], ...]

    @property
    def kdf_types(self) -> list[str]:
        return sorted({slot.kdf.get("type", "") for slot in self.key_slots})


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _header_copy(file_object, offset: int) -> tuple[int, dict, bytes, tuple] | None:
    """(sequence id, JSON metadata, raw bytes, binary fields) of the header copy at ``offset``, if valid."""
    head = read_at(file_object, offset, _BINARY_HEADER.size)
    if len(head) < _BINARY_HEADER.size or not head.startswith(LUKS_MAGIC):
        return None
    fields = _BINARY_HEADER.unpack(head)
    _, version, header_size, sequence_id, _, checksum_algorithm, *_ = fields
    if version != 2 or not 0x4000 <= header_size <= 0x400000:
        return None
    raw = read_at(file_object, offset, header_size)
    if len(raw) < header_size:
        return None
    algorithm = _text(checksum_algorithm) or "sha256"
    try:
        checksum = hashlib.new(algorithm)
    except ValueError:
        return None
    checksum.update(raw[:_CHECKSUM_OFFSET] + bytes(64) + raw[_CHECKSUM_OFFSET + 64 :])
    if fields[-1][: checksum.digest_size] != checksum.digest():
        return None
    try:
        metadata = json.loads(raw[_JSON_OFFSET:].split(b"\0")[0])
    except ValueError:
        return None
    return sequence_id, metadata, raw, fields


def is_luks2(file_object) -> bool:
    """Whether the bytes start with a LUKS header of version 2 (checked or not)."""
    head = read_at(file_object, 0, 8)
    return head[:6] == LUKS_MAGIC and struct.unpack(">H", head[6:8])[0] == 2


def parse_header(file_object) -> Luks2Header:
    """The volume's LUKS2 header: the valid copy (primary or secondary) with the higher sequence id."""
    copies = [_header_copy(file_object, 0)]
    primary = copies[0]
    secondary_offsets = [primary[3][2]] if primary else list(_SECONDARY_OFFSETS)
    copies.extend(_header_copy(file_object, offset) for offset in secondary_offsets)
    valid = [copy for copy in copies if copy is not None]
    if not valid:
        raise Luks2Error("the LUKS2 header is damaged: neither copy has a valid checksum")
    sequence_id, metadata, _, fields = max(valid, key=lambda copy: copy[0])
    try:
        return _header_from(metadata=metadata, fields=fields, sequence_id=sequence_id)
    except (KeyError, TypeError, ValueError) as error:
        raise Luks2Error(f"the LUKS2 metadata is not as the format describes it ({type(error).__name__})") from None


def _header_from(*, metadata: dict, fields: tuple, sequence_id: int) -> Luks2Header:
    slots = []
    for identifier, slot in sorted(metadata.get("keyslots", {}).items(), key=lambda item: int(item[0])):
        if slot.get("type") != "luks2":
            continue  # reencryption slots hold no volume key
        area = slot["area"]
        slots.append(
            Luks2KeySlot(
                identifier=identifier,
                key_size=int(slot["key_size"]),
                kdf=dict(slot["kdf"]),
                area_offset=int(area["offset"]),
                area_size=int(area["size"]),
                area_encryption=str(area["encryption"]),
                area_key_size=int(area["key_size"]),
                af_stripes=int(slot["af"]["stripes"]),
                af_hash=str(slot["af"]["hash"]),
                priority=int(slot.get("priority", 1)),
            )
        )
    # "ignore" (0) slots are tried last, "prefer" (2) first, as cryptsetup does.
    slots.sort(key=lambda slot: (-slot.priority if slot.priority else 1, int(slot.identifier)))
    crypt_segments = [
        (int(key), segment) for key, segment in metadata.get("segments", {}).items() if segment.get("type") == "crypt"
    ]
    if not crypt_segments:
        raise Luks2Error("the LUKS2 volume has no encrypted data segment")
    _, segment = min(crypt_segments)
    if segment.get("integrity"):
        raise Luks2Error("authenticated LUKS2 segments (dm-integrity) are not supported")
    return Luks2Header(
        uuid=_text(fields[7]),
        label=_text(fields[4]),
        sequence_id=sequence_id,
        key_slots=tuple(slots),
        segment=Luks2Segment(
            offset=int(segment["offset"]),
            size=None if segment["size"] == "dynamic" else int(segment["size"]),
            encryption=str(segment["encryption"]),
            sector_size=int(segment.get("sector_size", SECTOR_SIZE)),
            iv_tweak=int(segment.get("iv_tweak", "0")),
        ),
        digests=tuple(dict(digest) for digest in metadata.get("digests", {}).values()),
    )


def describe(file_object) -> dict[str, Any]:
    """What a LUKS2 header tells without the passphrase: UUID, label, cipher, sector size, key slots."""
    header = parse_header(file_object)
    properties: dict[str, Any] = {
        "encryptedVolume.identifier": header.uuid,
        "encryptedVolume.version": 2,
        "encryptedVolume.cipher": header.segment.encryption,
        "encryptedVolume.sectorSize": header.segment.sector_size,
        "encryptedVolume.keySlots": len(header.key_slots),
        "encryptedVolume.keyDerivation": header.kdf_types,
    }
    if header.label:
        properties["encryptedVolume.label"] = header.label
    return properties


def sector_cipher(encryption: str, *, key: bytes, sector_size: int = SECTOR_SIZE, iv_offset: int = 0) -> SectorCipher:
    """A cipher for cryptsetup's ``aes-xts-plain64``-style specification, or a clear refusal."""
    name, _, mode = encryption.partition("-")
    try:
        return SectorCipher(cipher_name=name, cipher_mode=mode, key=key, sector_size=sector_size, iv_offset=iv_offset)
    except ValueError:
        raise Luks2Error(f"the cipher {encryption!r} is not supported (AES modes only)") from None


def _derive(kdf: dict[str, Any], secret: bytes, length: int) -> bytes:
    salt = base64.b64decode(kdf["salt"])
    kind = kdf["type"]
    if kind == "pbkdf2":
        if not 0 < int(kdf["iterations"]) <= _MAX_PBKDF2_ITERATIONS:
            raise Luks2Error("the key slot's PBKDF2 iteration count is out of range: the header is damaged")
        return hashlib.pbkdf2_hmac(kdf["hash"], secret, salt, int(kdf["iterations"]), length)
    if kind in _ARGON2_TYPES:
        if not (
            0 < int(kdf["time"]) <= _MAX_ARGON2_TIME
            and 0 < int(kdf["memory"]) <= _MAX_ARGON2_MEMORY_KIB
            and 0 < int(kdf["cpus"]) <= _MAX_ARGON2_THREADS
        ):
            raise Luks2Error(f"the key slot's {kind} parameters are out of range: the header is damaged")
        try:
            return argon2_low_level.hash_secret_raw(
                secret=secret,
                salt=salt,
                time_cost=int(kdf["time"]),
                memory_cost=int(kdf["memory"]),  # KiB, as LUKS2 stores it
                parallelism=int(kdf["cpus"]),
                hash_len=length,
                type=_ARGON2_TYPES[kind],
            )
        except argon2_exceptions.HashingError:
            raise Luks2Error(f"the key slot's {kind} parameters cannot be computed") from None
    raise Luks2Error(f"the key derivation {kind!r} is not supported")


def _digest_matches(header: Luks2Header, slot: Luks2KeySlot, candidate: bytes) -> bool:
    for digest in header.digests:
        if digest.get("type") != "pbkdf2" or slot.identifier not in digest.get("keyslots", []):
            continue
        expected = base64.b64decode(digest["digest"])
        check = hashlib.pbkdf2_hmac(
            digest["hash"], candidate, base64.b64decode(digest["salt"]), int(digest["iterations"]), len(expected)
        )
        if check == expected:
            return True
    return False


def recover_volume_key(*, file_object, passphrase: str | bytes) -> bytes | None:
    """The volume key if ``passphrase`` opens one of the volume's key slots, else None.

    ``Luks2Error`` (in an examiner's words) when the header cannot be used."""
    try:
        return _recover_volume_key(file_object=file_object, passphrase=passphrase)
    except (KeyError, TypeError, OverflowError) as error:  # a key slot or digest missing what the format requires
        raise Luks2Error(f"a key slot or digest of the LUKS2 header is incomplete ({type(error).__name__})") from None


def _recover_volume_key(*, file_object, passphrase: str | bytes) -> bytes | None:
    header = parse_header(file_object)
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    for slot in header.key_slots:
        if not (0 < slot.key_size <= _MAX_KEY_BYTES and 0 < slot.area_key_size <= _MAX_KEY_BYTES):
            raise Luks2Error("a key slot's key size is out of range: the header is damaged")
        if not 0 < slot.af_stripes <= _MAX_STRIPES:
            raise Luks2Error("a key slot's anti-forensic stripe count is out of range: the header is damaged")
        slot_key = _derive(slot.kdf, secret, slot.area_key_size)
        material_size = slot.key_size * slot.af_stripes
        padded = -(-material_size // SECTOR_SIZE) * SECTOR_SIZE
        if padded > slot.area_size:
            continue  # a slot whose area cannot hold its key material is damaged
        cipher = sector_cipher(slot.area_encryption, key=slot_key)
        material = cipher.decrypt(read_at(file_object, slot.area_offset, padded), first_sector=0)[:material_size]
        candidate = af_merge(material, key_bytes=slot.key_size, stripes=slot.af_stripes, hash_name=slot.af_hash)
        if _digest_matches(header, slot, candidate):
            return candidate
    return None


# ---------------------------------------------------------------------- the dfVFS layer


class Luks2PathSpec(dfvfs_path_spec.PathSpec):
    """The decrypted data segment of a LUKS2 volume; the passphrase comes from dfVFS's key chain."""

    TYPE_INDICATOR = TYPE_INDICATOR_LUKS2

    def __init__(self, parent=None, **kwargs):
        if not parent:
            raise ValueError("Missing parent value.")
        super().__init__(parent=parent, **kwargs)

    @property
    def comparable(self):
        return self._GetComparable()


class Luks2Credentials(dfvfs_credentials.Credentials):
    CREDENTIALS = frozenset(["password"])
    TYPE_INDICATOR = TYPE_INDICATOR_LUKS2


class Luks2FileIO(Luks1FileIO):
    """Decrypts the sectors a read touches, and only those (the LUKS1 layer's reads, LUKS2's header)."""

    def _Open(self, mode="rb"):
        parent = dfvfs_resolver.Resolver.OpenFileObject(self._path_spec.parent, resolver_context=self._resolver_context)
        try:
            header = parse_header(parent)
            passphrase = dfvfs_resolver.Resolver.key_chain.GetCredential(self._path_spec, "password")
            volume_key = recover_volume_key(file_object=parent, passphrase=passphrase) if passphrase else None
        except Luks2Error as error:
            raise OSError(str(error)) from None
        if volume_key is None:
            raise dfvfs_errors.AccessError("LUKS2 volume is locked: no passphrase opens a key slot")
        segment = header.segment
        size = segment.size if segment.size is not None else max(parent.get_size() - segment.offset, 0)
        cipher = sector_cipher(
            segment.encryption, key=volume_key, sector_size=segment.sector_size, iv_offset=segment.iv_tweak
        )
        self.open_payload(encrypted=parent, cipher=cipher, payload_start=segment.offset, size=size)


class Luks2ResolverHelper(resolver_helper.ResolverHelper):
    TYPE_INDICATOR = TYPE_INDICATOR_LUKS2

    def NewFileObject(self, resolver_context, path_spec):
        return Luks2FileIO(resolver_context, path_spec)


def _register_with_dfvfs() -> None:
    if TYPE_INDICATOR_LUKS2 not in path_spec_factory.Factory._path_spec_types:
        path_spec_factory.Factory.RegisterPathSpec(Luks2PathSpec)
    try:
        resolver_helper_manager.ResolverHelperManager.GetHelper(TYPE_INDICATOR_LUKS2)
    except KeyError:
        resolver_helper_manager.ResolverHelperManager.RegisterHelper(Luks2ResolverHelper())
    with contextlib.suppress(KeyError):  # already registered by an earlier import
        credentials_manager.CredentialsManager.RegisterCredentials(Luks2Credentials())


_register_with_dfvfs()
