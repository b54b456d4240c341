"""#17 findings 1 and 5: hostile wildcards match in linear time, every search has a time budget, one
search never blocks another's, and property names and cursors outside the grammar are a 400."""

from __future__ import annotations

import base64
import threading

import pytest
from django.db import connection

from search.backends import budget
from search.models import Trace
from search.query import QuerySyntaxError, parse_query
from search.query.wildcard import MAX_WILDCARD_PATTERN_CHARS, MAX_WILDCARDS, like_pattern, wildcard_match
from search.selectors import traces_search
from tests.search.synthetic import synthetic_traces

LONG_TEXT = "e" * 150_000
ROWS = [
    {"name": "e" * 40, "path": "/e/" + "e" * 200, "types": ["file"], "text": LONG_TEXT},
    {"name": "peter.txt", "path": "/home/peter.txt", "types": ["file"], "properties": {"file.size": 5}, "text": "hi"},
    {"name": "50%_off.txt", "path": "/x/50%_off.txt", "types": ["file"], "text": "sale"},
]


@pytest.fixture
def hostile(demo):
    return synthetic_traces(case=demo.case, registered_by=demo.custodian, rows=ROWS)


def names(demo, query: str) -> set[str]:
    result = traces_search(user=demo.detective, case_id=demo.case.pk, query=query, limit=500)
    return {hit["name"] for hit in result["hits"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Each of these makes a backtracking regular expression take exponential time on LONG_TEXT.
        ("e*e*e*e*q?", set()),
        ("e*e*e*e*e*e*e*e*e*e*e*e*q*", set()),
        ("name:e*e*e*e*e*e*e*q?", set()),
        ("path:*e*e*e*e*e*e*e*e*q", set()),
        ("type:f*f*f*f*f*f*q?", set()),
        ("tag:e*e*e*e*q?", set()),
        # and they still match what they should.
        ("e*e*e*e*", {"e" * 40}),
        ("p?ter*", {"peter.txt"}),
        ("name:P?TER.*", {"peter.txt"}),
        # LIKE's own characters are plain characters of the pattern.
        ("name:50%_*", {"50%_off.txt"}),
        ("name:5?%_off*", {"50%_off.txt"}),
        ("name:5?_%off*", set()),
    ],
)
@pytest.mark.django_db
def test_hostile_wildcards_answer_correctly(demo, hostile, query, expected):
    assert names(demo, query) == expected


def test_wildcard_patterns_are_bounded_at_parse_time():
    with pytest.raises(QuerySyntaxError, match="at most"):
        parse_query("a*" * (MAX_WILDCARDS + 1))
    with pytest.raises(QuerySyntaxError, match="characters long"):
        parse_query("name:" + "a" * MAX_WILDCARD_PATTERN_CHARS + "*")
    parse_query("a*" * MAX_WILDCARDS)  # at the limit: fine


