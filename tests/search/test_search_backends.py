"""The search backend suite: the same queries give the same traces on every backend that runs here.

`make test` runs this file on SQLite (FTS5) and on a real PostgreSQL (tsvector + GIN); the traces are
made here, not extracted, so it needs no corpus. Elasticsearch compiles the same ASTs
(tests/search/test_query_es.py) and runs this suite live when ES_URL is set (test_elasticsearch_backend.py).
"""

from __future__ import annotations

import ast
import importlib
import uuid
from pathlib import Path

import pytest
from django.db import connection

from search.backends.base import auto_date_interval
from search.backends.elasticsearch.documents import extension_of
from search.backends.sql import SqlSearchBackend, fulltext, schema
from search.models import INDEXED_NUMBERS, Trace, TraceTag
from search.query import parse_query
from search.selectors import traces_search
from tests.search.synthetic import synthetic_traces

TRACES = [
    # name, path, types, properties, text, deleted
    (
        "Passwords.txt",
        "/home/jdoe/Passwords.txt",
        ["file"],
        {"file.size": 116, "file.mimeType": "text/plain", "file.modifiedOn": "2019-03-07T10:00:00Z"},
        "username admin password hunter2",
        False,
    ),
    (
        "holiday.JPG",
        "/home/jdoe/Pictures/holiday.JPG",
        ["file", "picture"],
        {
            "file.size": 2_000_000,
            "file.mimeType": "image/jpeg",
            "file.modifiedOn": "2020-07-01T12:00:00.250Z",
            "picture.width": 4000,
            "picture.height": 3000,
        },
        "",
        False,
    ),
    (
        "Quarterly report",
        "/mail/Inbox/Quarterly report",
        ["email"],
        {
            "email.from": "alice@example.org",
            "email.subject": "Quarterly report Q3",
            "email.sentOn": "2019-10-01T09:00:00Z",
        },
        "Please find the report attached. Regards",
        False,
    ),
    (
        "report.final.docx",
        "/home/jdoe/Documents/report.final.docx",
        ["file", "document"],
        {
            "file.size": 20_480,
            "file.mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "file.modifiedOn": "2019-12-31T23:30:00Z",
            "document.author": "Bob Builder",
        },
        "The final report on the compass project",
        False,
    ),
    (".bashrc", "/home/jdoe/.bashrc", ["file"], {"file.size": 10, "file.mimeType": "text/plain"}, "", True),
    ("Documents", "/home/jdoe/Documents", ["folder"], {}, "", False),
    ("naïve café.txt", "/home/jdoe/naïve café.txt", ["file"], {"file.size": 5}, "crème brûlée", False),
]


@pytest.fixture
def traces(demo):
    fields = ("name", "path", "types", "properties", "text", "deleted")
    evidence = synthetic_traces(
        case=demo.case, registered_by=demo.custodian, rows=[dict(zip(fields, row, strict=True)) for row in TRACES]
    )
    passwords = Trace.objects.get(name="Passwords.txt")
    TraceTag.objects.create(trace=passwords, case=demo.case, name="relevant", created_by=demo.detective)
    return evidence


def names(demo, query: str, **options) -> set[str]:
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query=query, limit=500, **options)
    assert result["total"] == len(result["hits"])
    return {hit["name"] for hit in result["hits"]}


