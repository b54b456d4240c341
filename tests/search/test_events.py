"""The events timeline (issue #20 item 5): every timestamp property of the hits as one event row, kept by the
events index's triggers, searched and paged by keyset over the API and on a page, exported as CSV."""

from __future__ import annotations

import csv
import importlib
import io

import pytest
from django.db import connection

from audit.models import AuditEvent
from search.backends.sql import events as events_index
from search.events import event_meaning
from search.models import Trace
from tests.search.synthetic import synthetic_traces

TRACES = [
    # name, types, properties
    (
        "report.docx",
        ["file"],
        {
            "file.modifiedOn": "2019-03-07T10:00:00Z",
            "file.createdOn": "2019-03-01T08:00:00Z",
            "file.size": 4000,
        },
    ),
    (
        "holiday.jpg",
        ["file", "picture"],
        {"file.modifiedOn": "2020-07-01T12:00:00Z", "picture.takenOn": "2020-06-30T18:45:10"},
    ),
    (
        "Quarterly report",
        ["email"],
        {"email.sentOn": "2019-10-01T09:00:00+02:00", "email.subject": "Report Q3", "email.version": "2019-01-01"},
    ),
    ("history", ["browserHistory"], {"browserHistory.accessedOn": "2021-01-05T20:00:00.500Z", "browserHistory.u": "x"}),
    ("odd", ["file"], {"file.modifiedOn": "not a date", "file.accessedOn": 12345}),
]


@pytest.fixture
def traces(demo):
    return synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {"name": name, "path": f"/disk/{name}", "types": types, "properties": properties}
            for name, types, properties in TRACES
        ],
    )


def search(api, demo, user=None, **body):
    api.as_user(user or demo.detective)
    return api.post(f"/api/cases/{demo.case.pk}/events/search", body, format="json")


def rows(body) -> list[tuple[str, str, str, str]]:
    return [(event["time"], event["zone"], event["kind"], event["trace"]["name"]) for event in body["events"]]


def test_every_timestamp_property_is_one_event_in_time_order_with_its_zone(demo, api, traces):
    body = search(api, demo).json()
    assert rows(body) == [
        ("2019-03-01T08:00:00", "UTC", "created", "report.docx"),
        ("2019-03-07T10:00:00", "UTC", "modified", "report.docx"),
        ("2019-10-01T09:00:00", "+02:00", "sent", "Quarterly report"),
        ("2020-06-30T18:45:10", "local, unknown", "taken", "holiday.jpg"),
        ("2020-07-01T12:00:00", "UTC", "modified", "holiday.jpg"),
        ("2021-01-05T20:00:00", "UTC", "visited", "history"),
    ]
    event = body["events"][0]
    assert event["property"] == "file.createdOn"
    assert event["evidence"] == str(traces.pk) and event["evidence_label"] == "synthetic"
    assert body["cursor"] is None
    assert {"created", "modified", "sent", "taken", "visited"} <= set(body["kinds"])


def test_a_query_a_time_range_and_kinds_narrow_the_events(demo, api, traces):
    assert [r[3] for r in rows(search(api, demo, query="type:email").json())] == ["Quarterly report"]
    body = search(api, demo, start="2019-03-05", end="2019-12-31").json()
    assert [(r[2], r[3]) for r in rows(body)] == [("modified", "report.docx"), ("sent", "Quarterly report")]
    body = search(api, demo, kinds=["modified"]).json()
    assert [r[3] for r in rows(body)] == ["report.docx", "holiday.jpg"]
    assert search(api, demo, kinds=["exploded"]).json()["events"] == []
    body = search(api, demo, order="desc", limit=2).json()
    assert [r[3] for r in rows(body)] == ["history", "holiday.jpg"]


def test_keyset_paging_visits_every_event_once(demo, api, traces):
    seen, cursor = [], None
    while True:
        body = search(api, demo, limit=2, cursor=cursor).json()
        seen += [(event["time"], event["property"]) for event in body["events"]]
        cursor = body["cursor"]
        if not cursor:
            break
    assert len(seen) == 6 == len(set(seen)) and seen == sorted(seen)


def test_the_index_follows_writes_of_traces(demo, api, traces):
    trace = Trace.objects.get(name="odd")
    trace.properties = {**trace.properties, "file.modifiedOn": "2018-01-01T00:00:00Z"}
    trace.save()
    assert rows(search(api, demo).json())[0] == ("2018-01-01T00:00:00", "UTC", "modified", "odd")
    Trace.objects.filter(name="odd").delete()
    assert "odd" not in {r[3] for r in rows(search(api, demo).json())}


