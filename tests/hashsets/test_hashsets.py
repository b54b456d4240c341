"""Hash sets (issue #20 item 6): the formats read, the import, the marks extraction and imports make, and
the query terms, facet and switch that use them."""

from __future__ import annotations

import hashlib
import io
import sqlite3

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from custodia.errors import Forbidden, ServiceError
from hashsets.formats import HashFileError, open_hash_file
from hashsets.models import HashAlgorithm, HashEntry, HashSet
from hashsets.services import hashset_delete, hashset_import
from search.hashset_marks import traces_mark_for_hash_set
from search.models import Trace, TraceHashMatch
from search.selectors import traces_search
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir

MD5 = hashlib.md5(b"a", usedforsecurity=False).hexdigest()
SHA1 = hashlib.sha1(b"a", usedforsecurity=False).hexdigest()
SHA256 = hashlib.sha256(b"a").hexdigest()


def digests(data: bytes, **kwargs) -> list[tuple[int, bytes]]:
    return list(open_hash_file(io.BytesIO(data), **kwargs).digests)


def test_a_plain_list_holds_md5_sha1_and_sha256_in_any_case_with_comments_and_names():
    text = f"# known bad\n\n{MD5.upper()}\n{SHA1}  evil.exe\n{SHA256} *other\n".encode()
    opened = open_hash_file(io.BytesIO(text))
    assert opened.format == "list"
    assert list(opened.digests) == [
        (HashAlgorithm.MD5, bytes.fromhex(MD5)),
        (HashAlgorithm.SHA1, bytes.fromhex(SHA1)),
        (HashAlgorithm.SHA256, bytes.fromhex(SHA256)),
    ]


def test_the_legacy_nsrl_csv_gives_each_rows_sha1_and_md5():
    text = (
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
        f'"{SHA1.upper()}","{MD5.upper()}","EBD105A0","a, with a comma.txt",1,3095,"WIN",""\r\n'
    ).encode()
    opened = open_hash_file(io.BytesIO(text))
    assert opened.format == "nsrl-csv"
    assert list(opened.digests) == [(HashAlgorithm.SHA1, bytes.fromhex(SHA1)), (HashAlgorithm.MD5, bytes.fromhex(MD5))]


def test_an_nsrl_rdsv3_database_gives_its_file_tables_digests(tmp_path):
    path = tmp_path / "RDS_minimal.db"
    database = sqlite3.connect(path)
    database.execute("CREATE TABLE FILE (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, file_name TEXT)")
    database.execute("INSERT INTO FILE VALUES (?, ?, ?, '0', 'a')", (SHA256.upper(), SHA1.upper(), MD5.upper()))
    database.commit()
    database.close()
    for kwargs in ({"path": str(path)}, {}):  # by its name, and copied from a stream that has none
        opened = open_hash_file(io.BytesIO(path.read_bytes()), **kwargs)
        assert opened.format == "nsrl-rdsv3"
        assert sorted(opened.digests) == sorted(
            [
                (HashAlgorithm.SHA256, bytes.fromhex(SHA256)),
                (HashAlgorithm.SHA1, bytes.fromhex(SHA1)),
                (HashAlgorithm.MD5, bytes.fromhex(MD5)),
            ]
        )


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"not-a-digest\n", "line 1"),
        (f"{MD5}\n{MD5[:-1]}\n".encode(), "line 2"),
        (b"\xff\xfe\x00garbage", "line 1"),
        (f'"SHA-1","MD5"\n"{MD5}","{MD5}"\n'.encode(), "line 2"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "RDSv3"),
        (b"SQLite format 3\x00" + bytes(range(256)) * 20, "RDSv3"),
    ],
)
def test_what_is_no_hash_set_is_refused_naming_the_line(data, where):
    with pytest.raises(HashFileError, match=where):
        digests(data)


def import_list(demo, *, name="bad", kind="known-bad", lines=(SHA256,), actor=None):
    return hashset_import(
        actor=actor or demo.orgadmin,
        organization=demo.case.organization,
        name=name,
        kind=kind,
        stream=io.BytesIO("\n".join(lines).encode()),
        source_name="list.txt",
    )


def test_an_import_stores_the_digests_and_is_audited(demo):
    hash_set = import_list(demo, lines=(SHA256, MD5, SHA1))
    assert (hash_set.state, hash_set.entries, hash_set.source_format) == ("ready", 3, "list")
    assert HashEntry.objects.filter(hash_set=hash_set).count() == 3
    event = AuditEvent.objects.get(action="hashset.import")
    assert event.details == {"name": "bad", "kind": "known-bad", "entries": 3, "format": "list"}
    assert event.actor == "orgadmin"


