"""Reading hash set files: the digests a file lists, as (algorithm, digest bytes), whatever its format.

Three formats, told apart by their first bytes:

* NSRL RDSv3 (a SQLite database, ``SQLite format 3``): the ``FILE`` table's ``sha256``, ``sha1`` and
  ``md5`` columns;
* CSV with a header naming hash columns: the legacy NSRL RDS ``NSRLFile.txt`` (``"SHA-1","MD5","CRC32",…``)
  and any export with ``md5``, ``sha1``/``sha-1`` or ``sha256``/``sha-256`` columns;
* a plain list, one hex digest a line (md5, sha1 or sha256, told by its length), blank lines and ``#``
  comments skipped, anything after the digest on its line ignored (``sha256sum`` output reads as is).

A line that is none of these is an error naming its line: an import takes a whole file or nothing.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from hashsets.models import ALGORITHM_BY_DIGEST_BYTES, HashAlgorithm

SQLITE_MAGIC = b"SQLite format 3\x00"
# Header names (lower-case, without quotes, spaces and hyphens) of the columns a CSV's digests are in.
CSV_HASH_COLUMNS = {"md5": HashAlgorithm.MD5, "sha1": HashAlgorithm.SHA1, "sha256": HashAlgorithm.SHA256}
RDSV3_COLUMNS = (("sha256", HashAlgorithm.SHA256), ("sha1", HashAlgorithm.SHA1), ("md5", HashAlgorithm.MD5))
HEX_LENGTHS = {2 * size: algorithm for size, algorithm in ALGORITHM_BY_DIGEST_BYTES.items()}
# A line longer than this is no hash list's: refused rather than held in memory.
MAX_LINE_CHARS = 64 * 1024


class HashFileError(ValueError):
    """The file is not a hash set this module reads; the message says where and why."""


@dataclass(frozen=True)
class HashFile:
    """An opened hash set file: its format's name and its digests, read as they are iterated."""

    format: str
    digests: Iterator[tuple[int, bytes]]


def digest_from_hex(text: str) -> tuple[int, bytes] | None:
    """``(algorithm, digest)`` of a hex md5, sha1 or sha256 (any case), None for anything else."""
    algorithm = HEX_LENGTHS.get(len(text))
    if algorithm is None:
        return None
    try:
        return int(algorithm), bytes.fromhex(text)
    except ValueError:
        return None


def open_hash_file(stream: BinaryIO, *, path: str | None = None) -> HashFile:
    """The format and digests of a hash set file (a binary, seekable stream, read from its start). ``path``:
    where the same bytes are on disk, when they are (SQLite opens a database by its name; without a path an
    RDSv3 database is first copied to a temporary file)."""
    stream.seek(0)
    head = stream.read(len(SQLITE_MAGIC))
    stream.seek(0)
    if head == SQLITE_MAGIC:
        return HashFile(format="nsrl-rdsv3", digests=_rdsv3_digests(stream, path=path))
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        first = text.readline(MAX_LINE_CHARS)
    except UnicodeDecodeError:
        raise HashFileError("line 1: not UTF-8 text, nor an NSRL RDSv3 database") from None
    header = [_column_name(cell) for cell in next(csv.reader([first]), [])] if "," in first else []
    columns = [(index, CSV_HASH_COLUMNS[name]) for index, name in enumerate(header) if name in CSV_HASH_COLUMNS]
    if columns:
        is_nsrl = header[:3] == ["sha1", "md5", "crc32"]
        return HashFile(format="nsrl-csv" if is_nsrl else "csv", digests=_csv_digests(text, columns))
    return HashFile(format="list", digests=_list_digests(text, first))


def _column_name(cell: str) -> str:
    return cell.strip().strip('"').lower().replace("-", "").replace(" ", "").replace("_", "")