QUERIES = [
    ("passwords", {"Passwords.txt"}),
    ("PASSWORDS", {"Passwords.txt"}),
    # A name is its words: "passwords.txt" is the phrase "passwords txt".
    ("passwords.txt", {"Passwords.txt"}),
    ("hunter2", {"Passwords.txt"}),
    ("admin password", {"Passwords.txt"}),
    ('"username admin"', {"Passwords.txt"}),
    ('"admin username"', set()),
    ("report", {"Quarterly report", "report.final.docx"}),
    ('"final report"', {"report.final.docx"}),
    # Words, not substrings: "compass" holds "pass" but is not a word starting with it.
    ("pass*", {"Passwords.txt"}),
    ("pass", set()),
    ("repo*", {"Quarterly report", "report.final.docx"}),
    # String properties are words too: the sender's address, a document's author.
    ("alice", {"Quarterly report"}),
    ("builder", {"report.final.docx"}),
    ("example.org", {"Quarterly report"}),
    # Other wildcards look at names, paths and text as they are.
    ("*.docx", {"report.final.docx"}),
    ("holi?ay*", {"holiday.JPG"}),
    ("jdoe", {"Passwords.txt", "holiday.JPG", "report.final.docx", ".bashrc", "Documents", "naïve café.txt"}),
    ("report NOT type:email", {"report.final.docx"}),
    ("report AND NOT report.final.docx", {"Quarterly report"}),
    ("café", {"naïve café.txt"}),
    ("brûlée", {"naïve café.txt"}),
    ("type:picture", {"holiday.JPG"}),
    ("type:folder", {"Documents"}),
    ("type:PICTURE", {"holiday.JPG"}),
    ("type=picture", {"holiday.JPG"}),
    ("type=Picture", set()),
    ("type:pic*", {"holiday.JPG"}),
    ("type:?mail", {"Quarterly report"}),
    ("type:pict", set()),
    ("type:nothing", set()),
    ("NOT type:file", {"Quarterly report", "Documents"}),
    ("type:email OR type:folder", {"Quarterly report", "Documents"}),
    ("picture.width>=4000", {"holiday.JPG"}),
    ("file.size>100 AND file.size<=20480", {"Passwords.txt", "report.final.docx"}),
    ("file.size:[10 TO 116]", {"Passwords.txt", ".bashrc"}),
    ("file.size:{10 TO 116}", set()),
    ("picture.width:[* TO *]", {"holiday.JPG"}),
    # A day means the whole day, on every side.
    ("file.modifiedOn:2019-12-31", {"report.final.docx"}),
    ("file.modifiedOn:[2019-01-01 TO 2019-12-31]", {"Passwords.txt", "report.final.docx"}),
    ("file.modifiedOn<=2019-12-31", {"Passwords.txt", "report.final.docx"}),
    ("file.modifiedOn>2019-12-31", {"holiday.JPG"}),
    ("file.modifiedOn<2019-03-07", set()),
    ("file.modifiedOn>=2019-03-07T10:00:00Z", {"Passwords.txt", "report.final.docx", "holiday.JPG"}),
    ("file.modifiedOn>2020-07-01T12:00:00Z", set()),
    ("file.modifiedOn>=2020-07-01T14:00:00+02:00", {"holiday.JPG"}),
    ("email.sentOn:[2019-10-01 TO 2019-10-01]", {"Quarterly report"}),
    ("email.from:alice", {"Quarterly report"}),
    # ":" finds words of the property, not parts of words.
    ("email.from:ali", set()),
    ("email.subject:quarterly", {"Quarterly report"}),
    ('email.subject:"report q3"', {"Quarterly report"}),
    ("document.author:bob", {"report.final.docx"}),
    ('email.from="alice@example.org"', {"Quarterly report"}),
    ('email.from="alice"', set()),
    ("name:report*", {"report.final.docx"}),
    ("name:*.jpg", {"holiday.JPG"}),
    ("name:*.TXT", {"Passwords.txt", "naïve café.txt"}),
    ("name:*l.docx", {"report.final.docx"}),
    ("deleted:true", {".bashrc"}),
    ("tag:relevant", {"Passwords.txt"}),
    ("tag:rel*", {"Passwords.txt"}),
    ("NOT tag:relevant AND type:file AND NOT deleted:true", {"holiday.JPG", "report.final.docx", "naïve café.txt"}),
    ("(alice OR builder) AND NOT type:document", {"Quarterly report"}),
    ('hunter2 OR builder OR pass* OR "final report"', {"Passwords.txt", "report.final.docx"}),
    ("hunter2 OR type:picture", {"Passwords.txt", "holiday.JPG"}),
]


@pytest.mark.parametrize(("query", "expected"), QUERIES)
def test_query_finds_the_same_traces_on_every_backend(demo, traces, query, expected):
    assert names(demo, query) == expected


