"""The events timeline (Timesketch's and plaso's supertimeline, issue #20 item 5): every timestamp property of
the hits of a query as one event — time, zone, what it means, the trace and its evidence — in time order,
a page at a time by keyset, filtered by a time range and by kind, and exported as CSV.

The events come from the events index (search/backends/sql/events.py), kept by triggers as traces are
written; the query picks the traces through the configured search backend's ``matching``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from audit.privacy import Tagged
from audit.services import audit_record
from audit.text import visible_text
from cases import permissions as perms
from cases.models import User
from cases.selectors import case_get
from cases.times import iso_utc, recorded_instant, user_time_zone
from custodia.errors import ServiceError
from evidence.models import Evidence
from search.backends.budget import search_time_budget
from search.backends.sql.compiler import combinations_holding, type_combinations
from search.backends.sql.events import (
    FEW_TRACES,
    PLAN_AUTO,
    PLANS,
    SPAN_FIRST,
    SPAN_LAST,
    EventFilter,
    EventRow,
    events_page,
)
from search.backends.sql.planner import word_driven_first_ids, word_exists, word_hits_superset
from search.models import CasePropertyName, Trace
from search.query.ast import And, Field, Node, Not, Or, Text
from search.selectors import query_parse

# What a timestamp property means, by its last segment; a few by their whole name.
MEANINGS_BY_SUFFIX = {
    "modifiedOn": "modified",
    "createdOn": "created",
    "accessedOn": "accessed",
    "changedOn": "changed",
    "sentOn": "sent",
    "receivedOn": "received",
    "takenOn": "taken",
    "visitedOn": "visited",
    "printedOn": "printed",
    "startedOn": "started",
    "finishedOn": "finished",
    "deletedOn": "deleted",
}
MEANINGS_BY_NAME = {"browserHistory.accessedOn": "visited"}
MAX_EVENTS_LIMIT = 500
EXPORT_LIMIT = 100_000
MAX_CURSOR_CHARS = 800
# Days or moments to the second, as the events index keeps them (search/backends/sql/events.py).
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?$")


def event_meaning(name: str) -> str:
    """``file.modifiedOn`` → ``modified``, ``browserHistory.accessedOn`` → ``visited``, ``x.fooOn`` → ``foo``."""
    if name in MEANINGS_BY_NAME:
        return MEANINGS_BY_NAME[name]
    last = name.rsplit(".", 1)[-1]
    return MEANINGS_BY_SUFFIX.get(last, last[:-2] if last.endswith("On") else last)


def event_kinds(*, case_id: int) -> dict[str, list[str]]:
    """The kinds of event the case's traces have, each with its property names (from the case's names)."""
    names = CasePropertyName.objects.filter(case_id=case_id, name__endswith="On").values_list("name", flat=True)
    kinds: dict[str, list[str]] = {}
    for name in sorted(names):
        if name.endswith("On"):  # endswith is case-insensitive on SQLite
            kinds.setdefault(event_meaning(name), []).append(name)
    return dict(sorted(kinds.items()))


def _moment(value: str | None, *, what: str, end: bool) -> str | None:
    """A range end as the index compares it: a day's end is the start of the next day (excluded)."""
    if not value:
        return None
    value = value.strip().removesuffix("Z")
    if not _MOMENT.match(value):
        raise ServiceError(f"{what}: a day (2020-01-31) or a moment (2020-01-31T09:30[:00]) in UTC.", code="invalid")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return (day + timedelta(days=1)).isoformat() if end else day.isoformat()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ServiceError(f"{what}: {value!r} is no date.", code="invalid") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _encode_cursor(row: EventRow) -> str:
    return base64.urlsafe_b64encode(json.dumps([row.time, row.trace_id, row.name]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, int, str] | None:
    if not cursor:
        return None
    refused = ServiceError("cursor: not a cursor this search returned.", code="invalid_cursor")
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
        raise refused
    try:
        time, trace_id, name = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise refused from None
    if not (isinstance(time, str) and isinstance(trace_id, int) and isinstance(name, str)):
        raise refused
    return time, trace_id, name


def events_filter(
    *, case_id: int, query: str, start: str | None, end: str | None, kinds: list[str] | None
) -> EventFilter:
    """Which events a search asks for, as the events index reads them (search/backends/sql/events.py): the
    matching traces' SQL and its faster forms, the time range, the kinds as property names, the types and
    deleted flag the events carry. Not a permission check: callers have checked the case."""
    from search.backends.base import get_search_backend

    node = query_parse(query)
    traces_sql = probe_sql = windowed = hits_superset = word_check = spans = None
    types = event_types(node, case_id=case_id)
    deleted = event_deleted(node)
    if deleted is not None and types is None:
        types = type_combinations(case_id)  # one arm of the (case, types, deleted …) index each
    if deleted == CONTRADICTION:
        types, deleted = [], None  # deleted:true AND deleted:false: no event
    items: tuple[Node, ...] = () if node is None else node.items if isinstance(node, And) else (node,)
    if node is not None and not all(_on_the_events(item) for item in items):
        # A query of types and deleted alone is the events' own; any other is the traces the backend matches.
        matching = get_search_backend().matching(case_id=case_id, node=node).values("id").order_by()
        traces_sql = matching.query.sql_with_params()
        probe_sql = word_driven_first_ids(case_id=case_id, node=node, sort=("id",), count=FEW_TRACES + 1)
        if connection.vendor == "postgresql":
            windowed = partial(_windowed_sql, matching)
            spans = _spans_sql(matching)
        hits_superset = word_hits_superset(node=node, holds_elsewhere=_on_the_events)
        word_check = word_exists(node=node, holds_elsewhere=_on_the_events, column="event.trace_id")
    names = None
    if kinds:
        known = event_kinds(case_id=case_id)
        unknown = [kind for kind in kinds if kind not in known]
        if unknown and len(unknown) == len(kinds):
            names = []  # no trace of the case has such an event: nothing, rather than everything
        else:
            names = [name for kind in kinds for name in known.get(kind, [])]
    return EventFilter(
        case_id=case_id,
        traces_sql=traces_sql,
        start=_moment(start, what="start", end=False),
        end=_moment(end, what="end", end=True),
        names=names,
        types=types,
        deleted=deleted if isinstance(deleted, bool) else None,
        probe_sql=probe_sql,
        has_words=node is not None and _has_words(node),
        windowed=windowed,
        hits_superset_sql=hits_superset,
        word_exists_sql=word_check,
        spans_sql=spans,
    )


def _spans_sql(matching: QuerySet) -> tuple[str, Sequence]:
    """PostgreSQL: SQL for the ``matching`` traces' id, first and last event time (migration 0020's columns)."""
    first = RawSQL(f'"search_trace"."{SPAN_FIRST}"', [])  # noqa: S611  # nosec B611  # a constant column name
    last = RawSQL(f'"search_trace"."{SPAN_LAST}"', [])  # noqa: S611  # nosec B611  # a constant column name
    columns = {"first": first, "last": last}
    return matching.annotate(**columns).values_list("id", "first", "last").query.sql_with_params()


def _windowed_sql(matching: QuerySet, low: str | None, high: str | None) -> tuple[str, Sequence]:
    """PostgreSQL: SQL for the ``matching`` traces with an event from ``low`` to ``high`` (both included; None:
    unbounded): their first event at or before ``high``, their last at or after ``low`` (the generated span
    columns of migration 0020, which the model does not declare: SQLite has none)."""
    # Constant SQL around a parameter (the columns are SPAN_FIRST and SPAN_LAST).
    if high is not None:
        matching = matching.filter(RawSQL('"search_trace"."first_event" <= %s', [high], BooleanField()))
    if low is not None:
        matching = matching.filter(RawSQL('"search_trace"."last_event" >= %s', [low], BooleanField()))
    return matching.query.sql_with_params()


def _on_the_events(node: Node) -> bool:
    """Whether the events index answers ``node`` itself: a ``type:`` or ``deleted:`` condition."""
    return _is_type(node) or _deleted_flag(node) is not None


def _has_words(node: Node) -> bool:
    """Whether ``node`` holds a free-text word or phrase anywhere (the word index answers it)."""
    if isinstance(node, Text):
        return True
    if isinstance(node, And | Or):
        return any(_has_words(item) for item in node.items)
    return isinstance(node, Not) and _has_words(node.item)


def _is_type(node: Node) -> bool:
    return isinstance(node, Field) and node.name == "type"


def event_types(node: Node | None, *, case_id: int) -> list[str] | None:
    """The stored ``types`` lists the query's ``type:`` conditions (alone, or joined by AND) all hold; None if
    it has none. The events index keeps its trace's types on each event (search/backends/sql/events.py)."""
    items = node.items if isinstance(node, And) else (node,)
    holding: list[str] | None = None
    for item in items:
        if isinstance(item, Field) and _is_type(item):
            combinations = combinations_holding(item, case_id=case_id)
            holding = combinations if holding is None else [stored for stored in holding if stored in combinations]
    return holding


# event_deleted's answer for a query that asks for deleted and for not deleted traces at once.
CONTRADICTION = "contradiction"


def _deleted_flag(node: Node | None) -> bool | None:
    """True for ``deleted:true`` (or ``-deleted:false``), False for ``deleted:false`` (or ``-deleted:true``)."""
    negated = isinstance(node, Not)
    item = node.item if isinstance(node, Not) else node
    if isinstance(item, Field) and item.name == "deleted" and isinstance(item.value, bool):
        return item.value is not negated
    return None


def event_deleted(node: Node | None) -> bool | str | None:
    """Whether the query's ``deleted:`` conditions (alone, or joined by AND) hold only deleted traces (True),
    only the others (False), none (``CONTRADICTION``); None if it has none. The events index keeps each
    trace's flag on its events (search/backends/sql/events.py)."""
    flags = {
        flag for item in (node.items if isinstance(node, And) else (node,)) if (flag := _deleted_flag(item)) is not None
    }
    if not flags:
        return None
    return flags.pop() if len(flags) == 1 else CONTRADICTION


def _event_dicts(rows: list[EventRow], *, case_id: int) -> list[dict]:
    traces = Trace.objects.filter(case_id=case_id).in_bulk([row.trace_id for row in rows])
    labels = dict(
        Evidence.objects.filter(pk__in={trace.evidence_id for trace in traces.values()}).values_list("pk", "label")
    )
    events = []
    for row in rows:
        trace = traces.get(row.trace_id)
        if trace is None:  # removed since the page was read
            continue
        events.append(
            {
                "time": row.time,
                "zone": row.zone,
                "kind": event_meaning(row.name),
                "property": row.name,
                "trace": {"uid": trace.uid, "name": trace.name, "path": trace.path, "types": trace.types},
                "evidence": str(trace.evidence_id),
                "evidence_label": labels.get(trace.evidence_id, ""),
            }
        )
    return events


def events_search(
    *,
    user: User,
    case_id: int,
    query: str = "",
    start: str | None = None,
    end: str | None = None,
    kinds: list[str] | None = None,
    descending: bool = False,
    limit: int = 100,
    cursor: str | None = None,
    plan: str = PLAN_AUTO,
) -> dict:
    """One page of the events of the hits of ``query``: ``{events, cursor, kinds}``; ``cursor`` None at the end.

    ``plan`` says how the events are found (search.backends.sql.events.PLANS: the same rows whichever);
    the default chooses by the number of hits; the others are there for bench/events.py and the tests."""
    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    if not 1 <= limit <= MAX_EVENTS_LIMIT:
        raise ServiceError(f"limit must be between 1 and {MAX_EVENTS_LIMIT}.")
    if plan not in PLANS:
        raise ServiceError(f"plan: one of {', '.join(PLANS)}.")
    where = events_filter(case_id=case.pk, query=query, start=start, end=end, kinds=kinds)
    after = _decode_cursor(cursor)
    with search_time_budget():
        rows = events_page(where=where, after=after, limit=limit + 1, descending=descending, plan=plan)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "events": _event_dicts(rows, case_id=case.pk),
        "cursor": _encode_cursor(rows[-1]) if more else None,
        "kinds": list(event_kinds(case_id=case.pk)),
    }


