"""Stream properties of traces the extraction publisher wrote (#18 item 7), and its batch path on both
databases: a bare hash, the hash properties, size and MIME type find the trace, a rewrite keeps the word and
number indexes right, and the first batch is still committed early."""

from __future__ import annotations

import pytest

from search.models import ExtractionRun, Trace
from search.publisher import Publisher
from search.selectors import traces_search

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def _row(index: int, *, md5: str = "", size: int = 10, mime_type: str = "text/plain", **changes) -> dict:
    row = {
        "uid": f"ev:0-{index}",
        "parent_uid": "ev:0",
        "name": f"file{index}.bin",
        "path": f"/image/file{index}.bin",
        "types": ["file"],
        "properties": {"file.size": size, "picture.width": index * 100},
        "streams": [
            {
                "name": "raw",
                "size": size,
                "data_path": "{}",
                "md5": md5 or f"{index:032x}",
                "sha1": SHA1 if md5 else f"{index:040x}",
                "sha256": f"{index:064x}",
                "entropy": 7.95 if index == 2 else 3.0,
                "mime_type": mime_type,
            }
        ],
        "tools": {},
        "errors": [],
        "deleted": False,
        "text": "",
    }
    row.update(changes)
    return row


@pytest.fixture
def run(demo):
    from evidence.services.registration import evidence_register

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    created = ExtractionRun.objects.create(evidence=evidence, state="running")
    return ExtractionRun.objects.select_related("evidence").get(pk=created.pk)


def found(demo, query: str) -> set[str]:
    return {hit["name"] for hit in traces_search(user=demo.detective, case_id=demo.case.pk, query=query)["hits"]}


@pytest.mark.django_db
def test_published_stream_properties_are_found(demo, run):
    publisher = Publisher(run)
    publisher.add(_row(1, md5=MD5, size=5_000_000, mime_type="image/jpeg"))
    for index in range(2, 6):
        publisher.add(_row(index))
    publisher.flush()
    assert found(demo, MD5) == {"file1.bin"}
    assert found(demo, MD5.upper()) == {"file1.bin"}
    assert found(demo, f"data.raw.hash.md5:{MD5.upper()}") == {"file1.bin"}
    assert found(demo, f"data.raw.hash.md5={MD5}") == {"file1.bin"}
    assert found(demo, f"data.raw.hash.sha1:{SHA1}") == {"file1.bin"}
    assert found(demo, f"data.raw.hash.sha256:{3:064x}") == {"file3.bin"}
    assert found(demo, f"data.slack.hash.md5:{MD5}") == set()
    assert found(demo, "data.raw.size>1048576") == {"file1.bin"}
    assert found(demo, "data.raw.size:[* TO *]") == {f"file{i}.bin" for i in range(1, 6)}
    assert found(demo, "data.raw.mimeType:jpeg") == {"file1.bin"}
    assert found(demo, "data.raw.mimeType:image/*") == {"file1.bin"}
    assert found(demo, "data.raw.entropy>7.5") == {"file2.bin"}
    assert found(demo, "-data.raw.mimeType=text/plain") == {"file1.bin"}
    # The number index came with the batch: picture.width of every trace.
    assert found(demo, "picture.width>=400") == {"file4.bin", "file5.bin"}


@pytest.mark.django_db
def test_a_rewritten_batch_keeps_the_word_and_number_indexes_right(demo, run):
    first = Publisher(run)
    first.add(_row(1, md5=MD5))
    first.add(_row(2))
    first.flush()
    again = Publisher(run)
    # The same uids again (a retried run), one changed, and one uid twice in the batch: the last one wins.
    again.add(_row(1, properties={"picture.width": 50}))
    again.add(_row(2, properties={"picture.width": 1}))
    again.add(_row(2, properties={"picture.width": 7000}))
    again.flush()
    assert Trace.objects.filter(run=run).count() == 2
    assert found(demo, MD5) == set()
    assert found(demo, f"{1:032x}") == {"file1.bin"}
    assert found(demo, "picture.width>=5000") == {"file2.bin"}
    assert found(demo, "picture.width<100") == {"file1.bin"}
    assert found(demo, "picture.width:[1 TO 1]") == set()