def _add_trace(evidence, *, name: str, properties: dict, types=("file",)) -> Trace:
    return Trace.objects.create(
        uid=f"{evidence.pk}:0-{name}",
        evidence=evidence,
        case=evidence.case,
        run=evidence.extraction_runs.get(),
        ordinal=100 + Trace.objects.filter(evidence=evidence).count(),
        name=name,
        path=f"/{name}",
        types=list(types),
        properties=properties,
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # The day of the last second before midnight, with a fraction, is still that day on every side.
        ("file.modifiedOn:2019-03-07", {"Passwords.txt", "late.txt"}),
        ("file.modifiedOn=2019-03-07", {"Passwords.txt", "late.txt"}),
        ("file.modifiedOn>2019-03-07", {"report.final.docx", "holiday.JPG"}),
        ("file.modifiedOn<=2019-03-07", {"Passwords.txt", "late.txt"}),
        ("file.modifiedOn<2019-03-08", {"Passwords.txt", "late.txt"}),
        ("file.modifiedOn>=2019-03-08", {"report.final.docx", "holiday.JPG"}),
        ("file.modifiedOn:{2019-03-07 TO 2019-12-31}", set()),
        ("file.modifiedOn:[2019-03-07 TO 2019-03-07]", {"Passwords.txt", "late.txt"}),
        ("file.modifiedOn>=2019-03-07T23:59:59Z", {"late.txt", "report.final.docx", "holiday.JPG"}),
        ("file.modifiedOn>2019-03-07T23:59:59Z", {"report.final.docx", "holiday.JPG"}),
        ("file.modifiedOn:9999-12-31", set()),
        # A value a tool wrote that is not a number or an ISO date is kept, found as words, and never compared.
        ("file.size>0", {"Passwords.txt", "holiday.JPG", "report.final.docx", ".bashrc", "naïve café.txt"}),
        ("file.size:large", {"odd.bin"}),
        (
            "file.size:[* TO *]",
            {"Passwords.txt", "holiday.JPG", "report.final.docx", ".bashrc", "naïve café.txt", "odd.bin"},
        ),
        ("file.modifiedOn:[* TO *] AND name:odd*", {"odd.bin"}),
    ],
)
def test_indexed_properties_compare_numbers_and_iso_dates(demo, traces, query, expected):
    _add_trace(traces, name="late.txt", properties={"file.modifiedOn": "2019-03-07T23:59:59.900Z"})
    _add_trace(traces, name="odd.bin", properties={"file.size": "large", "file.modifiedOn": 12345})
    assert names(demo, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("picture.height:[2000 TO 3000]", {"holiday.JPG"}),
        ("picture.height:{2000 TO 3000}", set()),
        ("picture.height=3000", {"holiday.JPG"}),
        ("picture.width>0", {"holiday.JPG", "small.png"}),
        ("picture.width<100", {"small.png"}),
        ("gps.latitude>52.3", {"geo.jpg"}),
        ("gps.latitude:52.37", {"geo.jpg"}),
        ("gps.latitude:[-90 TO 0]", {"south.jpg"}),
        ("gps.latitude<-33.8", {"south.jpg"}),
        ("disk.bytes=9007199254740993", {"geo.jpg"}),  # past a double's precision, still exact
        ("disk.bytes>9007199254740992", {"geo.jpg"}),
        # A negated comparison holds where the property is missing, as in Elasticsearch.
        ("type:picture AND NOT picture.width>=4000", {"small.png", "geo.jpg", "south.jpg"}),
        ("picture.width>=100 OR gps.latitude<0", {"holiday.JPG", "south.jpg"}),
        # Only numbers compare as numbers: not the words or the booleans a tool wrote.
        ("camera.flash>0", set()),
        ("picture.model>0", set()),
    ],
)
def test_numeric_properties_compare_through_the_number_index(demo, traces, query, expected):
    pictures = ("file", "picture")
    _add_trace(traces, name="small.png", types=pictures, properties={"picture.width": 64, "camera.flash": True})
    _add_trace(
        traces,
        name="geo.jpg",
        types=pictures,
        properties={"gps.latitude": 52.37, "picture.width": "wide", "disk.bytes": 9007199254740993},
    )
    _add_trace(traces, name="south.jpg", types=pictures, properties={"gps.latitude": -33.86, "picture.model": "X100"})
    assert names(demo, query) == expected


