"""A write-once evidence store in a local folder (the embedded default).

Each object is one file at ``<root>/<key>``. A put writes a hidden temporary file in the target folder
and hard-links it into place: ``link`` fails when the name exists, so an object is never overwritten,
and a reader sees either no file or the whole file. Written files are made read-only (0444).

How an object's bytes reach the disk (``write_mode``, measured in docs/benchmarks.md, "third round"):
``"direct"`` (the default) writes them with ``O_DIRECT`` from a reused, page-aligned buffer, so sealing a
disk image allocates no page cache at all; ``"flushed"`` writes through the page cache and then
calls ``fdatasync`` and drops each object's pages, so the cache stays a few objects deep; ``"buffered"`` leaves
the pages dirty (writeback started) until a durability barrier. Why it matters: on a virtual machine whose
host reclaims the guest's free memory (a balloon with free page reporting, as on this project's machines),
every fresh page the kernel hands out costs a fault in the host; a gigabyte of new page cache cost 5 to 7 s
of CPU there, more than compressing and encrypting it. Whatever the mode, a put outside a durable batch is
on stable storage (file and folder fsync'd) when it returns, and a barrier makes the batch's objects so.

Retention dates and legal holds are recorded by the store itself in ``<root>/.retention/retention.sqlite3``
(SQLite gives atomic updates shared by every process and thread using the folder) and enforced by
``delete``. File permissions alone cannot stop the owner of the folder from removing files; the store
stops every deletion that goes through it, and the folder should be owned by the service account only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

from evidence.storage.base import (
    DurableBatch,
    EvidenceStore,
    ObjectExists,
    ObjectMissing,
    RetentionViolation,
    StoreError,
)

logger = logging.getLogger(__name__)

# Keys are `/`-separated segments of these characters. A segment may not start with a dot, which rules
# out `.` and `..`, hidden files, and the store's own temporary files and `.retention` folder.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_PREFIX_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]*")
_COPY_BLOCK_BYTES = 1024 * 1024
_READ_ONLY = 0o444
_FOLDER_MODE = 0o750
_RETENTION_FOLDER = ".retention"
# fsyncs issued together at a barrier: ext4 folds concurrent fsyncs into one journal commit.
_BARRIER_THREADS = 8
# On Linux, POSIX_FADV_DONTNEED starts asynchronous writeback of a file's dirty pages and drops its clean
# ones, which a sealed chunk no longer needs in memory.
_DROP_PAGES = getattr(os, "POSIX_FADV_DONTNEED", None)
_O_DIRECT = getattr(os, "O_DIRECT", 0)
# O_DIRECT wants the buffer's address, the file offset and the length aligned to the device's logical block
# (512 bytes here); a page (4 KiB) suits every Linux filesystem and device that accepts O_DIRECT at all.
_DIRECT_ALIGNMENT = mmap.PAGESIZE
# The page-aligned buffer each writing thread copies an object through, one piece after the other.
_DIRECT_BUFFER_BYTES = 1024 * 1024

WRITE_DIRECT = "direct"
WRITE_FLUSHED = "flushed"
WRITE_BUFFERED = "buffered"
WRITE_MODES = (WRITE_DIRECT, WRITE_FLUSHED, WRITE_BUFFERED)


def validate_key(key: str) -> str:
    """Return ``key`` when it is a safe relative object name, else raise StoreError."""
    if not isinstance(key, str) or not key:
        raise StoreError("an object key must be a non-empty string")
    if key.startswith("/"):
        raise StoreError("an object key must not start with '/'")
    segments = key.split("/")
    if any(not _KEY_SEGMENT.fullmatch(segment) for segment in segments):
        # Name the rule, not the key, in case a caller put something sensitive into it.
        raise StoreError(
            "an object key must be '/'-separated segments of [A-Za-z0-9._-] that do not start with '.' "
            "(no empty segments, no '..')"
        )
    return key


def validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_CHARACTERS.fullmatch(prefix) or prefix.startswith("/"):
        raise StoreError("a key prefix may contain only [A-Za-z0-9._/-] and must not start with '/'")
    if ".." in prefix.split("/"):
        raise StoreError("a key prefix must not contain '..'")
    return prefix


def today_utc() -> date:
    return datetime.now(UTC).date()


class LocalWormStore(EvidenceStore):
    """Write-once files under ``root``; retention and legal hold enforced by the store itself."""

    def __init__(self, *, root: str | Path, write_mode: str = WRITE_DIRECT) -> None:
        if write_mode not in WRITE_MODES:
            raise StoreError(f"write_mode must be one of {', '.join(WRITE_MODES)}")
        self.write_mode = write_mode
        # Cleared the first time the filesystem refuses O_DIRECT (tmpfs on older kernels, some FUSE mounts):
        # from then on this store writes as in "flushed" mode.
        self._direct_works = write_mode == WRITE_DIRECT and bool(_O_DIRECT)
        self._direct_buffers = threading.local()
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=_FOLDER_MODE)
        self._retention_folder = self.root / _RETENTION_FOLDER
        self._retention_folder.mkdir(exist_ok=True, mode=_FOLDER_MODE)
        self._retention_database = self._retention_folder / "retention.sqlite3"
        # SQLite serialises writers across processes; the lock keeps this process's threads from
        # tripping over "database is locked" while another thread holds a write transaction.
        self._retention_lock = threading.Lock()
        # Open durable batches by key prefix: a put under one of them skips its fsyncs (durable_batch).
        self._batches: list[LocalDurableBatch] = []
        self._batches_lock = threading.Lock()
        with self._retention_connection() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS retention ("
                " prefix TEXT PRIMARY KEY,"
                " until TEXT,"  # ISO date or NULL
                " legal_hold INTEGER NOT NULL DEFAULT 0,"
                " updated_at TEXT NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"LocalWormStore(root={str(self.root)!r}, write_mode={self.write_mode!r})"

    # --- objects ----------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        target = self._path(key)
        if target.exists():
            raise ObjectExists(f"object already written: {key}")
        with self._batches_lock:
            batches = [batch for batch in self._batches if key.startswith(batch.prefix)]
        try:
            self._put_new_file(target, data, length=length, key=key, durable=not batches)
        except _SourceFailed as failure:
            # The caller's stream broke (a dropped upload): re-raise its own error, not a storage error.
            raise failure.source_error from None
        except OSError as error:
            # Disk full, a key that runs through an existing object, permissions: say so, leave nothing.
            raise StoreError(f"could not write {key}: {error.strerror or error}") from None
        for batch in batches:
            batch.note_unsynced(key)

    @contextlib.contextmanager
    def durable_batch(self, *, prefix: str) -> Iterator[DurableBatch]:
        """Puts under ``prefix`` skip both fsyncs (file, folder) until ``sync``: see EvidenceStore."""
        batch = LocalDurableBatch(store=self, prefix=validate_prefix(prefix))
        with self._batches_lock:
            self._batches.append(batch)
        try:
            yield batch
            batch.sync()
        finally:
            with self._batches_lock:
                self._batches.remove(batch)

    def sync_objects(self, keys: Iterable[str]) -> None:
        """fsync each object's file, then each of their folders once (names reach the disk too)."""
        paths = sorted({self._path(key) for key in keys})
        if not paths:
            return
        folders = sorted({path.parent for path in paths})
        try:
            with ThreadPoolExecutor(
                max_workers=min(_BARRIER_THREADS, len(paths)), thread_name_prefix="custodia-fsync"
            ) as pool:
                for _ in pool.map(_fsync_file, paths):
                    pass
                for _ in pool.map(_fsync_folder, folders):
                    pass
        except FileNotFoundError:
            raise ObjectMissing("an object to make durable is missing") from None
        except OSError as error:
            raise StoreError(f"could not make objects durable: {error.strerror or error}") from None

    def _put_new_file(
        self, target: Path, data: bytes | BinaryIO, *, length: int | None, key: str, durable: bool = True
    ) -> None:
        target.parent.mkdir(parents=True, exist_ok=True, mode=_FOLDER_MODE)
        temporary = target.parent / f".tmp-{uuid.uuid4().hex}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                if isinstance(data, bytes | bytearray | memoryview) and self._direct_works:
                    view = memoryview(data).cast("B")
                    written = self._write_direct(descriptor, view if length is None else view[:length])
                else:
                    written = _write_all(descriptor, data, length=length)
                if length is not None and written != length:
                    raise StoreError(f"short write for {key}: expected {length} bytes, got {written}")
                self._settle(descriptor, durable=durable)
                os.fchmod(descriptor, _READ_ONLY)
            finally:
                os.close(descriptor)
            try:
                # link() refuses an existing name atomically, unlike rename(), which would replace it.
                os.link(temporary, target)
            except FileExistsError:
                raise ObjectExists(f"object already written: {key}") from None
            if durable:
                _fsync_folder(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _settle(self, descriptor: int, *, durable: bool) -> None:
        """After the bytes are written: make them durable now (outside a batch), or get them on their way
        to the disk without leaving the page cache to grow (inside one; the barrier's fsync does the rest)."""
        if durable:
            os.fsync(descriptor)
        elif self.write_mode == WRITE_BUFFERED:
            if _DROP_PAGES is not None:
                # Starts writeback now, without waiting: the barrier's fsync finds little left to do.
                os.posix_fadvise(descriptor, 0, 0, _DROP_PAGES)
            return
        elif not self._direct_works:  # "flushed", or "direct" on a filesystem that refused O_DIRECT
            # Data only: the barrier's fsync writes the inode (size, mode) and the folder entry.
            os.fdatasync(descriptor)
        # The pages are clean now: drop them, so that the next objects reuse memory the kernel already has
        # instead of fresh pages (which cost a host fault each on a ballooned virtual machine).
        if _DROP_PAGES is not None:
            os.posix_fadvise(descriptor, 0, 0, _DROP_PAGES)

    def _write_direct(self, descriptor: int, view: memoryview) -> int:
        """Write ``view`` with O_DIRECT through this thread's aligned buffer, the unaligned tail (under one
        page) through the page cache; fall back to plain writes if the filesystem refuses O_DIRECT."""
        aligned_length = len(view) - len(view) % _DIRECT_ALIGNMENT
        written = 0
        if aligned_length:
            try:
                fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) | _O_DIRECT)
                buffer = self._direct_buffer()
                while written < aligned_length:
                    piece = min(len(buffer), aligned_length - written)
                    buffer[:piece] = view[written : written + piece]
                    done = os.write(descriptor, memoryview(buffer)[:piece])
                    written += done
                    if done % _DIRECT_ALIGNMENT:
                        break  # a short, unaligned write: the rest goes through the page cache
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                # This filesystem (or its alignment rules) refuses O_DIRECT: nothing was written by the
                # refused call; write this object and every later one through the page cache.
                logger.info("O_DIRECT refused in the evidence store: writing through the page cache")
                self._direct_works = False
            fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~_O_DIRECT)
        return written + _write_all(descriptor, view[written:], length=None)

    def _direct_buffer(self) -> mmap.mmap:
        # An anonymous mapping is page-aligned; one per thread, reused for every object that thread writes.
        buffer = getattr(self._direct_buffers, "buffer", None)
        if buffer is None:
            buffer = self._direct_buffers.buffer = mmap.mmap(-1, _DIRECT_BUFFER_BYTES)
        return buffer

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise StoreError("offset and length must not be negative")
        path = self._path(key)
        try:
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectMissing(f"no object: {key}") from None
        try:
            size = os.fstat(descriptor).st_size
            end = size if length is None else min(size, offset + length)
            chunks: list[bytes] = []
            position = offset
            while position < end:
                # pread does not move a shared file offset, so concurrent readers need no lock.
                chunk = os.pread(descriptor, min(end - position, 16 * _COPY_BLOCK_BYTES), position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(descriptor)

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(f"no object: {key}") from None
        if not path.is_file():
            raise ObjectMissing(f"no object: {key}")
        return stat.st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        # Walk only the deepest folder the prefix names in full, not the whole store.
        folder_part = prefix.rpartition("/")[0]
        start = self.root / folder_part if folder_part else self.root
        if not start.is_dir():
            return iter(())
        keys: list[str] = []
        for folder, subfolders, files in os.walk(start):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            relative_folder = os.path.relpath(folder, self.root)
            for name in files:
                if name.startswith("."):
                    continue
                key = name if relative_folder == "." else f"{relative_folder}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(f"no object: {key}")
        protection = self.protection(key)
        if protection is not None:
            raise RetentionViolation(f"cannot delete {key}: {protection}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise ObjectMissing(f"no object: {key}") from None
        _fsync_folder(path.parent)

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy one object to a new key (write-once like any put)."""
        source = self._path(source_key)
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed below, after put streams from it
        except FileNotFoundError:
            raise ObjectMissing(f"no object: {source_key}") from None
        with handle:
            self.put(target_key, handle, length=os.fstat(handle.fileno()).st_size)

    # --- retention and legal hold -----------------------------------------------------------------

    @contextlib.contextmanager
    def _retention_connection(self) -> Iterator[sqlite3.Connection]:
        with self._retention_lock:
            connection = sqlite3.connect(self._retention_database, timeout=30, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            finally:
                connection.close()
        with contextlib.suppress(OSError):
            os.chmod(self._retention_database, 0o600)

    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        """Record retention for ``prefix``. ``until=None`` keeps the recorded date (if any); an earlier
        date than the recorded one is refused. The legal hold is set or lifted as given."""
        validate_prefix(prefix)
        with self._retention_connection() as connection:
            row = connection.execute("SELECT until FROM retention WHERE prefix = ?", (prefix,)).fetchone()
            recorded_until = date.fromisoformat(row[0]) if row and row[0] else None
            if recorded_until is not None and until is not None and until < recorded_until:
                raise RetentionViolation(
                    f"retention of {prefix!r} runs until {recorded_until.isoformat()}: it can be extended, "
                    f"never shortened (asked for {until.isoformat()})"
                )
            new_until = until if until is not None else recorded_until
            connection.execute(
                "INSERT INTO retention (prefix, until, legal_hold, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(prefix) DO UPDATE SET until = excluded.until, legal_hold = excluded.legal_hold,"
                " updated_at = excluded.updated_at",
                (
                    prefix,
                    new_until.isoformat() if new_until else None,
                    int(bool(legal_hold)),
                    datetime.now(UTC).isoformat(),
                ),
            )
        logger.info(
            "retention set",
            extra={"prefix": prefix, "until": new_until.isoformat() if new_until else None, "legal_hold": legal_hold},
        )

    def protection(self, key: str) -> str | None:
        """Why ``key`` may not be deleted now (a retention date ahead or a legal hold), or None."""
        with self._retention_connection() as connection:
            rows = connection.execute(
                "SELECT prefix, until, legal_hold FROM retention WHERE substr(?, 1, length(prefix)) = prefix",
                (key,),
            ).fetchall()
        reasons = []
        today = today_utc()
        for prefix, until, legal_hold in sorted(rows):
            if legal_hold:
                reasons.append(f"legal hold on {prefix!r}")
            if until and date.fromisoformat(until) > today:
                reasons.append(f"retention on {prefix!r} until {until}")
        return "; ".join(reasons) or None

    def check_ready(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"evidence folder {self.root} does not exist")
        probe = self.root / f".tmp-ready-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise StoreError(f"evidence folder {self.root} is not writable: {error.strerror}") from None
        try:
            with self._retention_connection() as connection:
                connection.execute("SELECT count(*) FROM retention").fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"retention records under {self._retention_folder} are unusable: {error}") from None


class LocalDurableBatch(DurableBatch):
    """Keys put without fsync under one prefix of a LocalWormStore, until the barrier syncs them."""

    def __init__(self, *, store: LocalWormStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self._unsynced: set[str] = set()
        self._lock = threading.Lock()

    def note_unsynced(self, key: str) -> None:
        with self._lock:
            self._unsynced.add(key)

    def sync(self, keys: Iterable[str] = ()) -> None:
        with self._lock:
            pending = set(self._unsynced)
        self.store.sync_objects(pending | set(keys))
        with self._lock:
            self._unsynced -= pending


def _fsync_file(path: Path) -> None:
    # fsync through a read-only descriptor flushes the file's data and inode all the same (Linux, POSIX).
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _SourceFailed(Exception):
    """Marks an OSError raised by the caller's stream, as opposed to one from writing the file."""

    def __init__(self, source_error: OSError) -> None:
        super().__init__(str(source_error))
        self.source_error = source_error


def _write_all(descriptor: int, data: bytes | BinaryIO, *, length: int | None) -> int:
    """Write ``data`` (bytes or a binary file object, at most ``length`` bytes) and return the count."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        if length is not None:
            view = view[:length]
        written = 0
        while written < len(view):
            written += os.write(descriptor, view[written:])
        return written
    written = 0
    while length is None or written < length:
        wanted = _COPY_BLOCK_BYTES if length is None else min(_COPY_BLOCK_BYTES, length - written)
        try:
            block = data.read(wanted)
        except OSError as error:
            raise _SourceFailed(error) from error
        if not block:
            break
        view = memoryview(block)
        offset = 0
        while offset < len(view):
            offset += os.write(descriptor, view[offset:])
        written += len(block)
    return written


def _fsync_folder(folder: Path) -> None:
    # A new or removed name survives a crash only once its folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