def test_only_an_administrator_of_the_organisation_imports(demo):
    with pytest.raises(Forbidden):
        import_list(demo, actor=demo.detective)
    with pytest.raises(Forbidden):
        hashset_import(
            actor=demo.orgadmin,
            organization=demo.other_case.organization,
            name="x",
            kind="known-bad",
            stream=io.BytesIO(SHA256.encode()),
        )
    assert not HashSet.objects.exists()


def test_a_failed_import_leaves_nothing_but_its_audit_row(demo):
    with pytest.raises(ServiceError, match="line 2"):
        import_list(demo, lines=(SHA256, "zz"))
    assert not HashSet.objects.exists() and not HashEntry.objects.exists()
    assert AuditEvent.objects.get(action="hashset.import").outcome == "failed"


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [("has space", "known-bad", "invalid_name"), ("", "known-bad", "invalid_name"), ("ok", "maybe", "invalid_kind")],
)
def test_names_and_kinds_are_checked(demo, name, kind, code):
    with pytest.raises(ServiceError) as refused:
        import_list(demo, name=name, kind=kind)
    assert refused.value.code == code


def test_a_name_is_taken_once_per_organisation(demo):
    import_list(demo, name="NSRL")
    with pytest.raises(ServiceError) as refused:
        import_list(demo, name="nsrl")
    assert refused.value.code == "name_taken"


def test_the_management_command_imports_for_an_organisation(demo, tmp_path):
    path = tmp_path / "NSRLFile.txt"
    path.write_text(f'"SHA-1","MD5","CRC32","FileName"\n"{SHA1}","{MD5}","0","a"\n')
    out = io.StringIO()
    call_command(
        "hashset_import",
        "--organisation",
        "demo-police",
        "--name",
        "NSRL",
        "--kind",
        "known-good",
        str(path),
        stdout=out,
    )
    assert "NSRL: 2 digests (nsrl-csv), known-good" in out.getvalue()
    with pytest.raises(CommandError, match="slug"):
        call_command("hashset_import", "--organisation", "nope", "--name", "x", "--kind", "known-good", str(path))


# -- marks on traces, and searching by them (a real image, extracted) ---------------------------------------


@pytest.fixture
def extracted(demo, api, settings):
    from evidence.models import Evidence

    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    path = str(require_corpus("files/dfvfs/ext2.E01"))
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [path]}, format="json").json()
    evidence = Evidence.objects.get(pk=body["id"])
    run = extraction_start(actor=demo.investigator, evidence=evidence)
    extraction_execute(run_id=run.pk)
    return evidence


def raw(trace: Trace) -> dict:
    return next(stream for stream in trace.streams if stream["name"] == "raw")


def names(demo, query: str, **kwargs) -> set[str]:
    found = traces_search(user=demo.detective, case_id=demo.case.pk, query=query, limit=500, **kwargs)
    return {hit["name"] for hit in found["hits"]}


@pytest.mark.corpus
def test_an_import_marks_the_traces_already_extracted_and_queries_find_them(demo, extracted):
    passwords = Trace.objects.get(case=demo.case, name="passwords.txt")
    another = Trace.objects.get(case=demo.case, name="another_file")
    good = import_list(demo, name="NSRL", kind="known-good", lines=(raw(another)["sha1"],))
    bad = import_list(demo, name="Bad-Files", kind="known-bad", lines=(raw(passwords)["md5"], SHA256))
    assert traces_mark_for_hash_set(hash_set_id=good.pk) >= 1
    assert traces_mark_for_hash_set(hash_set_id=bad.pk) >= 1
    assert traces_mark_for_hash_set(hash_set_id=bad.pk) == 0  # marking twice marks nothing twice
    assert "passwords.txt" in names(demo, "knownBad:true")
    assert "passwords.txt" not in names(demo, "knownGood:true")
    assert "another_file" in names(demo, "knownGood:true")
    assert names(demo, "hashset:bad-files") == names(demo, "hashset:BAD*") == names(demo, "knownBad:true")
    assert "another_file" not in names(demo, "NOT knownGood:true")
    assert "passwords.txt" in names(demo, "knownGood:false")
    found = traces_search(user=demo.detective, case_id=demo.case.pk, query="type:file", facets=["hashset"])
    assert {bucket["value"] for bucket in found["facets"]["hashset"]} == {"NSRL", "Bad-Files"}
    # Deleting the set removes its marks.
    hashset_delete(actor=demo.orgadmin, hash_set=bad)
    assert names(demo, "knownBad:true") == set()
    assert not TraceHashMatch.objects.filter(kind="known-bad").exists()