@pytest.mark.parametrize(
    "body",
    [
        {"start": "yesterday"},
        {"end": "2020-02-30"},
        {"cursor": "bm90IGpzb24="},
        {"cursor": "x" * 900},
        {"limit": 0},
        {"order": "sideways"},
        {"query": "file.size>"},
        {"kinds": "modified"},
    ],
)
def test_hostile_or_wrong_input_is_a_400(demo, api, traces, body):
    response = search(api, demo, **body)
    assert response.status_code == 400, response.content


def test_events_are_exported_as_csv_and_the_export_is_audited(demo, api, traces):
    api.as_user(demo.detective)
    response = api.get(f"/api/cases/{demo.case.pk}/events/export.csv", {"q": "type:file", "kind": "modified"})
    assert response.status_code == 200, response.content
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0][:4] == ["time", "zone", "kind", "property"]
    assert [(row[0], row[2], row[5]) for row in table[1:]] == [
        ("2019-03-07T10:00:00", "modified", "report.docx"),
        ("2020-07-01T12:00:00", "modified", "holiday.jpg"),
    ]
    assert AuditEvent.objects.filter(action="event.export.csv", actor="detective").exists()


def test_outsiders_and_custodians_see_no_events(demo, api, traces):
    assert search(api, demo, user=demo.outsider).status_code == 404
    assert search(api, demo, user=demo.custodian).status_code == 403


def test_the_events_page_lists_events_and_pages_on(demo, client, traces):
    client.force_login(demo.detective)
    response = client.get(f"/cases/{demo.case.pk}/events/", {"q": "", "limit": "2"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2019-03-01 08:00:00" in html and "local, unknown" not in html
    assert "Next page" in html and "export.csv" in html
    narrowed = client.get(f"/cases/{demo.case.pk}/events/", {"q": "type:picture", "kind": "taken"}).content.decode()
    assert "holiday.jpg" in narrowed and "local, unknown" in narrowed and "report.docx" not in narrowed
    wrong = client.get(f"/cases/{demo.case.pk}/events/", {"start": "nonsense"})
    assert wrong.status_code == 200 and "start:" in wrong.content.decode()


def test_meanings():
    assert event_meaning("file.modifiedOn") == "modified"
    assert event_meaning("browserHistory.accessedOn") == "visited"
    assert event_meaning("document.printedOn") == "printed"
    assert event_meaning("x.weirdOn") == "weird"


def test_the_events_migration_ran_the_index_as_it_is_now(db):
    # The newest events migration (0021 gave the events their traces' deleted flag) carries the schema frozen.
    migration = importlib.import_module("search.migrations.0021_event_deleted")
    assert migration.SQLITE_EVENTS_INSTALL == events_index.SQLITE_EVENTS_INSTALL
    assert migration.SQLITE_EVENTS_UNINSTALL == events_index.SQLITE_EVENTS_UNINSTALL
    assert migration.POSTGRES_EVENTS_INSTALL == events_index.POSTGRES_EVENTS_INSTALL
    assert migration.POSTGRES_EVENTS_UNINSTALL == events_index.POSTGRES_EVENTS_UNINSTALL
    from search.backends.sql.schema import installed_triggers

    assert events_index.EVENT_TRIGGERS[connection.vendor] <= installed_triggers(connection)


def test_the_span_migration_ran_the_span_columns_as_they_are_now(db):
    # PostgreSQL's first/last event columns of a trace (0020) carry their statements frozen too.
    migration = importlib.import_module("search.migrations.0020_trace_event_span")
    assert migration.POSTGRES_SPAN_INSTALL == events_index.POSTGRES_SPAN_INSTALL
    assert migration.POSTGRES_SPAN_UNINSTALL == events_index.POSTGRES_SPAN_UNINSTALL


def test_the_span_last_index_migration_ran_the_index_as_it_is_now(db):
    migration = importlib.import_module("search.migrations.0022_event_span_last_index")
    assert migration.POSTGRES_SPAN_LAST_INSTALL == events_index.POSTGRES_SPAN_LAST_INSTALL
    assert migration.POSTGRES_SPAN_LAST_UNINSTALL == events_index.POSTGRES_SPAN_LAST_UNINSTALL
