"""The events timeline's plans (search/backends/sql/events.py) return the same events: driven from the few
matching traces, the walk of the time index probing each event's trace, and the walk a chunk at a time,
for queries with few and many hits, time ranges, kinds, both orders and every page (issue #20 item 5)."""

from __future__ import annotations

import itertools
import random

import pytest

from search.backends.sql import events as events_index
from search.events import events_search
from tests.search.synthetic import synthetic_traces

TRACE_COUNT = 160


def _rows() -> list[dict]:
    """Files whose times come first (as a disk's folders do), e-mails and pictures later, "invoice" in some
    texts; times shared by several traces, so the keyset's trace and name break ties."""
    chooser = random.Random(20)  # nosec B311  # test data, not a secret
    rows = []
    for number in range(TRACE_COUNT):
        kind = ("file", "email", "picture", "file")[number % 4]
        year = 2015 + (number * 7) % 10 if kind == "file" else 2019 + number % 5
        moment = f"{year}-{chooser.randint(1, 12):02d}-{chooser.choice([1, 1, 15]):02d}T10:00:00Z"
        properties = {"file.modifiedOn": moment, "file.createdOn": f"{year - 1}-06-01T08:00:00Z"}
        if kind == "email":
            properties["email.sentOn"] = moment.replace("T10", "T09")
        if kind == "picture":
            properties["picture.takenOn"] = moment[:19]
        rows.append(
            {
                "name": f"{kind}-{number}",
                "path": f"/disk/{kind}-{number}",
                "types": ["file", kind] if kind != "file" else ["file"],
                "properties": properties,
                "text": "invoice for march" if number % 9 == 0 else "nothing to see",
                "deleted": number % 11 == 0,
            }
        )
    return rows


@pytest.fixture
def many_traces(demo):
    return synthetic_traces(case=demo.case, registered_by=demo.custodian, rows=_rows())


def _every_page(demo, *, plan: str, page: int, **search) -> list[tuple]:
    seen, cursor = [], None
    while True:
        body = events_search(user=demo.detective, case_id=demo.case.pk, limit=page, cursor=cursor, plan=plan, **search)
        seen += [(event["time"], event["trace"]["uid"], event["property"]) for event in body["events"]]
        cursor = body["cursor"]
        if cursor is None:
            return seen


def _spy(monkeypatch, *names: str) -> list[tuple[str, dict]]:
    """Each call of the events index's functions ``names`` (still called through): its name and arguments, in order."""
    calls: list[tuple[str, dict]] = []
    for name in names:
        original = getattr(events_index, name)

        def spying(_original=original, _name=name, **arguments):
            calls.append((_name, arguments))
            return _original(**arguments)

        monkeypatch.setattr(events_index, name, spying)
    return calls


SEARCHES = [
    {"query": "type:email"},
    {"query": "invoice"},
    {"query": "type:picture OR invoice", "descending": True},
    {"query": "deleted:true", "kinds": ["modified", "sent"]},
    {"query": "type:email", "start": "2020-01-01", "end": "2022-12-31", "kinds": ["sent"]},
    {"query": "invoice", "start": "2016-01-01", "end": "2021-06-30", "descending": True},
    {"query": "type:nothing"},
    {"query": "type:email -deleted:true", "descending": True},
    {"query": "invoice AND type:file AND deleted:false"},
    {"query": "", "start": "2019-01-01", "end": "2019-12-31"},
]


@pytest.mark.parametrize("search", SEARCHES, ids=lambda search: " ".join(f"{k}={v}" for k, v in search.items()))
@pytest.mark.parametrize("few", [0, 20, 10_000], ids=["never-few", "some-few", "always-few"])
def test_every_plan_returns_the_same_events_page_after_page(demo, many_traces, monkeypatch, search, few):
    # Small thresholds, so a query is "few" or "many" and the chunked walk takes several growing chunks.
    monkeypatch.setattr(events_index, "DENSE_WALK", 4)
    monkeypatch.setattr(events_index, "FEW_TRACES", few)
    monkeypatch.setattr(events_index, "FIRST_CHUNK", 5)
    monkeypatch.setattr(events_index, "FIRST_WINDOW", 5)
    monkeypatch.setattr(events_index, "SMALLEST_WINDOW", 2)
    expected = _every_page(demo, plan=events_index.PLAN_SEMI_JOIN, page=500, **search)
    if search["query"] != "type:nothing":
        assert len(expected) > 10
    assert len(set(expected)) == len(expected)
    for plan in events_index.PLANS:
        for page in (7, 500):
            assert _every_page(demo, plan=plan, page=page, **search) == expected, (plan, page)


