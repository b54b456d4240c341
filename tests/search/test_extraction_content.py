"""The content tools on the walker's one read ("bring the tools to the data").

With ``WalkOptions(keep_content=True)`` every file trace carries its raw stream as the walker read it:
the bytes of a small file, a reader through the walk's open file for a larger one. The tools must find
exactly what they find when they open the file again through its data path (dfVFS), and the bytes must
be the ones the walker hashed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import shutil
import sqlite3
import subprocess
import zipfile
from email.message import EmailMessage

import pytest

from search.extraction import source
from search.extraction.pipeline import analyse_file, tool_children, trace_row
from search.extraction.tools import analyse
from search.extraction.walker import WalkOptions, walk_image

needs_mkfs = pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="Debian's e2fsprogs (mkfs.ext4) is absent")

SYSLOG = b"Nov 23 10:00:00 host kernel: booted\n" * 200


def _tree(root):
    (root / "docs").mkdir(parents=True)
    with zipfile.ZipFile(root / "docs" / "bundle.zip", "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("folder/syslog", SYSLOG)
    (root / "docs" / "syslog.gz").write_bytes(gzip.compress(SYSLOG, mtime=0))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "Quarterly figures"
    message.set_content("See attached.")
    message.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="figures.csv")
    (root / "docs" / "mail.eml").write_bytes(message.as_bytes())
    (root / "notes.txt").write_bytes(b"a short note\n")
    (root / "big.log").write_bytes(SYSLOG * 40)  # ~290 KiB: more than the bound used below
    database = root / "History"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            "CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT, title TEXT, visit_count INTEGER,"
            " typed_count INTEGER, last_visit_time INTEGER);"
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER, transition INTEGER);"
            "INSERT INTO urls VALUES (1, 'https://example.org/', 'Example', 1, 0, 13300000000000000);"
            "INSERT INTO visits VALUES (1, 1, 13300000000000000, 1);"
        )
    connection.close()
    (root / "random.bin").write_bytes(random.Random(4).randbytes(16384))


@pytest.fixture(scope="module")
def ext4_image(tmp_path_factory):
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("Debian's e2fsprogs (mkfs.ext4) is absent")
    folder = tmp_path_factory.mktemp("content")
    _tree(folder / "tree")
    image = folder / "content.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(folder / "tree"), "-E", "root_owner=0:0", str(image), "8M"],
        check=True,
        env={**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"},
    )
    return image


def _walk(image, **options):
    with image.open("rb") as file_object:
        options = WalkOptions(file_name=image.name, **options)
        yield from walk_image(file_object=file_object, evidence_id="ev", options=options)


def _files(traces):
    for trace in traces:
        raw = trace.stream("raw")
        if "file" in trace.types and "folder" not in trace.types and raw is not None and raw.size:
            yield trace, raw


def _as_rows(record, analysed):
    """What the tools' result becomes in the database (the file's row and its children's), comparable."""
    rows = [trace_row(record=record, analysed=analysed)]
    if analysed is not None:
        rows.extend(tool_children(record=record, analysed=analysed))
    return rows


def test_a_plain_walk_keeps_no_bytes(ext4_image):
    assert all(trace.content is None for trace in _walk(ext4_image))


@needs_mkfs
@pytest.mark.parametrize("bound", [4 * 1024 * 1024, 1024], ids=["bytes kept", "read through the walk's file"])
def test_tools_on_the_walkers_read_find_what_they_find_through_dfvfs(ext4_image, bound):
    seen = set()
    with ext4_image.open("rb") as reread:
        resolver_context = source.new_resolver_context(file_object=reread, file_name=ext4_image.name)
        for trace, raw in _files(_walk(ext4_image, keep_content=True, keep_content_max_bytes=bound)):
            content = trace.content
            assert content is not None, trace.path
            assert (content.data is not None) == (raw.size <= bound), trace.path
            with content.open() as stream:
                data = stream.read()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (raw.size, raw.sha256), trace.path
            assert data.startswith(content.head) and len(content.head) == min(8192, raw.size)

            def through_dfvfs(data_path=raw.data_path):
                file_object = source.open_data_path(data_path=data_path, resolver_context=resolver_context)
                return io.BufferedReader(source.DfvfsFileObject(file_object), buffer_size=1 << 20)

            with through_dfvfs() as stream:
                assert stream.read() == data, trace.path
            on_the_walk = analyse_file(record=trace, resolver_context=resolver_context)
            reopened = analyse(stream_opener=through_dfvfs, name=trace.name, mime_type=raw.mime_type, path=trace.path)
            seen.add(trace.name)
            if trace.name == "random.bin":
                assert on_the_walk is None  # nothing for the tools: never opened
                continue
            assert on_the_walk is not None, trace.path
            assert _as_rows(trace, on_the_walk) == _as_rows(trace, reopened), trace.path
    assert {"bundle.zip", "syslog.gz", "mail.eml", "notes.txt", "big.log", "History", "random.bin"} <= seen


@needs_mkfs
def test_files_known_by_their_first_bytes_reach_their_tools(ext4_image):
    """libmagic names SQLite and gzip by MIME types no tool lists; their first bytes decide."""
    with ext4_image.open("rb") as reread:
        resolver_context = source.new_resolver_context(file_object=reread, file_name=ext4_image.name)
        found = {}
        for trace, _ in _files(_walk(ext4_image, keep_content=True)):
            analysed = analyse_file(record=trace, resolver_context=resolver_context)
            found[trace.name] = analysed
    assert found["random.bin"] is None  # no tool wants it: never opened
    assert [child.name for child in found["syslog.gz"].children] == ["syslog"]
    assert found["syslog.gz"].children[0].read() == SYSLOG
    assert "browserHistory" in {node_type for node in found["History"].walk() for node_type in node.types}


def test_libmagic_is_asked_once_for_first_bytes_it_has_seen():
    from search.extraction.walker import MimeSniffer

    asked = []

    class Cookie:
        def from_buffer(self, head):
            asked.append(head)
            return "text/plain" if head.startswith(b"text") else "application/octet-stream"

    for threads in (0, 2):
        asked.clear()
        sniffer = MimeSniffer(threads=threads)
        sniffer._cookie = Cookie  # type: ignore[method-assign]
        try:
            heads = [b"text one", b"\x00binary", b"text one", b"text two", b"\x00binary"]
            answers = []
            for head in heads:
                future = sniffer.submit(head)
                answers.append(future.result())  # one at a time: each later copy finds its answer
        finally:
            sniffer.close()
        assert answers == [
            "text/plain",
            "application/octet-stream",
            "text/plain",
            "text/plain",
            "application/octet-stream",
        ]
        assert asked == [b"text one", b"\x00binary", b"text two"]


@needs_mkfs
def test_copies_of_a_file_get_libmagics_own_answer(tmp_path):
    import magic

    tree = tmp_path / "tree"
    tree.mkdir()
    samples = {"a.txt": b"plain words\n" * 50, "b.py": b"#!/usr/bin/env python3\nimport os\nprint(os)\n"}
    for copy in range(3):
        for name, data in samples.items():
            (tree / f"{copy}-{name}").write_bytes(data)
    image = tmp_path / "copies.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "4M"], check=True)
    found = {trace.name: raw.mime_type for trace, raw in _files(_walk(image))}
    expected = {name: magic.Magic(mime=True).from_buffer(data) for name, data in samples.items()}
    assert found == {f"{copy}-{name}": expected[name] for copy in range(3) for name in samples}