@pytest.mark.parametrize(
    ("pattern", "text", "matched"),
    [
        ("e*e*e*e*q?", "e" * 5000, False),
        ("*e*q", "e" * 5000 + "q", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*", "", True),
        ("**a**", "xa", True),
    ],
)
def test_wildcard_match_never_backtracks_far(pattern, text, matched):
    assert wildcard_match(pattern, text) is matched


def test_like_pattern_escapes_what_like_reads():
    assert like_pattern("50%_*", anchored=True) == "50\\%\\_%"
    assert like_pattern("a**b?", anchored=False) == "%a%b_%"
    assert like_pattern("*x*", anchored=False) == "%x%"
    assert like_pattern("x\\%", anchored=False) == "%x\\\\\\%%"


def _slow_search(monkeypatch):
    """Make the next search outlast any budget, without a clock in the test: on SQLite the clock the
    progress handler reads jumps an hour at each look; on PostgreSQL the hits table waits a second first."""
    if connection.vendor == "sqlite":
        ticks = iter(range(0, 10**9, 3600))
        monkeypatch.setattr(budget.time, "monotonic", lambda: next(ticks))
        monkeypatch.setattr(budget, "SQLITE_PROGRESS_STEPS", 1)
    else:
        from search.backends.sql import planner

        fill = planner.HitsTable.fill

        def sleepy_fill(self, from_where, params):
            self.cursor.execute("SELECT pg_sleep(1)")
            return fill(self, from_where, params)

        monkeypatch.setattr(planner.HitsTable, "fill", sleepy_fill)


@pytest.mark.django_db
def test_a_search_past_its_budget_is_a_422_naming_the_limit(demo, hostile, api, settings, monkeypatch):
    settings.CUSTODIA_SEARCH_TIME_BUDGET_MS = 200
    _slow_search(monkeypatch)
    api.as_user(demo.detective)
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": "e*e*q?"}, format="json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error"] == "search_time_budget"
    assert "CUSTODIA_SEARCH_TIME_BUDGET_MS = 200 ms" in body["detail"]
    monkeypatch.undo()
    # The connection is still good for the next request.
    settings.CUSTODIA_SEARCH_TIME_BUDGET_MS = 10_000
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": "p?ter*"}, format="json")
    assert response.status_code == 200, response.content
    assert [hit["name"] for hit in response.json()["hits"]] == ["peter.txt"]


@pytest.mark.django_db(transaction=True)
def test_one_search_never_blocks_another(demo, hostile, settings, monkeypatch):
    """While one user's search is held in the middle of its statement (its progress handler waits), another
    user's search on another connection is answered: the slow one holds neither a lock nor the interpreter."""
    settings.CUSTODIA_SEARCH_TIME_BUDGET_MS = 60_000
    in_statement, other_done = threading.Event(), threading.Event()
    slow_thread = threading.current_thread()
    real_clock = budget.time.monotonic
    if connection.vendor != "sqlite":
        pytest.skip("the progress handler is SQLite's; PostgreSQL runs each search in a server process of its own")

    def clock() -> float:
        if threading.current_thread() is slow_thread and not other_done.is_set():
            in_statement.set()
            other_done.wait(timeout=30)
        return real_clock()

    monkeypatch.setattr(budget.time, "monotonic", clock)
    monkeypatch.setattr(budget, "SQLITE_PROGRESS_STEPS", 1)
    answers: dict[str, object] = {}

    def other_user() -> None:
        try:
            in_statement.wait(timeout=30)
            answers["other"] = names(demo, "peter")
        except Exception as error:  # reported below
            answers["other"] = error
        finally:
            other_done.set()
            connection.close()

    thread = threading.Thread(target=other_user)
    thread.start()
    try:
        slow = names(demo, "e*e*e*e*q?")
    finally:
        thread.join(timeout=60)
    assert in_statement.is_set()
    assert answers["other"] == {"peter.txt"}
    assert slow == set()


@pytest.mark.parametrize(
    "query",
    ["file__size:1", "file.size__gt:1", "email.from__icontains:a", "a.b__c>3", "a.b__:x", "x." + "a" * 250 + ":1"],
)
def test_property_names_outside_the_grammar_are_refused_at_parse_time(query):
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.column == 1


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["file__size:1", "file.size__gt:1", "properties__x.y:1"])
def test_a_property_name_with_double_underscore_is_a_400_naming_it(demo, hostile, api, query):
    api.as_user(demo.detective)
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": query}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "query_syntax"
    assert query.split(":")[0][:20] in body["detail"] or "unknown field" in body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "A" * 100,
        base64.urlsafe_b64encode(b"9" * 40).decode()[:100],
        base64.urlsafe_b64encode(b"-5").decode(),
        base64.urlsafe_b64encode(b"1e9").decode(),
        base64.urlsafe_b64encode(b"99999999999").decode(),
        "not base64!",
        "%%%",
        "ÄÖÜ",
    ],
)
def test_an_oversized_or_forged_cursor_is_a_400(demo, hostile, api, cursor):
    api.as_user(demo.detective)
    body = {"query": "peter", "cursor": cursor}
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_cursor", "invalid")


@pytest.mark.django_db
def test_a_cursor_the_search_returned_pages_on(demo, hostile, api):
    api.as_user(demo.detective)
    first = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": "", "limit": 1}, format="json").json()
    assert first["cursor"]
    second = api.post(
        f"/api/cases/{demo.case.pk}/traces/search", {"query": "", "limit": 1, "cursor": first["cursor"]}, format="json"
    )
    assert second.status_code == 200
    assert second.json()["hits"][0]["uid"] != first["hits"][0]["uid"]
    assert Trace.objects.count() == 3