def _by_hand(demo, *, types: set[str], kinds: set[str] | None = None) -> list[tuple]:
    """The events of the traces with any of ``types``, from the traces' own properties, in time order."""
    from search.events import event_meaning
    from search.models import Trace

    found = []
    for trace in Trace.objects.filter(case=demo.case):
        if not types & set(trace.types):
            continue
        for name, value in trace.properties.items():
            if name.endswith("On") and (kinds is None or event_meaning(name) in kinds):
                found.append((value[:19], trace.pk, trace.uid, name))
    return [(time, uid, name) for time, _, uid, name in sorted(found)]


@pytest.mark.parametrize("query", ["type:email", "type:EMAIL", "type:e*l", "type:file type:picture"])
def test_a_type_query_reads_the_events_own_types(demo, many_traces, monkeypatch, query):
    calls = _spy(monkeypatch, "_by_types")
    wanted = {"picture"} if query == "type:file type:picture" else {"email"}
    assert _every_page(demo, plan=events_index.PLAN_AUTO, page=9, query=query) == _by_hand(demo, types=wanted)
    walked = [arguments for _, arguments in calls]
    assert walked and walked[0]["where"].traces_sql is None
    sent = _every_page(demo, plan=events_index.PLAN_AUTO, page=500, query=query, kinds=["sent"])
    assert sent == _by_hand(demo, types=wanted, kinds={"sent"})


def test_the_events_follow_a_change_of_their_traces_types(demo, many_traces):
    from search.models import Trace

    trace = Trace.objects.filter(case=demo.case, name="file-0").get()
    trace.types = ["file", "email"]
    trace.save()
    uids = {uid for _, uid, _ in _every_page(demo, plan=events_index.PLAN_AUTO, page=500, query="type:email")}
    assert trace.uid in uids


def test_the_chunked_walk_grows_its_chunks_and_stops_at_the_page(demo, many_traces, monkeypatch):
    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    monkeypatch.setattr(events_index, "FIRST_CHUNK", 3)
    calls = _spy(monkeypatch, "_walk")
    # "invoice" is in one trace in nine: the first page of 5 takes a few chunks, each four times the last.
    body = events_search(
        user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=events_index.PLAN_DRIVE_OR_CHUNKS
    )
    assert len(body["events"]) == 5 and body["cursor"]
    walked = [arguments["limit"] for _, arguments in calls]
    assert walked[:3] == [6, 24, 96][: len(walked[:3])] and len(walked) >= 2


def test_an_unknown_plan_is_refused(demo, many_traces):
    from custodia.errors import ServiceError

    with pytest.raises(ServiceError):
        events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", plan="fastest")


def test_the_materialised_hits_table_is_dropped_after_each_page(demo, many_traces, monkeypatch):
    from django.db import connection

    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    plan = events_index.PLAN_DRIVE_OR_MATERIALISE
    first = events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=plan)
    again = events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=plan)
    assert first["events"] and again["events"] == first["events"]
    assert events_index.HITS_TABLE not in connection.introspection.table_names(include_views=False)
    assert _hits_tables() == 0


@pytest.mark.parametrize("query", ["invoice", "invoice AND type:email -deleted:true"])
def test_auto_materialises_many_hits_on_sqlite_and_windows_them_on_postgresql(demo, many_traces, monkeypatch, query):
    from django.db import connection

    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    calls = _spy(monkeypatch, "_materialised", "_windowed", "_covering_walk")
    auto = _every_page(demo, plan=events_index.PLAN_AUTO, page=500, query=query)
    assert auto == _every_page(demo, plan=events_index.PLAN_SEMI_JOIN, page=500, query=query)
    # "invoice" is in one trace in nine: not dense enough for PostgreSQL's walk.
    taken = [name for name, _ in calls]
    assert taken[0] == ("_windowed" if connection.vendor == "postgresql" else "_materialised")


