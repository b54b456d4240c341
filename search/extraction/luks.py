"""LUKS1 in Python, for the volumes libluksde cannot open (e.g. 128-bit aes-cbc-essiv:sha256 keys).

libluksde 20260902 refuses 128-bit master keys ("unsupported master key size"), yet cryptsetup made such
volumes by default for years. This module recovers the master key from a passphrase exactly as
cryptsetup does (PBKDF2 → key-material decryption → anti-forensic merge → digest check) and exposes the
decrypted payload as a dfVFS layer, ``CUSTODIA_LUKS1``, so the walk and the data service read it like any
other layer: sector by sector, on demand, never into a temporary copy.

Ciphers: AES in cbc-essiv:<hash>, cbc-plain, cbc-plain64, xts-plain64 and ecb (the modes cryptsetup
offers for AES in LUKS1). The passphrase reaches the layer through dfVFS's key chain, as BitLocker's do.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dfvfs.credentials import credentials as dfvfs_credentials
from dfvfs.credentials import manager as credentials_manager
from dfvfs.file_io import file_io
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory as path_spec_factory
from dfvfs.path import path_spec as dfvfs_path_spec
from dfvfs.resolver import resolver as dfvfs_resolver
from dfvfs.resolver_helpers import manager as resolver_helper_manager
from dfvfs.resolver_helpers import resolver_helper

TYPE_INDICATOR_LUKS1 = "CUSTODIA_LUKS1"
SECTOR_SIZE = 512
LUKS_MAGIC = b"LUKS\xba\xbe"
KEY_SLOT_ENABLED = 0x00AC71F3
_HEADER = struct.Struct(">6sH32s32s32sII20s32sI40s")
_KEY_SLOT = struct.Struct(">II32sII")


@dataclass(frozen=True)
class KeySlot:
    iterations: int
    salt: bytes
    key_material_offset: int
    stripes: int


@dataclass(frozen=True)
class Luks1Header:
    cipher_name: str
    cipher_mode: str
    hash_spec: str
    payload_offset: int  # sectors
    key_bytes: int
    master_key_digest: bytes
    master_key_salt: bytes
    master_key_iterations: int
    uuid: str
    key_slots: tuple[KeySlot, ...]


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def parse_header(data: bytes) -> Luks1Header | None:
    """The LUKS1 header at the start of ``data`` (592 bytes suffice), or None if it is not LUKS1."""
    if len(data) < _HEADER.size + 8 * _KEY_SLOT.size or not data.startswith(LUKS_MAGIC):
        return None
    (_, version, cipher, mode, hash_spec, payload, key_bytes, digest, salt, iterations, uuid) = _HEADER.unpack_from(
        data
    )
    if version != 1:
        return None
    slots = []
    for index in range(8):
        active, slot_iterations, slot_salt, material_offset, stripes = _KEY_SLOT.unpack_from(
            data, _HEADER.size + index * _KEY_SLOT.size
        )
        if active == KEY_SLOT_ENABLED:
            slots.append(KeySlot(slot_iterations, slot_salt, material_offset, stripes))
    return Luks1Header(
        cipher_name=_text(cipher),
        cipher_mode=_text(mode),
        hash_spec=_text(hash_spec),
        payload_offset=payload,
        key_bytes=key_bytes,
        master_key_digest=digest,
        master_key_salt=salt,
        master_key_iterations=iterations,
        uuid=_text(uuid),
        key_slots=tuple(slots),
    )


class SectorCipher:
    """Decrypts sectors numbered from the start of the encrypted area, as dm-crypt does.

    ``sector_size`` is the unit encrypted as one (512 in LUKS1; 512 or 4096 in LUKS2); as in dm-crypt
    without ``iv_large_sectors`` (what cryptsetup sets up for LUKS2), IVs count 512-byte sectors, and
    ``iv_offset`` (LUKS2's ``iv_tweak``) is added to each."""

    def __init__(self, *, cipher_name: str, cipher_mode: str, key: bytes, sector_size: int = SECTOR_SIZE, iv_offset=0):
        self.sector_size = sector_size
        self.iv_offset = iv_offset
        if cipher_name.lower() != "aes":
            raise ValueError(f"unsupported LUKS cipher {cipher_name!r} (only aes)")
        self.mode = cipher_mode.lower()
        self.key = key
        if self.mode.startswith("cbc-essiv:"):
            essiv_key = hashlib.new(self.mode.split(":", 1)[1], key).digest()
            self._essiv = Cipher(algorithms.AES(essiv_key), modes.ECB()).encryptor()  # noqa: S305 - ESSIV is ECB
        elif self.mode not in ("cbc-plain", "cbc-plain64", "xts-plain64", "ecb"):
            raise ValueError(f"unsupported LUKS cipher mode {cipher_mode!r}")

    def decrypt(self, data: bytes, *, first_sector: int) -> bytes:
        if self.mode == "ecb":
            decryptor = Cipher(algorithms.AES(self.key), modes.ECB()).decryptor()  # noqa: S305 - the volume's mode
            return decryptor.update(data) + decryptor.finalize()
        plain = bytearray()
        for index in range(0, len(data), self.sector_size):
            # IVs count 512-byte sectors whatever the unit: ``first_sector`` is one too.
            sector = self.iv_offset + first_sector + index // SECTOR_SIZE
            block = data[index : index + self.sector_size]
            if self.mode == "xts-plain64":
                cipher = Cipher(algorithms.AES(self.key), modes.XTS(struct.pack("<Q", sector) + bytes(8)))
            else:
                if self.mode == "cbc-plain":
                    iv = struct.pack("<I", sector & 0xFFFFFFFF) + bytes(12)
                elif self.mode == "cbc-plain64":
                    iv = struct.pack("<Q", sector) + bytes(8)
                else:
                    iv = self._essiv.update(struct.pack("<Q", sector) + bytes(8))
                cipher = Cipher(algorithms.AES(self.key), modes.CBC(iv))
            decryptor = cipher.decryptor()
            plain += decryptor.update(block) + decryptor.finalize()
        return bytes(plain)


def diffuse(data: bytes, hash_name: str) -> bytes:
    digest_size = hashlib.new(hash_name).digest_size
    out = bytearray()
    for index in range(0, len(data), digest_size):
        block = data[index : index + digest_size]
        out += hashlib.new(hash_name, struct.pack(">I", index // digest_size) + block).digest()[: len(block)]
    return bytes(out)


def af_merge(material: bytes, *, key_bytes: int, stripes: int, hash_name: str) -> bytes:
    merged = bytes(key_bytes)
    for stripe in range(stripes - 1):
        block = material[stripe * key_bytes : (stripe + 1) * key_bytes]
        merged = diffuse(bytes(a ^ b for a, b in zip(merged, block, strict=True)), hash_name)
    last = material[(stripes - 1) * key_bytes : stripes * key_bytes]
    return bytes(a ^ b for a, b in zip(merged, last, strict=True))


def read_at(file_object, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of a seekable file object."""
    file_object.seek(offset, os.SEEK_SET)
    return file_object.read(size)


def recover_master_key(*, file_object, passphrase: str | bytes) -> bytes | None:
    """The volume's master key if ``passphrase`` opens one of its key slots, else None."""
    header = parse_header(read_at(file_object, 0, 1024))
    if header is None:
        return None
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    for slot in header.key_slots:
        slot_key = hashlib.pbkdf2_hmac(header.hash_spec, secret, slot.salt, slot.iterations, header.key_bytes)
        material_size = header.key_bytes * slot.stripes
        padded = -(-material_size // SECTOR_SIZE) * SECTOR_SIZE
        encrypted = read_at(file_object, slot.key_material_offset * SECTOR_SIZE, padded)
        cipher = SectorCipher(cipher_name=header.cipher_name, cipher_mode=header.cipher_mode, key=slot_key)
        material = cipher.decrypt(encrypted, first_sector=0)[:material_size]
        candidate = af_merge(material, key_bytes=header.key_bytes, stripes=slot.stripes, hash_name=header.hash_spec)
        check = hashlib.pbkdf2_hmac(
            header.hash_spec, candidate, header.master_key_salt, header.master_key_iterations, 20
        )
        if check == header.master_key_digest:
            return candidate
    return None


# ---------------------------------------------------------------------- the dfVFS layer


class Luks1PathSpec(dfvfs_path_spec.PathSpec):
    """The decrypted payload of a LUKS1 volume; the passphrase comes from dfVFS's key chain."""

    TYPE_INDICATOR = TYPE_INDICATOR_LUKS1

    def __init__(self, parent=None, **kwargs):
        if not parent:
            raise ValueError("Missing parent value.")
        super().__init__(parent=parent, **kwargs)

    @property
    def comparable(self):
        return self._GetComparable()


class Luks1Credentials(dfvfs_credentials.Credentials):
    CREDENTIALS = frozenset(["password"])
    TYPE_INDICATOR = TYPE_INDICATOR_LUKS1


class Luks1FileIO(file_io.FileIO):
    """Decrypts the sectors a read touches, and only those."""

    def __init__(self, resolver_context, path_spec):
        super().__init__(resolver_context, path_spec)
        self._encrypted = None
        self._cipher: SectorCipher | None = None
        self._payload_start = 0
        self._size = 0
        self._offset = 0

    def _Open(self, mode="rb"):
        parent = dfvfs_resolver.Resolver.OpenFileObject(self._path_spec.parent, resolver_context=self._resolver_context)
        header = parse_header(read_at(parent, 0, 1024))
        if header is None:
            raise OSError("not a LUKS1 volume")
        passphrase = dfvfs_resolver.Resolver.key_chain.GetCredential(self._path_spec, "password")
        master_key = recover_master_key(file_object=parent, passphrase=passphrase) if passphrase else None
        if master_key is None:
            raise dfvfs_errors.AccessError("LUKS1 volume is locked: no passphrase opens a key slot")
        self._encrypted = parent
        self._cipher = SectorCipher(cipher_name=header.cipher_name, cipher_mode=header.cipher_mode, key=master_key)
        self._payload_start = header.payload_offset * SECTOR_SIZE
        self._size = max(parent.get_size() - self._payload_start, 0)
        self._offset = 0

    def open_payload(self, *, encrypted, cipher: SectorCipher, payload_start: int, size: int) -> None:
        """Read ``size`` bytes at ``payload_start`` of ``encrypted`` through ``cipher`` (a subclass's _Open)."""
        self._encrypted = encrypted
        self._cipher = cipher
        self._payload_start = payload_start
        self._size = size
        self._offset = 0

    def _Close(self):
        self._encrypted = None
        self._cipher = None

    def read(self, size=None):
        if not self._is_open:
            raise OSError("Not opened.")
        end = self._size if size is None or size < 0 else min(self._offset + size, self._size)
        if end <= self._offset:
            return b""
        unit = self._cipher.sector_size
        first_unit = self._offset // unit
        last_unit = (end + unit - 1) // unit
        encrypted = read_at(self._encrypted, self._payload_start + first_unit * unit, (last_unit - first_unit) * unit)
        whole_units = len(encrypted) - len(encrypted) % unit
        plain = self._cipher.decrypt(encrypted[:whole_units], first_sector=first_unit * unit // SECTOR_SIZE)
        start = self._offset - first_unit * unit
        data = plain[start : start + (end - self._offset)]
        self._offset += len(data)
        return data

    def seek(self, offset, whence=os.SEEK_SET):
        if not self._is_open:
            raise OSError("Not opened.")
        if whence == os.SEEK_CUR:
            offset += self._offset
        elif whence == os.SEEK_END:
            offset += self._size
        if offset < 0:
            raise OSError("Invalid offset value less than zero.")
        self._offset = offset

    def get_offset(self):
        return self._offset

    def get_size(self):
        return self._size


class Luks1ResolverHelper(resolver_helper.ResolverHelper):
    TYPE_INDICATOR = TYPE_INDICATOR_LUKS1

    def NewFileObject(self, resolver_context, path_spec):
        return Luks1FileIO(resolver_context, path_spec)


def _register_with_dfvfs() -> None:
    if TYPE_INDICATOR_LUKS1 not in path_spec_factory.Factory._path_spec_types:
        path_spec_factory.Factory.RegisterPathSpec(Luks1PathSpec)
    try:
        resolver_helper_manager.ResolverHelperManager.GetHelper(TYPE_INDICATOR_LUKS1)
    except KeyError:
        resolver_helper_manager.ResolverHelperManager.RegisterHelper(Luks1ResolverHelper())
    # KeyError: already registered by an earlier import.
    with contextlib.suppress(KeyError):
        credentials_manager.CredentialsManager.RegisterCredentials(Luks1Credentials())


_register_with_dfvfs()