# ``time`` is the wall clock as the tool wrote it and ``zone`` its clock (UTC, an offset, ``local, unknown``);
# the last three columns (issue #20 item 13) give the same instant in UTC with ``Z`` and in the exporting
# user's zone with its offset, with that zone's IANA name; all three empty for a local time of unknown zone.
EXPORT_COLUMNS = [
    "time",
    "zone",
    "kind",
    "property",
    "trace",
    "name",
    "path",
    "evidence",
    "evidence_label",
    "time_utc",
    "time_in_user_zone",
    "user_zone",
]


def _cell(value: object) -> str:
    # Control and bidirectional characters spelled out, and a cell a spreadsheet would run as a formula quoted.
    text = visible_text(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@transaction.atomic
def events_export_csv(
    *,
    actor: User,
    case_id: int,
    query: str = "",
    start: str | None = None,
    end: str | None = None,
    kinds: list[str] | None = None,
) -> str:
    """The events as CSV (``EXPORT_COLUMNS``), at most ``EXPORT_LIMIT``; the export is audited."""
    case = case_get(user=actor, case_id=case_id, permission=perms.SEARCH_TRACES)
    where = events_filter(case_id=case.pk, query=query, start=start, end=end, kinds=kinds)
    audit_record(
        action="event.export.csv",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"query": Tagged("query", query[:2000]), "start": start or "", "end": end or "", "kinds": kinds or []},
    )
    return "".join(_csv_lines(where=where, case_id=case.pk, user_zone=user_time_zone(actor)))