def test_comparisons_on_numeric_properties_read_the_number_index(demo, traces):
    plan = _query_plan(demo, "picture.width>=4000")
    assert fulltext.NUMBER_TABLE in plan
    assert "properties" not in plan


def test_the_number_index_leaves_out_the_numbers_with_columns_of_their_own():
    assert set(schema.NUMBERS_IN_COLUMNS) == set(INDEXED_NUMBERS)


def _query_plan(demo, query: str) -> str:
    matching = SqlSearchBackend().matching(case_id=demo.case.pk, node=parse_query(query))
    sql, params = matching.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}" if connection.vendor == "postgresql" else f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ("file.size>100000000", "file_size"),
        ("file.size:[1000 TO 5000]", "file_size"),
        ("file.modifiedOn:[2019-01-01 TO 2019-12-31]", "modified_on"),
        ("email.sentOn>=2024-06-01", "sent_on"),
        ("type:email", "types"),
        ("deleted:true", "deleted"),
    ],
)
def test_comparisons_on_indexed_properties_and_types_use_their_index(demo, traces, query, column):
    plan = _query_plan(demo, query)
    if connection.vendor == "sqlite":
        assert next(index.name for index in Trace._meta.indexes if index.fields == ["case", column]) in plan
    else:
        # PostgreSQL reads a table of a few rows by any index on the case; what matters is that the
        # condition is on the indexed column, not on the JSON of every trace.
        assert column in plan
        assert "properties" not in plan


def test_evidence_field_finds_the_evidence_traces(demo, traces):
    assert len(names(demo, f"evidence:{traces.pk}")) == len(TRACES)
    assert names(demo, f"evidence:{uuid.uuid4()}") == set()


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-size", ["holiday.JPG", "report.final.docx", "Passwords.txt", ".bashrc", "naïve café.txt"]),
        ("size", ["naïve café.txt", ".bashrc", "Passwords.txt", "report.final.docx", "holiday.JPG"]),
        ("modifiedOn", ["Passwords.txt", "report.final.docx", "holiday.JPG"]),
        ("-modifiedOn", ["holiday.JPG", "report.final.docx", "Passwords.txt"]),
        ("name", [".bashrc", "Documents", "Passwords.txt", "Quarterly report", "holiday.JPG"]),
        ("", ["Passwords.txt", "holiday.JPG", "Quarterly report", "report.final.docx", ".bashrc"]),
    ],
)
def test_sorts_put_traces_without_the_property_last(demo, traces, sort, expected):
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query="", sort=sort, limit=len(expected))
    assert [hit["name"] for hit in result["hits"]] == expected
    everything = traces_search(user=demo.detective, case_id=demo.case.pk, query="", sort=sort, limit=500)
    assert len(everything["hits"]) == len(TRACES)


def test_facets_count_types_extensions_mime_types_tags_and_deleted(demo, traces):
    facets = traces_search(user=demo.detective, case_id=demo.case.pk, query="")["facets"]
    assert {f["value"]: f["count"] for f in facets["type"]} == {
        "file": 5,
        "picture": 1,
        "email": 1,
        "document": 1,
        "folder": 1,
    }
    assert facets["type"][0] == {"value": "file", "count": 5}
    assert {f["value"]: f["count"] for f in facets["extension"]} == {"txt": 2, "jpg": 1, "docx": 1}
    assert {f["value"]: f["count"] for f in facets["mimeType"]}["text/plain"] == 2
    assert facets["tag"] == [{"value": "relevant", "count": 1}]
    assert {f["value"]: f["count"] for f in facets["deleted"]} == {False: 6, True: 1}
    narrowed = traces_search(user=demo.detective, case_id=demo.case.pk, query="type:file AND report")["facets"]
    assert narrowed["type"] == [{"value": "document", "count": 1}, {"value": "file", "count": 1}]


