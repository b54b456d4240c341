"""Every example of docs/query.md is a test: it parses, compiles for the SQL backend and for Elasticsearch, and
run on a small case made here finds what the guide says it finds (SQLite here; PostgreSQL with run_all.py).

Each example is looked up in the guide's text, so an example edited there without this file fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from search.backends.elasticsearch.compiler import compile_query
from search.backends.sql.compiler import compile_q
from search.models import Trace, TraceTag
from search.query import QuerySyntaxError, parse_query
from search.query.ast import And, Field, Not, Or, Text
from search.selectors import traces_search
from tests.search.synthetic import synthetic_traces

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "query.md").read_text()

MD5 = "9e107d9d372bb6826bd81d3542a419d6"
SHA1 = "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
SHA256 = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"


def _raw(size: int, *, mime_type: str, md5: str = "", sha1: str = "", sha256: str = "", entropy=None) -> list:
    return [
        {
            "name": "raw",
            "size": size,
            "data_path": "",
            "md5": md5 or None,
            "sha1": sha1 or None,
            "sha256": sha256 or None,
            "entropy": entropy,
            "mime_type": mime_type,
        }
    ]


ROWS = [
    {
        "name": "peter.txt",
        "path": "/Users/peter/peter.txt",
        "types": ["file"],
        "properties": {
            "file.name": "peter.txt",
            "file.size": 1500,
            "file.modifiedOn": "2010-06-01T10:00:00Z",
            "file.mimeType": "text/plain",
        },
        "text": "Hello peter de vries, please find the invoice attached",
        "streams": _raw(1500, mime_type="text/plain", md5=MD5, sha1=SHA1, sha256=SHA256, entropy=4.1),
        "sha256": SHA256,
    },
    {
        "name": "holiday.jpg",
        "path": "/Users/peter/Pictures/holiday.jpg",
        "types": ["file", "picture"],
        "properties": {
            "file.name": "holiday.jpg",
            "file.size": 2_000_000,
            "file.modifiedOn": "2020-01-01T08:00:00Z",
            "file.mimeType": "image/jpeg",
            "picture.exif.Make": "Canon",
            "picture.width": 4000,
            "gps.latitude": 52.3,
        },
        "streams": _raw(2_000_000, mime_type="image/jpeg", md5="0" * 32, entropy=7.9),
    },
    {
        "name": "invoice march",
        "path": "/mail/inbox/invoice march",
        "types": ["email"],
        "properties": {
            "email.from": "a@example.org",
            "email.subject": "Invoice march",
            "email.sentOn": "2020-01-01T09:45:00Z",
        },
        "text": "please pay the invoice",
    },
    {
        "name": "factuur",
        "path": "/mail/inbox/factuur",
        "types": ["email"],
        "properties": {
            "email.from": "b@example.nl",
            "email.subject": "Factuur",
            "email.sentOn": "2019-05-01T10:00:00Z",
        },
        "text": "betaal de factuur",
        "deleted": True,
    },
    {
        "name": "invoice",
        "path": "/mail/inbox/invoice",
        "types": ["email"],
        "properties": {
            "email.from": "c@example.org",
            "email.subject": "Invoice",
            "email.sentOn": "2018-01-01T00:00:00Z",
        },
    },
    {
        "name": "report.pdf",
        "path": "/Users/pater/report.pdf",
        "types": ["file", "document"],
        "properties": {
            "file.name": "report.pdf",
            "file.size": 50,
            "file.modifiedOn": "2020-01-02T00:00:00Z",
            "document.pageCount": 3,
        },
        "text": "the password is secret",
        "streams": _raw(50, mime_type="application/pdf"),
        "has_errors": True,  # a tool failed on it: has:errors
    },
    {
        "name": "passwords.txt",
        "path": "/Users/peter/passwords.txt",
        "types": ["file"],
        "properties": {"file.size": 100},
        "text": "compass",
    },
    {"name": "users", "path": "/Users", "types": ["folder"]},
    {"name": "volume1", "path": "/volume1", "types": ["volume"], "properties": {"encryptedVolume.unlocked": True}},
    {"name": "wide.png", "path": "/wide.png", "types": ["picture"], "properties": {"picture.width": "wide"}},
]
ALL = {row["name"] for row in ROWS}
WITH_SIZE = {"peter.txt", "holiday.jpg", "report.pdf", "passwords.txt"}


@pytest.fixture
def guide_case(demo):
    evidence = synthetic_traces(case=demo.case, registered_by=demo.custodian, rows=ROWS)
    for name, tag in (("invoice march", "relevant"), ("report.pdf", "to check")):
        TraceTag.objects.create(trace=Trace.objects.get(name=name), case=demo.case, name=tag, created_by=demo.detective)
    return evidence


def found(demo, query: str) -> set[str]:
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query=query, limit=500)
    return {hit["name"] for hit in result["hits"]}


# (example exactly as the guide writes it, the names it finds on the case above)
EXAMPLES = [
    # The overview.
    ("peter", {"peter.txt", "holiday.jpg", "passwords.txt"}),
    ('"peter de vries"', {"peter.txt"}),
    ("pass*", {"passwords.txt", "report.pdf"}),  # "password" in a text; not "compass"
    ("p?ter", {"peter.txt", "holiday.jpg", "passwords.txt", "report.pdf"}),  # peter and pater in paths
    ("type:email", {"invoice march", "factuur", "invoice"}),
    ("tag:relevant", {"invoice march"}),
    ('email.from:"a@example.org"', {"invoice march"}),
    ("file.name:*.jpg", {"holiday.jpg"}),
    ("data.raw.size>1048576", {"holiday.jpg"}),
    ("file.modifiedOn>=2020-01-01", {"holiday.jpg", "report.pdf"}),
    ("file.modifiedOn:[2010-01-01 TO 2010-12-31]", {"peter.txt"}),
    ("file.size:{100 TO 2000}", {"peter.txt"}),
    ("type:email -deleted:true", {"invoice march", "invoice"}),
    ("(invoice OR factuur) AND type:email", {"invoice march", "factuur", "invoice"}),
    # Words.
    ("passwords.txt", {"passwords.txt"}),
    ("example", {"invoice march", "factuur", "invoice"}),
    ("pass", set()),
    # Wildcards.
    ("*.jpg", {"holiday.jpg"}),
    ("re*rt", {"report.pdf"}),
    # Fields.
    ("type:e*", {"invoice march", "factuur", "invoice"}),
    ("type:picture", {"holiday.jpg", "wide.png"}),
    ('tag:"to check"', {"report.pdf"}),
    ("deleted:true", {"factuur"}),
    ("has:errors", {"report.pdf"}),
    ("name:report", {"report.pdf"}),
    ("name:*.pdf", {"report.pdf"}),
    ("path:*/Users/peter/*", {"holiday.jpg", "passwords.txt", "peter.txt"}),
    ("text:password", {"report.pdf"}),
    ("file.name:holiday.jpg", {"holiday.jpg"}),
    ("email.subject:invoice", {"invoice march", "invoice"}),
    ("picture.exif.Make:Canon", {"holiday.jpg"}),
    ("data.raw.hash.md5", None),  # named in the text; the searches with it follow
    ('"http://example.org"', set()),
    # : matches, = is exact.
    ('email.subject:"invoice march"', {"invoice march"}),
    ("email.subject=Invoice", {"invoice"}),
    ("file.name:*.JPG", {"holiday.jpg"}),
    ("file.name=*.JPG", set()),
    # Values.
    ("encryptedVolume.unlocked:true", {"volume1"}),
    ("file.size>1000", {"peter.txt", "holiday.jpg"}),
    ("gps.latitude>-12", {"holiday.jpg"}),
    ("data.raw.entropy>7.5", {"holiday.jpg"}),
    ("file.modifiedOn:2020-01-01", {"holiday.jpg"}),
    ("email.sentOn>=2020-01-01T09:30Z", {"invoice march"}),
    ("email.from:a@example.org", {"invoice march"}),
    ('file.name:"2020"', set()),
    ("file.name:\\2020", set()),
    ("file.modifiedOn>2020-01-01", {"report.pdf"}),
    ("file.modifiedOn<=2020-01-01", {"peter.txt", "holiday.jpg"}),
    # Comparisons.
    ("file.size>=1048576", {"holiday.jpg"}),
    ("email.sentOn<2019-06-01", {"factuur", "invoice"}),
    ("name<m", {"factuur", "holiday.jpg", "invoice", "invoice march"}),
    ("picture.width>=4000", {"holiday.jpg"}),
    ("gps.latitude:[52 TO 53]", {"holiday.jpg"}),
    ("picture.width>0", {"holiday.jpg"}),  # not wide.png, whose width is a word
    ("NOT picture.width>=4000", ALL - {"holiday.jpg"}),
    # Ranges.
    ("file.size:[1048576 TO *]", {"holiday.jpg"}),
    ("file.size:[* TO *]", WITH_SIZE),
    ("file.size:[100 TO 2000]", {"peter.txt", "passwords.txt"}),
    ("email.sentOn:{2020-01-01T00:00Z TO 2020-02-01T00:00Z}", {"invoice march"}),
    ("name:[a TO n}", {"factuur", "holiday.jpg", "invoice", "invoice march"}),
    # Stream properties.
    (f"data.raw.hash.md5:{MD5}", {"peter.txt"}),
    (f"data.raw.hash.sha256:{SHA256}", {"peter.txt"}),
    (f"data.raw.hash.sha1:{SHA1.upper()}", {"peter.txt"}),
    (MD5, {"peter.txt"}),
    ("data.raw.mimeType:image/jpeg", {"holiday.jpg"}),
    ("data.raw.mimeType=application/pdf", {"report.pdf"}),
    ("data.raw.size:[1 TO 100]", {"report.pdf"}),
]


def test_every_example_is_in_the_guide():
    examples = [query for query, _ in EXAMPLES]
    missing = [query for query in examples if query.replace(MD5, "<md5>").replace(SHA256, "<sha256>") not in GUIDE]
    # The hashes stand for any hash: the guide writes them as <md5>, <sha256>; and the upper-case SHA-1 is ours.
    missing = [query for query in missing if SHA1.upper() not in query]
    assert missing == []


@pytest.mark.parametrize(("query", "expected"), EXAMPLES, ids=[query for query, _ in EXAMPLES])
@pytest.mark.django_db
def test_each_example_parses_compiles_and_finds_what_the_guide_says(demo, guide_case, query, expected):
    node = parse_query(query)
    compile_q(node, case_id=demo.case.pk)
    compile_query(node).to_dict()
    if expected is not None:
        assert found(demo, query) == expected


def test_evidence_and_uid_examples(db, demo):
    assert parse_query("evidence:1b4e28ba-2fa1-11d2-883f-0016d3cca427") == Field(
        "evidence", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    )
    uid = parse_query("uid:1b4e28ba-2fa1-11d2-883f-0016d3cca427:0-3*")
    assert uid == Field("uid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427:0-3*", wildcard=True)
    for query in ("evidence:1b4e28ba-2fa1-11d2-883f-0016d3cca427", "uid:1b4e28ba-2fa1-11d2-883f-0016d3cca427:0-3*"):
        assert query in GUIDE


@pytest.mark.django_db
def test_evidence_and_uid_find_their_traces(demo, guide_case):
    assert found(demo, f"evidence:{guide_case.pk}") == ALL
    peter = Trace.objects.get(name="peter.txt")
    assert found(demo, f"uid:{peter.uid}*") == {"peter.txt"}


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a OR b c", Or((Text("a"), And((Text("b"), Text("c")))))),
        ("NOT a b", And((Not(Text("a")), Text("b")))),
        (
            "tag:relevant -type:folder (a OR b) AND c",
            And((Field("tag", "relevant"), Not(Field("type", "folder")), Or((Text("a"), Text("b"))), Text("c"))),
        ),
        ("e-mail", Text("e-mail")),
        ("foo\\:bar", Text("foo:bar")),
        ("\\-5", Text("-5")),
        ("\\AND", Text("AND")),
        ("what\\?", Text("what?")),
        ('"what?"', Text("what?", phrase=True)),
    ],
)
def test_combining_and_escaping_examples(query, tree):
    assert query in GUIDE
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("file.size>", "expected a value after 'file.size>' at column 11"),
        ("(invoice OR factuur", "this '(' is never closed at column 1"),
        ("tpye:email", "unknown field 'tpye' at column 1; did you mean 'type:'?"),
        (
            "file.size:[1 TO 2020-01-01]",
            "the two ends of the range must be alike (both numbers, both dates or both words), not a number and "
            "a date at column 17",
        ),
        ("Type:email", "unknown field 'Type' at column 1; did you mean 'type:'?"),
        ("file.modifiedOn:2020-02-30", "'2020-02-30' is not a valid date at column 17; write dates as YYYY-MM-DD"),
    ],
)
def test_mistake_examples(query, message):
    assert query.removeprefix("file.modifiedOn:") in GUIDE
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("file.size>abc", "file.size holds numbers: 'abc' after 'file.size>' is not a number at column 11"),
        ("file.size>>", "file.size holds numbers: '>' after 'file.size>' is not a number at column 11"),
    ],
)
def test_type_mistake_examples_are_refused_naming_the_column(query, message):
    # Issue #20 item 8: the parser reads these as words; the search refuses them (search/query/checks.py).
    from custodia.errors import ServiceError
    from search.selectors import query_parse

    assert f"{query} " in GUIDE
    with pytest.raises(ServiceError) as caught:
        query_parse(query)
    assert caught.value.detail.startswith(message)
    assert caught.value.status_code == 400


def test_the_warning_example_warns_as_the_guide_says(demo, guide_case):
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query="picture.exif.make:canon")
    assert "`picture.exif.make:canon`" in GUIDE
    [warning] = result["warnings"]
    assert warning["message"].startswith(
        "No trace of this case has the property picture.exif.make. Did you mean picture.exif.Make?"
    )
    assert warning["suggestion"] == "picture.exif.Make"