def _zoned_cells(event: dict, user_zone: ZoneInfo) -> list[str]:
    """``time_utc``, ``time_in_user_zone`` and ``user_zone`` of an event's CSV row."""
    instant = recorded_instant(event["time"], event["zone"])
    if instant is None:
        return ["", "", ""]
    return [iso_utc(instant), instant.astimezone(user_zone).isoformat(timespec="seconds"), user_zone.key]


def _csv_lines(*, where: EventFilter, case_id: int, user_zone: ZoneInfo, batch: int = 2000) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)

    def line(row: list) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(row)
        return out.getvalue()

    yield line(EXPORT_COLUMNS)
    after, written = None, 0
    while written < EXPORT_LIMIT:
        with search_time_budget():
            rows = events_page(where=where, after=after, limit=min(batch, EXPORT_LIMIT - written))
        if not rows:
            return
        for event in _event_dicts(rows, case_id=case_id):
            trace = event["trace"]
            yield line(
                [
                    event["time"],
                    event["zone"],
                    event["kind"],
                    event["property"],
                    trace["uid"],
                    _cell(trace["name"]),
                    _cell(trace["path"]),
                    event["evidence"],
                    _cell(event["evidence_label"]),
                    *_zoned_cells(event, user_zone),
                ]
            )
        written += len(rows)
        after = (rows[-1].time, rows[-1].trace_id, rows[-1].name)