def test_date_histogram_chooses_an_interval_and_counts_by_bucket(demo, traces):
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query="", facets=["date"])
    assert result["date_interval"] == "month"
    assert result["facets"]["date"] == [
        {"value": "2019-03-01", "count": 1},
        {"value": "2019-12-01", "count": 1},
        {"value": "2020-07-01", "count": 1},
    ]
    by_year = traces_search(user=demo.detective, case_id=demo.case.pk, query="", facets=["date"], date_interval="year")[
        "facets"
    ]["date"]
    assert by_year == [{"value": "2019-01-01", "count": 2}, {"value": "2020-01-01", "count": 1}]
    sent = traces_search(
        user=demo.detective, case_id=demo.case.pk, query="", facets=["date"], date_property="email.sentOn"
    )
    assert sent["date_interval"] == "hour"
    assert sent["facets"]["date"] == [{"value": "2019-10-01T09:00", "count": 1}]


def test_auto_interval_keeps_the_timeline_readable():
    assert auto_date_interval("2019-01-01T00:00:00Z", "2019-01-02T00:00:00Z") == "hour"
    assert auto_date_interval("2019-01-01T00:00:00Z", "2019-03-01T00:00:00Z") == "day"
    assert auto_date_interval("2010-01-01T00:00:00Z", "2019-03-01T00:00:00Z") == "month"
    assert auto_date_interval("1990-01-01T00:00:00Z", "2019-03-01T00:00:00Z") == "year"
    assert auto_date_interval(None, None) == "month"


@pytest.mark.parametrize(
    "name",
    [
        "Photo.JPG",
        "archive.tar.gz",
        ".bashrc",
        "README",
        "trailing.",
        "a.b c",
        "x.abcdefghijklmnopq",
        "x.abcdefghijklmnop",
        "..",
        "naïve café.TXT",
        "$MFT",
        "file.txt:Zone.Identifier",
    ],
)
def test_the_extension_column_agrees_with_the_elasticsearch_documents(demo, traces, name):
    trace = Trace.objects.filter(evidence=traces).first()
    Trace.objects.filter(pk=trace.pk).update(name=name)
    assert Trace.objects.get(pk=trace.pk).extension == extension_of(name)


def test_the_index_follows_updates_upserts_and_deletes(demo, traces):
    trace = Trace.objects.get(name="Passwords.txt")
    Trace.objects.filter(pk=trace.pk).update(name="credentials.txt", text="nothing here")
    assert names(demo, "hunter2") == set()
    assert names(demo, "credentials") == {"credentials.txt"}
    # The extraction publisher's upsert (a redelivered task writing the same uid again).
    again = Trace(**{f.attname: getattr(trace, f.attname) for f in Trace._meta.concrete_fields if not f.generated})
    again.pk = None
    again.name, again.text = "Passwords.txt", "hunter2 is back"
    Trace.objects.bulk_create([again], update_conflicts=True, unique_fields=["uid"], update_fields=["name", "text"])
    assert names(demo, "hunter2") == {"Passwords.txt"}
    assert names(demo, "credentials") == set()
    TraceTag.objects.filter(trace__name="Passwords.txt").delete()
    Trace.objects.filter(name="Passwords.txt").delete()
    assert names(demo, "hunter2") == set()


def test_the_full_text_triggers_exist_after_all_migrations(db):
    assert schema.EXPECTED_TRIGGERS[connection.vendor] <= schema.installed_triggers(connection)


def test_the_latest_migrations_ran_the_schema_as_it_is_now():
    # schema.py is the schema now; each migration carries, frozen, the statements it ran. A change to
    # schema.py goes with a new migration carrying it: point these at that migration.
    words = importlib.import_module("search.migrations.0014_stream_words_batch_triggers")
    numbers = importlib.import_module("search.migrations.0012_trace_number_index")
    assert words.SQLITE_INSTALL == schema.SQLITE_INSTALL
    assert words.POSTGRES_INSTALL == schema.POSTGRES_INSTALL + schema.POSTGRES_NUMBERS_INSTALL
    assert numbers.SQLITE_INSTALL == schema.SQLITE_NUMBERS_INSTALL
    assert (numbers.SQLITE_UNINSTALL, numbers.POSTGRES_UNINSTALL) == (
        schema.SQLITE_NUMBERS_UNINSTALL,
        schema.POSTGRES_NUMBERS_UNINSTALL,
    )
    assert schema.POSTGRES_WORDS_FUNCTION in words.POSTGRES_INSTALL