@pytest.mark.parametrize("query", ["deleted:true", "-deleted:true", "type:email deleted:false", "deleted=true"])
def test_a_deleted_query_reads_the_events_own_flag(demo, many_traces, monkeypatch, query):
    from search.models import Trace

    calls = _spy(monkeypatch, "_by_types")
    wanted = not query.startswith("-") and "false" not in query
    emails = "type:email" in query
    expected = sorted(
        (value[:19], trace.pk, trace.uid, name)
        for trace in Trace.objects.filter(case=demo.case, deleted=wanted)
        if not emails or "email" in trace.types
        for name, value in trace.properties.items()
        if name.endswith("On")
    )
    found = _every_page(demo, plan=events_index.PLAN_AUTO, page=9, query=query)
    assert found == [(time, uid, name) for time, _, uid, name in expected] and found
    walked = [arguments for _, arguments in calls]
    assert walked and walked[0]["where"].traces_sql is None and walked[0]["where"].deleted is wanted


def test_deleted_true_and_false_at_once_is_no_event(demo, many_traces):
    body = events_search(user=demo.detective, case_id=demo.case.pk, query="deleted:true deleted:false")
    assert body["events"] == [] and body["cursor"] is None


def test_the_events_follow_a_change_of_their_traces_deleted_flag(demo, many_traces):
    from search.models import Trace

    trace = Trace.objects.filter(case=demo.case, name="file-3").get()
    assert not trace.deleted
    trace.deleted = True
    trace.save()
    uids = {uid for _, uid, _ in _every_page(demo, plan=events_index.PLAN_AUTO, page=500, query="deleted:true")}
    assert trace.uid in uids


def _hits_tables() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        query = (
            "SELECT count(*) FROM pg_class WHERE relname = %s"
            if connection.vendor == "postgresql"
            else "SELECT count(*) FROM sqlite_temp_master WHERE name = %s"
        )
        cursor.execute(query, [events_index.HITS_TABLE])
        return cursor.fetchone()[0]


def test_a_failed_page_leaves_no_hits_table_behind(demo, many_traces, monkeypatch):
    from django.db import DatabaseError

    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    monkeypatch.setattr(events_index, "FIRST_WORD_WALK", 0)  # SQLite: straight to the hits table
    plan = events_index.PLAN_DRIVE_OR_MATERIALISE
    walk = events_index._covering_walk

    def failing(**arguments):
        assert _hits_tables() == 1
        raise DatabaseError("canceling statement due to statement timeout")

    monkeypatch.setattr(events_index, "_covering_walk", failing)
    with pytest.raises(DatabaseError):
        events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=plan)
    assert _hits_tables() == 0
    monkeypatch.setattr(events_index, "_covering_walk", walk)
    assert events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=plan)["events"]


def test_the_windows_plan_widens_its_window_until_the_page_is_full(demo, many_traces, monkeypatch):
    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    monkeypatch.setattr(events_index, "FIRST_WINDOW", 3)
    monkeypatch.setattr(events_index, "SMALLEST_WINDOW", 1)
    # Never "dense": on tables this small PostgreSQL's estimate of a word's share follows whatever its statistics
    # hold from earlier tests (the dense walk, tested below, would come first).
    monkeypatch.setattr(events_index, "DENSE_SHARE", 2.0)
    calls = _spy(monkeypatch, "_window_edge")
    plan = events_index.PLAN_DRIVE_OR_WINDOWS
    body = events_search(user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=plan)
    assert len(body["events"]) == 5 and body["cursor"]
    expected = events_search(
        user=demo.detective, case_id=demo.case.pk, query="invoice", limit=5, plan=events_index.PLAN_SEMI_JOIN
    )
    assert body == expected
    from django.db import connection

    sizes = [arguments["size"] for _, arguments in calls]
    if connection.vendor == "postgresql":
        # "invoice" is in one trace in nine, its first events late: a window of 3 events, then wider ones.
        assert sizes[0] == 3 and len(sizes) >= 2
        assert all(2 * before <= after <= 64 * before for before, after in itertools.pairwise(sizes))
    else:
        # SQLite has no bitmaps to intersect: the hits are materialised, after a walk of twice the page (6).
        assert sizes == [events_index.FIRST_WORD_WALK * 6]