def _decoded_lines(text: io.TextIOWrapper, first_number: int) -> Iterator[tuple[int, str]]:
    number = first_number
    while True:
        try:
            line = text.readline(MAX_LINE_CHARS)
        except UnicodeDecodeError:
            raise HashFileError(f"line {number}: not UTF-8 text") from None
        if not line:
            return
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            raise HashFileError(f"line {number}: longer than {MAX_LINE_CHARS} characters")
        yield number, line
        number += 1


def _list_digests(text: io.TextIOWrapper, first: str) -> Iterator[tuple[int, bytes]]:
    def lines() -> Iterator[tuple[int, str]]:
        yield 1, first.lstrip(codecs.BOM_UTF8.decode())
        yield from _decoded_lines(text, 2)

    for number, line in lines():
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        digest = digest_from_hex(words[0])
        if digest is None:
            raise HashFileError(
                f"line {number}: '{words[0][:80]}' is not an md5, sha1 or sha256 in hex "
                "(a plain list holds one a line; a CSV names its hash columns in its first line)"
            )
        yield digest


def _csv_digests(text: io.TextIOWrapper, columns: Sequence[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
    numbered = _decoded_lines(text, 2)
    # The number of the line the CSV reader last took (a quoted value may span lines: its last one).
    current = [1]

    def lines() -> Iterator[str]:
        for number, line in numbered:
            current[0] = number
            yield line

    try:
        for row in csv.reader(lines()):
            if not row:
                continue
            for index, algorithm in columns:
                value = row[index].strip() if index < len(row) else ""
                if not value:
                    continue  # a column left empty for this file (RDS lists no SHA-256 for old files)
                digest = digest_from_hex(value)
                if digest is None or digest[0] != algorithm:
                    label = HashAlgorithm(algorithm).label
                    raise HashFileError(f"line {current[0]}: '{value[:80]}' is not a {label}")
                yield digest
    except csv.Error as error:
        raise HashFileError(f"line {current[0]}: {error}") from None


def _rdsv3_digests(stream: BinaryIO, *, path: str | None) -> Iterator[tuple[int, bytes]]:
    # SQLite opens a file by its name: bytes that have none (a spooled upload) are copied to one first.
    name = path
    copy = None
    if name is None:
        copy = tempfile.NamedTemporaryFile(suffix=".db")  # noqa: SIM115 - closed in the finally below
        shutil.copyfileobj(stream, copy, 1 << 20)
        copy.flush()
        name = copy.name
    try:
        yield from _rdsv3_rows(name)
    except sqlite3.Error as error:
        # Whatever SQLite says of a damaged or hostile file is the file's fault: a 400 naming it, never a 500.
        raise HashFileError(f"not a readable NSRL RDSv3 database: {error}") from None
    finally:
        if copy is not None:
            copy.close()


def _rdsv3_rows(name: str) -> Iterator[tuple[int, bytes]]:
    # Read-only, and the database's own schema is not trusted to run functions (an uploaded file).
    database = sqlite3.connect(f"file:{quote(os.path.abspath(name))}?mode=ro", uri=True)
    try:
        database.execute("PRAGMA trusted_schema = OFF")
        present = {row[1].lower() for row in database.execute('PRAGMA table_info("FILE")')}
        wanted = [(column, algorithm) for column, algorithm in RDSV3_COLUMNS if column in present]
        if not wanted:
            raise HashFileError("not an NSRL RDSv3 database: it has no FILE table with sha256, sha1 or md5")
        select = ", ".join(column for column, _ in wanted)
        for row in database.execute(f'SELECT {select} FROM "FILE"'):  # noqa: S608 - names from our own table
            for value, (column, algorithm) in zip(row, wanted, strict=True):
                if not value:
                    continue
                digest = digest_from_hex(str(value))
                if digest is None or digest[0] != algorithm:
                    raise HashFileError(f"FILE.{column}: '{str(value)[:80]}' is not a {column}")
                yield digest
    finally:
        database.close()