def test_search_migrations_import_no_application_code():
    # An old migration means the same thing forever: it carries its SQL, it does not import today's code.
    # It may load an older migration of its own (frozen too) with importlib, to reverse to that one's SQL.
    folder = Path(importlib.import_module("search.migrations").__file__).parent
    for path in sorted(folder.glob("0*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
                loaded = [argument.value for argument in node.args if isinstance(argument, ast.Constant)]
                assert loaded and all(
                    name.startswith("search.migrations.0") and name.split(".")[-1] < path.stem for name in loaded
                ), (path.name, loaded)
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert all(module.split(".")[0] in ("django", "importlib") for module in modules), (path.name, modules)


def test_words_are_split_the_same_way_in_python_and_in_the_index():
    assert fulltext.words("Passwords.TXT /home/j_doe café-crème 2019-03-07T10:00Z") == [
        "passwords",
        "txt",
        "home",
        "j",
        "doe",
        "café",
        "crème",
        "2019",
        "03",
        "07t10",
        "00z",
    ]


def test_trace_counts_of_an_evidence_in_one_pass(demo, traces):
    from search.selectors import trace_counts

    first = Trace.objects.filter(evidence=traces).first()
    Trace.objects.create(
        uid=f"{traces.pk}:0-99",
        evidence=traces,
        case=demo.case,
        run=first.run,
        ordinal=99,
        name="volume",
        path="/volume",
        types=["encryptedVolume"],
        properties={"encryptedVolume.unlocked": False},
        sha256="ab" * 32,
        has_errors=True,
    )
    assert trace_counts(evidence=traces) == {
        "traces": len(TRACES) + 1,
        "with_content": 1,
        "deleted": 1,
        "with_errors": 1,
        "locked_volumes": 1,
    }


def test_a_query_works_as_a_subquery_where_the_table_has_an_alias(demo, traces):
    matching = SqlSearchBackend().matching(case_id=demo.case.pk, node=parse_query("hunter2 OR pass* type:file"))
    tags = TraceTag.objects.filter(trace__in=matching.values("pk"))
    assert [tag.trace.name for tag in tags] == ["Passwords.txt"]
    assert "U0" in str(tags.query)  # the traces are the subquery's aliased table


def _walk(demo, **options) -> tuple[list[str], list[dict]]:
    """Every page of a search, as a detective pages through it: the names in order, and each page."""
    walked, pages, cursor = [], [], None
    while True:
        page = traces_search(user=demo.detective, case_id=demo.case.pk, cursor=cursor, **options)
        walked += [hit["name"] for hit in page["hits"]]
        pages.append(page)
        cursor = page["cursor"]
        if not cursor:
            return walked, pages


def test_a_count_limit_counts_and_facets_only_the_first_hits_in_the_sort_order(demo, traces, settings):
    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 3
    # type:file holds five traces; in the walk's order the first three are these.
    first = traces_search(user=demo.detective, case_id=demo.case.pk, query="type:file", limit=2)
    assert (first["total"], first["exact"], first["facets_sampled"]) == (3, False, True)
    assert [hit["name"] for hit in first["hits"]] == ["Passwords.txt", "holiday.JPG"]
    assert first["cursor"]
    facets = first["facets"]
    assert sum(f["count"] for f in facets["deleted"]) == 3
    if connection.vendor == "sqlite":
        assert {f["value"]: f["count"] for f in facets["deleted"]} == {False: 3}
        assert {f["value"]: f["count"] for f in facets["type"]} == {"file": 3, "picture": 1, "document": 1}
        assert {f["value"]: f["count"] for f in facets["extension"]} == {"txt": 1, "jpg": 1, "docx": 1}
        assert facets["tag"] == [{"value": "relevant", "count": 1}]
    else:
        # PostgreSQL samples any three hits, as its indexes yield them: which three depends on where earlier
        # tests' rows left these in the table. Three of the five, whichever: counted and faceted alike.
        types = {f["value"]: f["count"] for f in facets["type"]}
        assert types["file"] == 3 and types.get("picture", 0) <= 1 and types.get("document", 0) <= 1
        assert sum(f["count"] for f in facets["extension"]) <= 3
        assert facets["tag"] in ([], [{"value": "relevant", "count": 1}])

    exact = traces_search(user=demo.detective, case_id=demo.case.pk, query="type:file", limit=2, exact=True)
    assert (exact["total"], exact["exact"], exact["facets_sampled"]) == (5, True, False)
    assert {f["value"]: f["count"] for f in exact["facets"]["type"]} == {"file": 5, "picture": 1, "document": 1}

    # Paging on past the limit loses and repeats nothing: each page is counted to its own end.
    walked, pages = _walk(demo, query="type:file", limit=2)
    everything = traces_search(user=demo.detective, case_id=demo.case.pk, query="type:file", limit=500, exact=True)
    assert walked == [hit["name"] for hit in everything["hits"]]
    assert [(page["total"], page["exact"]) for page in pages] == [(3, False), (4, False), (5, True)]


@pytest.mark.parametrize("sort", ["name", "-name", "size", "-modifiedOn", ""])
def test_a_count_limit_keeps_every_page_of_every_sort(demo, traces, settings, sort):
    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 2
    # Words too: on SQLite the word index drives those, with the rest of the query as a condition.
    queries = (
        "",
        "type:file",
        "NOT deleted:true",
        "jdoe",
        "jdoe type:file -deleted:true",
        "(jdoe OR mail) -txt",
        # On SQLite the types index drives the first, one walk per combination of types; the second not.
        "type:file -picture.width>=4000",
        "type:f* file.size>5",
    )
    for query in queries:
        walked, pages = _walk(demo, query=query, sort=sort, limit=2)
        everything = traces_search(user=demo.detective, case_id=demo.case.pk, query=query, sort=sort, limit=500)
        assert everything["exact"]
        assert walked == [hit["name"] for hit in everything["hits"]], (query, sort)
        assert pages[-1]["exact"] and pages[-1]["total"] == everything["total"]


def test_a_sampled_search_leaves_the_callers_transaction_as_it_was(demo, traces, settings):
    # On PostgreSQL the budget sets a timeout and the hits table may go at commit: inside a caller's
    # transaction, the planner's settings and the timeout are as they were after the search, and the hits
    # table is gone; the page (bounded by the sample's ids) is the exact search's first page.
    from django.db import transaction

    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 2
    exact = traces_search(user=demo.detective, case_id=demo.case.pk, query="jdoe", limit=2, exact=True)
    # The sample is any three hits, in the order PostgreSQL's scan yields them (the table's physical order,
    # which other tests' rows change): every hit is tagged, so the tag facet is the same whichever three.
    every_hit = traces_search(user=demo.detective, case_id=demo.case.pk, query="jdoe", limit=100, exact=True)
    assert every_hit["total"] >= 3
    for trace in Trace.objects.filter(uid__in=[hit["uid"] for hit in every_hit["hits"]]).exclude(tags__name="relevant"):
        TraceTag.objects.create(trace=trace, case=demo.case, name="relevant", created_by=demo.detective)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL work_mem = '5MB'")
        result = traces_search(user=demo.detective, case_id=demo.case.pk, query="jdoe", limit=2)
        assert (result["exact"], result["facets_sampled"]) == (False, True)
        assert [hit["uid"] for hit in result["hits"]] == [hit["uid"] for hit in exact["hits"]]
        # Every sampled hit is tagged: the facet counts the sample (its size differs between the databases).
        assert [bucket["value"] for bucket in result["facets"]["tag"]] == ["relevant"]
        assert result["facets"]["tag"][0]["count"] >= settings.CUSTODIA_SEARCH_COUNT_LIMIT
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT current_setting('enable_seqscan'), current_setting('enable_indexscan'), "
                "current_setting('work_mem'), current_setting('statement_timeout')"
            )
            assert cursor.fetchone() == ("on", "on", "5MB", "0")
            cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'custodia_hits_%%'")
            assert cursor.fetchone()[0] == 0


def test_a_search_under_the_count_limit_is_exact(demo, traces, settings):
    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 5
    result = traces_search(
        user=demo.detective, case_id=demo.case.pk, query="type:file", facets=["type", "date"], limit=2
    )
    assert (result["total"], result["exact"], result["facets_sampled"]) == (5, True, False)
    assert sum(bucket["count"] for bucket in result["facets"]["date"]) == 3
    whole_case = traces_search(user=demo.detective, case_id=demo.case.pk, query="", facets=["date"], limit=2)
    assert (whole_case["total"], whole_case["exact"]) == (5, False)
    # The timeline of the first five traces in the walk: three of them have a modification date.
    assert sum(bucket["count"] for bucket in whole_case["facets"]["date"]) == 3


def test_on_sqlite_words_drive_the_first_hits_in_id_order(demo, traces):
    from search.backends.sql.planner import word_driven_first_ids

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's planner finds word hits through the GIN index itself")
    options = {"case_id": demo.case.pk, "count": 3}
    sql, params = word_driven_first_ids(node=parse_query("jdoe type:file"), sort=("id",), **options)
    assert f"FROM {fulltext.FTS_TABLE} JOIN" in sql and f"ORDER BY {fulltext.FTS_TABLE}.rowid LIMIT 3" in sql
    assert params[0] == '("jdoe")'
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = [row[0] for row in cursor.fetchall()]
    expected = Trace.objects.filter(case=demo.case, name__in=["Passwords.txt", "holiday.JPG", "report.final.docx"])
    assert found == sorted(expected.values_list("pk", flat=True))
    assert word_driven_first_ids(node=parse_query("type:file"), sort=("id",), **options) is None
    assert word_driven_first_ids(node=parse_query("jdoe"), sort=("name", "id"), **options) is None


def test_on_sqlite_types_drive_the_first_hits_in_id_order(demo, traces):
    from search.backends.sql.planner import type_driven_first_ids

    if connection.vendor != "sqlite":
        pytest.skip("on PostgreSQL the (case, types) index does not hold the ids in order")
    options = {"case_id": demo.case.pk, "count": 3}
    sql, params = type_driven_first_ids(node=parse_query("type:file -deleted:true"), sort=("id",), **options)
    # One walk of the index per combination holding "file": ["file"], ["file", "picture"], ["file", "document"].
    assert sql.count(" UNION ALL ") == 2 and sql.endswith("ORDER BY 1 LIMIT 3")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = [row[0] for row in cursor.fetchall()]
    kept = Trace.objects.filter(case=demo.case, deleted=False).order_by("pk")
    assert found == [trace.pk for trace in kept if "file" in trace.types][:3]
    assert type_driven_first_ids(node=parse_query("jdoe"), sort=("id",), **options) is None
    assert type_driven_first_ids(node=parse_query("type:nothing"), sort=("id",), **options) is None
    assert type_driven_first_ids(node=parse_query("type:file"), sort=("name", "id"), **options) is None


def test_a_sample_is_filled_with_the_configured_work_memory_and_a_bad_size_is_refused(settings):
    from django.core.exceptions import ImproperlyConfigured

    from search.backends.sql.planner import SAMPLE_WORK_MEM, sample_work_mem

    settings.CUSTODIA_SEARCH_SAMPLE_WORK_MEM = ""
    assert sample_work_mem() == SAMPLE_WORK_MEM == "64MB"
    settings.CUSTODIA_SEARCH_SAMPLE_WORK_MEM = "16MB"
    assert sample_work_mem() == "16MB"
    for bad in ("64MB; RESET ALL", "0MB", "lots", "64 MB"):
        settings.CUSTODIA_SEARCH_SAMPLE_WORK_MEM = bad
        with pytest.raises(ImproperlyConfigured, match="CUSTODIA_SEARCH_SAMPLE_WORK_MEM"):
            sample_work_mem()