def test_a_trace_s_span_columns_are_its_first_and_last_event(demo, many_traces):
    from django.db import connection

    from search.models import Trace

    if connection.vendor != "postgresql":
        pytest.skip("the span columns are PostgreSQL's (migration 0020): SQLite has no bitmap intersection")

    def mismatches() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM search_trace AS trace LEFT JOIN (SELECT trace_id, min(time) AS first, "
                "max(time) AS last FROM search_trace_event GROUP BY trace_id) AS span ON span.trace_id = trace.id "
                "WHERE trace.first_event IS DISTINCT FROM span.first OR trace.last_event IS DISTINCT FROM span.last"
            )
            return cursor.fetchone()[0]

    assert mismatches() == 0
    trace = Trace.objects.filter(case=demo.case, name="email-1").get()
    trace.properties = {**trace.properties, "email.sentOn": "2003-02-01T00:00:00Z", "email.subject": "x"}
    trace.save()
    other = Trace.objects.filter(case=demo.case, name="file-0").get()
    other.properties = {"file.size": 3}  # no time left: no span
    other.save()
    assert mismatches() == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT first_event, last_event FROM search_trace WHERE id IN (%s, %s) ORDER BY id", [trace.pk, other.pk]
        )
        spans = dict(zip([min(trace.pk, other.pk), max(trace.pk, other.pk)], cursor.fetchall(), strict=True))
    assert spans[trace.pk][0] == "2003-02-01T00:00:00" and spans[other.pk] == (None, None)


@pytest.mark.parametrize("search", SEARCHES, ids=lambda search: " ".join(f"{k}={v}" for k, v in search.items()))
def test_the_windows_plan_walks_first_when_hits_are_dense(demo, many_traces, monkeypatch, search):
    # Every query "dense", a walk of 4 events first, windows of 5 growing by 2: the same events as the semi-join.
    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    monkeypatch.setattr(events_index, "DENSE_SHARE", 0.0)
    monkeypatch.setattr(events_index, "DENSE_WALK", 4)
    monkeypatch.setattr(events_index, "FIRST_WINDOW", 5)
    monkeypatch.setattr(events_index, "SMALLEST_WINDOW", 2)
    expected = _every_page(demo, plan=events_index.PLAN_SEMI_JOIN, page=500, **search)
    for page in (3, 500):
        assert _every_page(demo, plan=events_index.PLAN_DRIVE_OR_WINDOWS, page=page, **search) == expected, page


def test_sqlite_finds_many_hits_without_taking_the_write_lock(demo, many_traces, monkeypatch):
    # Django's atomic() on SQLite begins IMMEDIATE (the write lock): a search must not hold it while it works.
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL's temporary table lives in the search's own transaction")
    monkeypatch.setattr(events_index, "FEW_TRACES", 0)
    monkeypatch.setattr(events_index, "FIRST_WORD_WALK", 0)  # straight to the hits table
    opened: list[bool] = []
    atomic = events_index.transaction.atomic

    def counting(*arguments, **options):
        opened.append(True)
        return atomic(*arguments, **options)

    monkeypatch.setattr(events_index.transaction, "atomic", counting)
    for query in ("invoice", "invoice AND type:email -deleted:true", "type:picture OR invoice"):
        page = _every_page(demo, plan=events_index.PLAN_DRIVE_OR_MATERIALISE, page=5, query=query)
        assert page == _every_page(demo, plan=events_index.PLAN_SEMI_JOIN, page=500, query=query)
    assert opened == [] and _hits_tables() == 0
