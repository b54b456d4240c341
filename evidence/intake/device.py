"""Read-only acquisition of a local block device or image file: what may be read, and reading it.

What may be acquired (``resolve_acquisition_path``):
- a regular file (an image) below ``CUSTODIA_IMPORT_ROOTS``, under the same rules as a server-side import;
- a block device whose resolved path (``/dev/disk/by-id/…`` links are followed) matches an entry of
  ``CUSTODIA_ACQUIRE_DEVICES``, shell patterns such as ``/dev/sd[b-z]`` or ``/dev/nvme1n1``. The list is
  empty by default: no device can be read until an administrator names the ones meant for evidence
  (never the server's own system disk).
Nothing else: no character devices, FIFOs, directories, or devices outside the list.

Reading (``RecoveringReader``) opens with ``O_RDONLY`` only and never writes, seeks the device's head only
through ``pread``, and reads the whole device from its first to its last byte. A block that fails is
retried ``retries`` times; then it is read again sector by sector, and each sector that still fails is
replaced by zeros and recorded (``errors``), merged into ranges: nothing is silently skipped, and the
stored image keeps every later byte at its own offset (the NIST disk-imaging tool requirements: errors
logged, the remaining data acquired, unreadable sectors filled with a known value). The low-level read is
pluggable (``PositionalSource``) so that tests can inject read errors on given ranges.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from evidence.intake.errors import ImportPathRefused
from evidence.intake.paths import resolve_import_path

SECTOR_SIZE = 512
DEFAULT_BLOCK_SIZE = 1 << 20


class PositionalSource(Protocol):
    """The one low-level operation reading needs: up to ``length`` bytes at ``offset`` (may raise OSError)."""

    def pread(self, length: int, offset: int) -> bytes: ...


@dataclass(frozen=True)
class ResolvedSource:
    """What an acquisition reads: the path to open, whether it is a block device, and its size."""

    path: Path
    is_device: bool
    size: int


class DescriptorSource:
    """``os.pread`` on a descriptor opened read-only (``O_RDONLY``; never a write, never ``O_RDWR``)."""

    def __init__(self, path: Path) -> None:
        flags = os.O_RDONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        self.descriptor = os.open(path, flags)
        mode = os.fstat(self.descriptor).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            os.close(self.descriptor)
            raise ImportPathRefused(
                "it changed while being opened and is no longer a file or block device", path=str(path)
            )
        # The end of a block device is where SEEK_END lands (st_size is 0 for devices).
        self.size = os.lseek(self.descriptor, 0, os.SEEK_END)

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.descriptor, length, offset)

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


def resolve_acquisition_path(*, path: str, roots: Sequence[Path], devices: Sequence[str]) -> ResolvedSource:
    """Return what may be acquired at ``path`` (see the module's docstring), or raise ImportPathRefused."""
    if not path or "\0" in path:
        raise ImportPathRefused("a device path must be a non-empty string without NUL characters", path=path)
    if ".." in Path(path).parts:
        raise ImportPathRefused("'..' is not allowed in device paths", path=path)
    try:
        resolved = Path(path).resolve(strict=True)
        mode = resolved.stat().st_mode
    except OSError:
        resolved, mode = None, 0
    if resolved is not None and stat.S_ISBLK(mode):
        if not any(fnmatch.fnmatchcase(str(resolved), pattern) for pattern in devices):
            raise ImportPathRefused("this block device is not in CUSTODIA_ACQUIRE_DEVICES", path=path)
        with open(resolved, "rb", buffering=0) as device:  # O_RDONLY: only to learn the size
            size = device.seek(0, os.SEEK_END)
        return ResolvedSource(path=resolved, is_device=True, size=size)
    if resolved is not None and not stat.S_ISREG(mode):
        raise ImportPathRefused("it is neither a regular image file nor a block device", path=path)
    # An image file: the import roots' rules (symlinks out of a root, relative names, missing files).
    image = resolve_import_path(path=path, roots=roots)
    return ResolvedSource(path=image, is_device=False, size=image.stat().st_size)


class RecoveringReader(io.RawIOBase):
    """A read-once stream of ``size`` bytes from ``source`` that never fails on a read error: unreadable
    sectors are retried, then zero-filled and recorded in ``errors`` (``{"start", "end", "bytes", "error",
    "attempts"}``, end exclusive, byte offsets, adjacent sectors with the same error merged)."""

    def __init__(
        self,
        *,
        source: PositionalSource,
        size: int,
        retries: int = 3,
        retry_delay: float = 0.0,
        sector_size: int = SECTOR_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if block_size % sector_size:
            raise ValueError("the block size must be a multiple of the sector size")
        self._source = source
        self.size = size
        self.retries = max(0, retries)
        self._retry_delay = retry_delay
        self._sector_size = sector_size
        self._block_size = block_size
        self._sleep = sleep
        self.position = 0
        self.errors: list[dict] = []
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes. A read of a whole block from a block boundary (what sealing asks for, one
        chunk at a time) returns the block's bytes as read from the source, without the two copies that
        ``readinto`` through a caller's buffer costs; any other read goes through ``readinto``."""
        remaining = self.size - self.position
        if size is not None and size >= 0 and remaining > 0 and self.position % self._block_size == 0:
            block_length = min(self._block_size, remaining)
            if size >= block_length:
                block = self._read_block(self.position, block_length)
                self.position += len(block)
                return block
        return super().read(-1 if size is None else size) or b""

    # (The buffer protocol has no type before Python 3.12's collections.abc.Buffer: any writable buffer.)
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        remaining = self.size - self.position
        if remaining <= 0:
            return 0
        # Whole blocks from block boundaries, so that a sector's place in the retries never depends on the
        # caller's read sizes.
        offset_in_block = self.position % self._block_size
        wanted = min(len(target), remaining, self._block_size - offset_in_block)
        block_start = self.position - offset_in_block
        block = self._read_block(block_start, min(self._block_size, self.size - block_start))
        data = block[offset_in_block : offset_in_block + wanted]
        target[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _read_block(self, offset: int, length: int) -> bytes:
        # The caller reads a block in pieces (BufferedReader); the block is read from the device once.
        if self._cached is not None and self._cached[0] == offset:
            return self._cached[1]
        try:
            data = self._read_with_retries(offset, length)
        except OSError:
            data = self._read_sectors(offset, length)
        self._cached = (offset, data)
        return data

    def _read_with_retries(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, re-asking after short reads; OSError after ``retries`` retries."""
        for attempt in range(self.retries + 1):
            try:
                return self._read_fully(offset, length)
            except OSError:
                if attempt == self.retries:
                    raise
                if self._retry_delay:
                    self._sleep(self._retry_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_fully(self, offset: int, length: int) -> bytes:
        parts, done = [], 0
        while done < length:
            part = self._source.pread(length - done, offset + done)
            if not part:
                # The device ended before its size (a medium that shrank or a truncated image).
                raise OSError(errno.EIO, "the source ended before its size")
            parts.append(part)
            done += len(part)
        return b"".join(parts)

    def _read_sectors(self, offset: int, length: int) -> bytes:
        parts = []
        for start in range(offset, offset + length, self._sector_size):
            sector_length = min(self._sector_size, offset + length - start)
            try:
                parts.append(self._read_with_retries(start, sector_length))
            except OSError as error:
                parts.append(bytes(sector_length))
                self._record(start, start + sector_length, error)
        return b"".join(parts)

    def _record(self, start: int, end: int, error: OSError) -> None:
        name = errno.errorcode.get(error.errno or 0, "") or type(error).__name__
        last = self.errors[-1] if self.errors else None
        if last is not None and last["end"] == start and last["error"] == name:
            last["end"] = end
            last["bytes"] = end - last["start"]
            return
        self.errors.append(
            {"start": start, "end": end, "bytes": end - start, "error": name, "attempts": self.retries + 1}
        )