@pytest.mark.corpus
def test_extraction_marks_the_traces_a_set_holds_as_it_runs(demo, extracted):
    passwords = Trace.objects.get(case=demo.case, name="passwords.txt")
    import_list(demo, name="bad", lines=(raw(passwords)["sha256"],))
    assert not TraceHashMatch.objects.exists()  # no task ran: only extraction marks here
    run = extraction_start(actor=demo.investigator, evidence=extracted)
    extraction_execute(run_id=run.pk)
    marked = TraceHashMatch.objects.get()
    assert (marked.trace_id, marked.kind, marked.case_id) == (passwords.pk, "known-bad", demo.case.pk)
    assert names(demo, "hashset:bad") == {"passwords.txt"}


@pytest.mark.corpus
def test_a_set_of_another_organisation_marks_nothing_here(demo, extracted):
    from cases.models import User

    passwords = Trace.objects.get(case=demo.case, name="passwords.txt")
    outsider_admin = User.objects.create(
        username="otheradmin", organization=demo.other_case.organization, is_org_admin=True
    )
    other = hashset_import(
        actor=outsider_admin,
        organization=demo.other_case.organization,
        name="theirs",
        kind="known-bad",
        stream=io.BytesIO(raw(passwords)["sha256"].encode()),
    )
    assert traces_mark_for_hash_set(hash_set_id=other.pk) == 0
    assert names(demo, "hashset:theirs") == set()


# -- the query terms: parsed, and compiled for Elasticsearch ------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("knownGood:true", {"term": {"known": "known-good"}}),
        ("knownBad:false", {"bool": {"must_not": [{"term": {"known": "known-bad"}}]}}),
        ("hashset:NSRL", {"term": {"hashsets": {"value": "NSRL", "case_insensitive": True}}}),
    ],
)
def test_the_terms_compile_for_elasticsearch(query, expected):
    from search.backends.elasticsearch.compiler import compile_query
    from search.query import parse_query

    assert compile_query(parse_query(query)).to_dict() == expected


@pytest.mark.parametrize("query", ["knownGood:maybe", "knownBad>1", "hashset>a", "knowngood:true"])
def test_wrong_terms_are_syntax_errors(query):
    from search.query import QuerySyntaxError, parse_query

    with pytest.raises(QuerySyntaxError):
        parse_query(query)


def test_an_elasticsearch_document_carries_its_sets_only_when_one_holds_it():
    from search.backends.elasticsearch.documents import trace_document

    common = {
        "uid": "e:0-1",
        "case_id": 1,
        "evidence_id": "e",
        "name": "a",
        "path": "/a",
        "types": [],
        "properties": {},
    }
    document = trace_document(**common, hash_sets=[("NSRL", "known-good"), ("Bad", "known-bad")])
    assert (document["hashsets"], document["known"]) == (["Bad", "NSRL"], ["known-bad", "known-good"])
    assert "hashsets" not in trace_document(**common)


@pytest.mark.corpus
def test_the_search_page_hides_known_files_and_offers_the_facet(demo, extracted, client):
    another = Trace.objects.get(case=demo.case, name="another_file")
    good = import_list(demo, name="NSRL", kind="known-good", lines=(raw(another)["sha256"],))
    traces_mark_for_hash_set(hash_set_id=good.pk)
    client.force_login(demo.detective)
    url = f"/cases/{demo.case.pk}/traces/"
    shown = client.get(url, {"q": "type:file"}).content.decode()
    assert "another_file" in shown and "hashset%3ANSRL" in shown  # the facet's link narrows to the set
    hidden = client.get(url, {"q": "type:file", "hideKnown": "1"}).content.decode()
    assert "another_file" not in hidden and "passwords.txt" in hidden
    assert 'name="hideKnown" value="1" checked' in hidden
    assert "another_file" not in client.get(url, {"hideKnown": "1"}).content.decode()


def test_hiding_known_files_narrows_any_query():
    from search.hashset_marks import query_hiding_known_files

    assert query_hiding_known_files("") == "-knownGood:true"
    assert query_hiding_known_files("a OR b") == "(a OR b) -knownGood:true"
    assert query_hiding_known_files("name:(") == "name:("  # its own mistake is reported by the search
