"""The events index: one row per timestamp property of a trace, for the supertimeline (issue #20 item 5).

Every property whose name ends in ``On`` (``file.modifiedOn``, ``email.sentOn``, ``picture.takenOn`` …)
and whose value begins with an ISO date is an event of its trace. Triggers on ``search_trace`` keep
``search_trace_event`` (trace, case, name, time, zone) in the transaction that writes the trace, whichever
way it is written (the extraction publisher's batched upserts included), so the timeline of a million
traces reads an index in time order instead of the JSON of every trace.

``time`` is the value's first 19 characters (``2019-03-07T10:00:00``, or a day alone), the clock time as
the tool wrote it; ``zone`` says what clock: ``UTC`` for a value that ends in ``Z`` or ``+00:00``, the
offset (``+02:00``) for another offset, and ``local, unknown`` for a value without one (an EXIF time, a
FAT time: local to a machine whose zone the trace does not say). An IANA name may come from a tool later.

Each event also carries its trace's ``types`` as the trace stores them (``["file", "email"]``) and whether it
is ``deleted``, with an index (case, types, deleted, time, trace, name): a ``type:`` or ``deleted:`` query
reads only its own events in time order, never probing the trace table (the first e-mail of a disk comes
after tens of thousands of folder and file times; its first deleted file after 20,000 events).

These lists are the schema as it is now; the newest events migration (0021) carries them frozen (a test
compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from search.backends.sql.planner import planner_setting, sample_work_memory

EVENT_TABLE = "search_trace_event"
ZONE_UTC = "UTC"
ZONE_LOCAL_UNKNOWN = "local, unknown"
TIME_WIDTH = 19

_TRIGGERS = ("search_trace_event_insert", "search_trace_event_delete", "search_trace_event_update")

_COLUMNS = "trace_id, case_id, name, time, zone, types, deleted"
# SQLite: GLOB is case-sensitive (LIKE is not, and would take ``email.version`` for a time).
_SQLITE_EVENTS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, substr(property.value, 1, 19), "
    "CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' "
    "WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' "
    "THEN substr(property.value, -6) ELSE 'local, unknown' END, {row}.types, {row}.deleted "
    "FROM json_each({row}.properties) AS property "
    "WHERE property.type = 'text' AND property.key GLOB '*On' "
    "AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
)
SQLITE_EVENTS_INSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
    f"""CREATE TABLE {EVENT_TABLE} (trace_id integer NOT NULL, case_id integer NOT NULL,
        name text NOT NULL, time text NOT NULL, zone text NOT NULL, types text NOT NULL, deleted integer NOT NULL,
        PRIMARY KEY (trace_id, name)) WITHOUT ROWID""",
    f"""CREATE TRIGGER search_trace_event_insert AFTER INSERT ON search_trace BEGIN
        INSERT INTO {EVENT_TABLE} ({_COLUMNS}) {_SQLITE_EVENTS_OF.format(row="new")};
    END""",
    f"""CREATE TRIGGER search_trace_event_delete AFTER DELETE ON search_trace BEGIN
        DELETE FROM {EVENT_TABLE} WHERE trace_id = old.id;
    END""",  # noqa: S608
    f"""CREATE TRIGGER search_trace_event_update AFTER UPDATE OF case_id, properties, types, deleted ON search_trace
    BEGIN
        DELETE FROM {EVENT_TABLE} WHERE trace_id = old.id;
        INSERT INTO {EVENT_TABLE} ({_COLUMNS}) {_SQLITE_EVENTS_OF.format(row="new")};
    END""",  # noqa: S608
    # The traces written before the index existed; the indexes after, each built once.
    f"INSERT INTO {EVENT_TABLE} ({_COLUMNS}) "
    + _SQLITE_EVENTS_OF.format(row="search_trace").replace(" FROM json_each", " FROM search_trace, json_each"),
    f"CREATE INDEX {EVENT_TABLE}_time ON {EVENT_TABLE} (case_id, time, trace_id, name)",
    f"CREATE INDEX {EVENT_TABLE}_types ON {EVENT_TABLE} (case_id, types, deleted, time, trace_id, name)",
]
SQLITE_EVENTS_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
]

_POSTGRES_EVENTS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, left(property.value, 19), "
    "CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' "
    "WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{{2}}:[0-9]{{2}}$' "
    "THEN right(property.value, 6) ELSE 'local, unknown' END, {row}.types, {row}.deleted "
    "FROM jsonb_each_text({row}.properties) AS property "
    "WHERE jsonb_typeof({row}.properties -> property.key) = 'string' AND property.key LIKE '%On' "
    "AND property.value ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'"
)
POSTGRES_EVENTS_INSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_events ON search_trace",
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
    f"""CREATE TABLE {EVENT_TABLE} (trace_id bigint NOT NULL, case_id bigint NOT NULL,
        name text NOT NULL, time text NOT NULL, zone text NOT NULL, types jsonb NOT NULL, deleted boolean NOT NULL,
        PRIMARY KEY (trace_id, name))""",
    f"""CREATE OR REPLACE FUNCTION search_trace_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM {EVENT_TABLE} WHERE trace_id = OLD.id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO {EVENT_TABLE} ({_COLUMNS}) {_POSTGRES_EVENTS_OF.format(row="NEW")};
        END IF;
        RETURN NULL;
    END $$""",  # noqa: S608
    """CREATE TRIGGER search_trace_events AFTER INSERT OR DELETE OR UPDATE OF case_id, properties, types, deleted
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_events()""",
    f"INSERT INTO {EVENT_TABLE} ({_COLUMNS}) "
    + _POSTGRES_EVENTS_OF.format(row="search_trace").replace(
        " FROM jsonb_each_text", " FROM search_trace, jsonb_each_text"
    ),
    f"CREATE INDEX {EVENT_TABLE}_time ON {EVENT_TABLE} (case_id, time, trace_id, name)",
    f"CREATE INDEX {EVENT_TABLE}_types ON {EVENT_TABLE} (case_id, types, deleted, time, trace_id, name)",
]
POSTGRES_EVENTS_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_events ON search_trace",
    "DROP FUNCTION IF EXISTS search_trace_events()",
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
]
EVENT_TRIGGERS = {"sqlite": set(_TRIGGERS), "postgresql": {"search_trace_events"}}

# PostgreSQL: each trace's first and last event time, as generated columns of ``search_trace`` (computed by
# the same rule as its events, whichever way the row is written) with a (case, first, last) index. The
# ``drive-or-windows`` plan intersects that index's bitmap of the traces with an event in a window of time
# with the query's own index bitmaps (a word's, a flag's): only the traces in both are read. (SQLite has no
# bitmap intersection: it reads a word's hits from its word index alone, see events_page.)
SPAN_FIRST = "first_event"
SPAN_LAST = "last_event"
_POSTGRES_SPAN_OF = (
    "SELECT {aggregate}(left(property.value, 19)) FROM jsonb_each_text(properties) AS property "
    "WHERE jsonb_typeof(properties -> property.key) = 'string' AND property.key LIKE '%On' "
    "AND property.value ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'"
)
POSTGRES_SPAN_INSTALL = [
    *(
        f"""CREATE OR REPLACE FUNCTION search_trace_{column}(properties jsonb) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ {_POSTGRES_SPAN_OF.format(aggregate=aggregate)} $$"""
        for column, aggregate in ((SPAN_FIRST, "min"), (SPAN_LAST, "max"))
    ),
    f"""ALTER TABLE search_trace
        ADD COLUMN {SPAN_FIRST} text GENERATED ALWAYS AS (search_trace_{SPAN_FIRST}(properties)) STORED,
        ADD COLUMN {SPAN_LAST} text GENERATED ALWAYS AS (search_trace_{SPAN_LAST}(properties)) STORED""",
    f"CREATE INDEX search_trace_event_span ON search_trace (case_id, {SPAN_FIRST}, {SPAN_LAST})",
]
# The same span by its last event first (migration 0022): a page in descending order, or after a keyset, asks
# for the traces whose last event is at or after a time, which the (case, first, last) index answers only by
# reading all of it (a descending first page of ``invoice`` took 87 ms where the ascending one took 37).
POSTGRES_SPAN_LAST_INSTALL = [
    f"CREATE INDEX search_trace_event_span_last ON search_trace (case_id, {SPAN_LAST}, {SPAN_FIRST})",
]
POSTGRES_SPAN_LAST_UNINSTALL = ["DROP INDEX IF EXISTS search_trace_event_span_last"]
POSTGRES_SPAN_UNINSTALL = [
    "DROP INDEX IF EXISTS search_trace_event_span",
    f"ALTER TABLE search_trace DROP COLUMN IF EXISTS {SPAN_FIRST}, DROP COLUMN IF EXISTS {SPAN_LAST}",
    *(f"DROP FUNCTION IF EXISTS search_trace_{column}(jsonb)" for column in (SPAN_FIRST, SPAN_LAST)),
]


# How the events of a query's hits are found (``events_page``'s ``plan``); see events_page.
PLAN_AUTO = "auto"
PLAN_SEMI_JOIN = "semi-join"
PLAN_DRIVE_OR_SEMI_JOIN = "drive-or-semi-join"
PLAN_DRIVE_OR_CHUNKS = "drive-or-chunks"
PLAN_DRIVE_OR_MATERIALISE = "drive-or-materialise"
PLAN_DRIVE_OR_INDEX_SEMI_JOIN = "drive-or-index-semi-join"
PLAN_DRIVE_OR_INDEX_CHUNKS = "drive-or-index-chunks"
PLAN_DRIVE_OR_BITMAP_CHUNKS = "drive-or-bitmap-chunks"
PLAN_DRIVE_OR_WINDOWS = "drive-or-windows"
PLANS = (
    PLAN_AUTO,
    PLAN_SEMI_JOIN,
    PLAN_DRIVE_OR_SEMI_JOIN,
    PLAN_DRIVE_OR_CHUNKS,
    PLAN_DRIVE_OR_MATERIALISE,
    PLAN_DRIVE_OR_INDEX_SEMI_JOIN,
    PLAN_DRIVE_OR_INDEX_CHUNKS,
    PLAN_DRIVE_OR_BITMAP_CHUNKS,
    PLAN_DRIVE_OR_WINDOWS,
)
# The temporary table of the ``drive-or-materialise`` plan's hits: one per connection, dropped after each page.
HITS_TABLE = "search_event_hits"
# SQLite walks this many events per event of the page first, checking each in the word index (see _materialised).
FIRST_WORD_WALK = 2
# At most this many matching traces: their events are read by trace id and sorted (a few tens of thousands).
FEW_TRACES = 5_000
# The chunked walk's first chunk of events, and its largest; each chunk four times the last.
FIRST_CHUNK = 2_000
LARGEST_CHUNK = 256_000
# The windows plan's first window, in events of the whole case (scaled to the share of them the filter's
# types, flags and kinds keep: about the same stretch of time), its smallest, and the most each next one
# grows (see _windowed). 32,000: a disk's system files come first, none a hit of most words.
FIRST_WINDOW = 32_000
SMALLEST_WINDOW = 2_000
MOST_WINDOW_GROWTH = 8


@dataclass(frozen=True)
class EventRow:
    """One event: a timestamp property of a trace."""

    time: str
    zone: str
    name: str
    trace_id: int


@dataclass(frozen=True)
class EventFilter:
    """Which events: of a case, of the traces an SQL subquery selects (None: every trace of the case),
    from ``start`` (included) to ``end`` (excluded), of the property names ``names`` (None: all), of traces
    whose ``types`` (as the database stores them) are one of ``types`` (None: any)."""

    case_id: int
    traces_sql: tuple[str, Sequence] | None = None
    start: str | None = None
    end: str | None = None
    names: Sequence[str] | None = None
    types: Sequence[str] | None = None
    # Only the events of deleted (True) or of not deleted (False) traces; None: both. With ``deleted`` set,
    # ``types`` lists every stored combination of the case at least, so each is an arm (see _arms).
    deleted: bool | None = None
    # SQL for the ids of any ``FEW_TRACES + 1`` matching traces, cheaper than ``traces_sql`` with a limit
    # (on SQLite, the word index's rowids in order, as the trace search takes its first hits); None: that.
    probe_sql: tuple[str, Sequence] | None = None
    # Whether the query holds words (read from the word index): PostgreSQL's ``auto`` then does not
    # materialise its hits (a heap read per hit), see events_page.
    has_words: bool = False
    # PostgreSQL: SQL for the matching traces with an event from ``low`` to ``high`` (both included, either
    # None for no bound), the query's own conditions and the trace's span (SPAN_FIRST <= high, SPAN_LAST >=
    # low) in one statement, so the planner can intersect their indexes' bitmaps; None on SQLite.
    windowed: Callable[[str | None, str | None], tuple[str, Sequence]] | None = None
    # SQLite: SQL for a superset of the matching traces' ids that the events' own conditions (case, types,
    # deleted) make exact: a word query's rowids from the FTS5 table alone (see _materialised); None: none.
    hits_superset_sql: tuple[str, Sequence] | None = None
    # SQLite: SQL of a condition on ``event.trace_id`` that holds when that trace has the query's words, by
    # the word index (a per-event check, for a walk of a few hundred events); None: none.
    word_exists_sql: tuple[str, Sequence] | None = None
    # PostgreSQL: SQL for the matching traces' (id, first event, last event), for the few-hits plan; None on SQLite.
    spans_sql: tuple[str, Sequence] | None = None


Keyset = tuple[str, int, str]


def events_page(
    *, where: EventFilter, after: Keyset | None, limit: int, descending: bool = False, plan: str = PLAN_AUTO
) -> list[EventRow]:
    """The next ``limit`` events in time order (then trace, then property) after the keyset ``after``.

    Without a query every page is a range scan of the (case, time, trace, name) index, however deep. With
    one, walking that index and probing each event's trace (``semi-join``, one statement) is fast while
    the hits are common among the events walked, and slow when the first events in time are mostly of
    traces that do not match (PostgreSQL read 22,000 events and probed as many traces for the first page
    of e-mails at 300,000 traces). So the plan is chosen by the number of matching traces, found as the
    trace search's count probe finds them (any ``FEW_TRACES + 1`` ids of the matching query, no order;
    ``probe_sql`` when the caller has a cheaper way to them; none at all when PostgreSQL's estimates say
    many, see _surely_many). Types and the deleted flag alone never get here: the events carry them.

    - few (``FEW_TRACES`` or fewer): **drive** from those ids: their events by trace id (the primary
      key), sorted, the page taken; on PostgreSQL only the hits whose span reaches the page (_earliest);
    - many, SQLite (``auto``: ``drive-or-materialise``): a word query first walks a few hundred events
      checking each in the word index; then every matching trace's id into a temporary table (a word's
      from the word index alone), and a walk of the index alone (time, trace, name: no table row read per
      event) probing that table, stopped at the page's end;
    - many, PostgreSQL (``auto``: ``drive-or-windows``, since branch evbitmap): windows of time, each the
      intersection of the span index's bitmap with the query's own (_windowed); dense hits walk first.
    - measured and kept for the benchmark and the tests: ``drive-or-semi-join`` (evfast's default: the walk
      reading each event's table row, the query as a semi-join), ``drive-or-index-semi-join`` (that walk
      reading the index alone: evfast2's default for PostgreSQL words), ``drive-or-chunks`` (the walk a chunk
      of events at a time, 2,000 then four times as many …, asking the query once per chunk which of the
      chunk's traces match), ``drive-or-index-chunks`` (that reading the indexes alone) and
      ``drive-or-bitmap-chunks`` (each chunk's ids a primary-key bitmap PostgreSQL intersects with the
      query's): slower at a million traces (docs/benchmarks.md, branches evfast, evfast2, evbitmap).

    Every plan returns the same rows (tests/search/test_events_plans.py)."""
    if plan not in PLANS:
        raise ValueError(f"unknown events plan {plan!r}")
    if (where.names is not None and not where.names) or (where.types is not None and not where.types):
        return []
    if where.traces_sql is None:
        return _walk(where=where, after=after, limit=limit, descending=descending)
    if plan == PLAN_SEMI_JOIN:
        return _walk(where=where, after=after, limit=limit, descending=descending, semi_join=True)
    estimate, widest = _estimates(where.traces_sql)
    # Far more than a few by PostgreSQL's estimate: the probe would only find that out, slowly.
    if not _surely_many(estimate=estimate, widest=widest):
        if where.spans_sql is not None:
            spans = _matching_spans(where.spans_sql, count=FEW_TRACES + 1)
            if len(spans) <= FEW_TRACES:
                few, through = _earliest(where=where, spans=spans, after=after, limit=limit, descending=descending)
                return _driven(
                    where=where, trace_ids=few, after=after, limit=limit, descending=descending, through=through
                )
        else:
            few = matching_ids(where.probe_sql or where.traces_sql, count=FEW_TRACES + 1)
            if len(few) <= FEW_TRACES:
                return _driven(where=where, trace_ids=few, after=after, limit=limit, descending=descending)
    if plan == PLAN_AUTO:
        plan = PLAN_DRIVE_OR_MATERIALISE if estimate is None or where.windowed is None else PLAN_DRIVE_OR_WINDOWS
    if plan == PLAN_DRIVE_OR_WINDOWS:
        dense = _dense(where=where, estimate=estimate)
        return _windowed(where=where, after=after, limit=limit, descending=descending, dense=dense)
    if plan == PLAN_DRIVE_OR_CHUNKS:
        return _chunked(where=where, after=after, limit=limit, descending=descending)
    if plan in (PLAN_DRIVE_OR_INDEX_CHUNKS, PLAN_DRIVE_OR_BITMAP_CHUNKS):
        bitmaps = plan == PLAN_DRIVE_OR_BITMAP_CHUNKS
        return _index_chunked(where=where, after=after, limit=limit, descending=descending, bitmaps=bitmaps)
    if plan == PLAN_DRIVE_OR_MATERIALISE:
        return _materialised(where=where, after=after, limit=limit, descending=descending)
    if plan == PLAN_DRIVE_OR_INDEX_SEMI_JOIN:
        return _semi_join_walk(where=where, after=after, limit=limit, descending=descending)
    return _walk(where=where, after=after, limit=limit, descending=descending, semi_join=True)


# PostgreSQL's estimate of the matching traces, in ``FEW_TRACES``, past which they are taken as many without a
# probe (see _surely_many). A wrong "many" costs windows (drive-or-windows: 71 ms for ``bitcoin``'s 4,483 hits
# where the probe and its few hits' events took 23), never a wrong row; a wrong "few" costs the probe: for
# ``invoice AND type:email -deleted:true`` at a million traces PostgreSQL estimated 7,257 hits of 30,212 (the
# word and the type go together) and the probe took 100 ms to find 5,001 of them.
ESTIMATED_MANY_FACTOR = 4
# Past this share of the case's traces, hits are dense: the windows plan first walks ``DENSE_WALK`` events
# probing each one's trace (hits that common at the start fill a page within a few hundred events, where a
# window reads the word index's whole bitmap: 90 ms for ``users``, in 60 % of a million traces), and its
# windows grow by half as much (``DENSE_WINDOW_GROWTH``): past a sparse start, a window too wide reads tens
# of thousands of hits.
DENSE_SHARE = 0.25
DENSE_WALK = 2_000
DENSE_WINDOW_GROWTH = 2


def _surely_many(*, estimate: float | None, widest: float | None) -> bool:
    """Whether PostgreSQL's estimates say many hits: past ``ESTIMATED_MANY_FACTOR * FEW_TRACES``, or past
    ``FEW_TRACES`` with one of the query's own index scans (a word's) past the factor. Estimates of a word or a
    flag alone are good to a factor of two or so; of a word and other conditions together they assume them
    independent, and a word goes with the type of the traces that hold it."""
    if estimate is None:
        return False
    many = ESTIMATED_MANY_FACTOR * FEW_TRACES
    return estimate > many or (estimate > FEW_TRACES and widest is not None and widest > many)


def _estimates(sql: tuple[str, Sequence]) -> tuple[float | None, float | None]:
    """PostgreSQL's estimate of the rows ``sql`` selects, and the largest of its index scans' own estimates (a
    word's bitmap before the other conditions narrow it; None without one); (None, None) on SQLite."""
    if connection.vendor != "postgresql":
        return None, None
    subquery, params = sql
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {subquery}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = [node["Plan Rows"] for node in _plan_nodes(plan[0]["Plan"]) if node["Node Type"] == "Bitmap Index Scan"]
    return float(plan[0]["Plan"]["Plan Rows"]), float(max(scans)) if scans else None


def _plan_nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def _estimated_rows(sql: tuple[str, Sequence]) -> float | None:
    """PostgreSQL's estimate of the rows ``sql`` selects; None on SQLite (no row estimates worth the name)."""
    return _estimates(sql)[0]


def _dense(*, where: EventFilter, estimate: float | None) -> bool:
    """Whether PostgreSQL estimates the hits at more than ``DENSE_SHARE`` of the case's traces."""
    if estimate is None:
        return False
    case_traces = _estimated_rows(("SELECT id FROM search_trace WHERE case_id = %s", [where.case_id]))
    return case_traces is not None and estimate > DENSE_SHARE * case_traces


def _matching_spans(spans_sql: tuple[str, Sequence], *, count: int) -> list[tuple[int, str | None, str | None]]:
    """Any ``count`` matching traces' (id, first event, last event), in whatever order PostgreSQL finds them."""
    subquery, params = spans_sql
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({subquery}) AS matched LIMIT %s", [*params, count])  # noqa: S608 (Django's SQL)
        return [(trace_id, first, last) for trace_id, first, last in cursor]


def _earliest(
    *,
    where: EventFilter,
    spans: list[tuple[int, str | None, str | None]],
    after: Keyset | None,
    limit: int,
    descending: bool,
) -> tuple[list[int], str | None]:
    """Of a few hits, those whose events can be on the page, and the time no event of the page is past.

    Each hit with an event known to be in the page's range — its first or its last event, which the span
    columns give — has that event (its witness) on the page or after it; so the page's ``limit`` events are
    at or before the ``limit``-th earliest witness, and only hits whose span reaches that far need their
    events read: 101 traces of ``bitcoin``'s 4,483, not 18,000 events. (In descending order, the latest.)
    With kinds, a first or last event may be of another kind: every hit's events are read then."""
    every = [trace_id for trace_id, _, _ in spans]
    if where.names is not None:
        return every, None
    # The page's range: after the keyset's time (strictly: an event at that very time may come before the
    # keyset), within the filter's start (included) and end (excluded).
    near = after[0] if after is not None else (where.end if descending else where.start)
    near_strict = after is not None or descending  # the end is excluded, the start included
    far = where.start if descending else where.end

    def in_range(time: str | None) -> bool:
        if time is None:
            return False
        if descending:
            before_near = near is None or (time < near if near_strict else time <= near)
            return before_near and (far is None or time >= far)
        beyond_near = near is None or (time > near if near_strict else time >= near)
        return beyond_near and (far is None or time < far)

    witnesses: list[str] = []
    for _, first, last in spans:
        nearest, other = (last, first) if descending else (first, last)
        witness = nearest if in_range(nearest) else other if in_range(other) else None
        if witness is not None:
            witnesses.append(witness)
    if len(witnesses) < limit:
        return every, None
    witnesses.sort(reverse=descending)
    bound = witnesses[limit - 1]
    if descending:
        reaching = [
            trace_id
            for trace_id, first, last in spans
            if last is not None and last >= bound and (near is None or first is None or first <= near)
        ]
    else:
        reaching = [
            trace_id
            for trace_id, first, last in spans
            if first is not None and first <= bound and (near is None or last is None or last >= near)
        ]
    return reaching, bound


def matching_ids(traces_sql: tuple[str, Sequence], *, count: int) -> list[int]:
    """Any ``count`` ids the matching query selects, in whatever order the database finds them fastest."""
    subquery, params = traces_sql
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT matched.id FROM ({subquery}) AS matched LIMIT %s", [*params, count])  # noqa: S608 (Django's SQL)
        return [row[0] for row in cursor]


def _conditions(
    *, where: EventFilter, after: Keyset | None, descending: bool, table: str = "", through: str | None = None
) -> tuple[list[str], list[Any]]:
    """The case, time range, names and keyset conditions on the events table (``table``: its alias and a dot);
    ``through``: no event past that time (included) in the walk's direction."""
    conditions: list[str] = [f"{table}case_id = %s"]
    params: list[Any] = [where.case_id]
    if where.start is not None:
        conditions.append(f"{table}time >= %s")
        params.append(where.start)
    if where.end is not None:
        conditions.append(f"{table}time < %s")
        params.append(where.end)
    if where.names is not None:
        conditions.append(f"{table}name IN ({', '.join(['%s'] * len(where.names))})")
        params.extend(where.names)
    if where.types is not None:
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        conditions.append(f"{table}types IN ({', '.join([f'%s{cast}'] * len(where.types))})")
        params.extend(where.types)
    if where.deleted is not None:
        conditions.append(f"{table}deleted = %s")
        params.append(where.deleted)
    if through is not None:
        conditions.append(f"{table}time {'>=' if descending else '<='} %s")
        params.append(through)
    if after is not None:
        # Row-value comparison: both databases read it as one index bound.
        conditions.append(f"({table}time, {table}trace_id, {table}name) {'<' if descending else '>'} (%s, %s, %s)")
        params.extend(after)
    return conditions, params


def _order(*, descending: bool, table: str = "") -> str:
    direction = "DESC" if descending else "ASC"
    return f"ORDER BY {table}time {direction}, {table}trace_id {direction}, {table}name {direction}"


def _rows(sql: str, params: list[Any]) -> list[EventRow]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [EventRow(time=time, zone=zone, name=name, trace_id=trace_id) for time, zone, name, trace_id in cursor]


def _walk(
    *, where: EventFilter, after: Keyset | None, limit: int, descending: bool, semi_join: bool = False
) -> list[EventRow]:
    """A range scan of the (case, time, trace, name) index; with ``semi_join``, each event's trace probed.

    Without a semi-join, events of given types are one range scan of the (case, types, time, trace, name)
    index per stored combination of types (``["email"]``, ``["file", "email"]`` …), each stopping at
    ``limit``, merged: they never read another type's events."""
    if where.types and not (semi_join and where.traces_sql is not None):
        return _by_types(where=where, after=after, limit=limit, descending=descending)
    conditions, params = _conditions(where=where, after=after, descending=descending)
    if semi_join and where.traces_sql is not None:
        subquery, subquery_params = where.traces_sql
        conditions.append(f"trace_id IN ({subquery})")
        params.extend(subquery_params)
    sql = (
        f"SELECT time, zone, name, trace_id FROM {EVENT_TABLE} WHERE {' AND '.join(conditions)} "  # noqa: S608 (constants)
        f"{_order(descending=descending)} LIMIT %s"
    )
    return _rows(sql, [*params, limit])


def _arms(where: EventFilter) -> list[EventFilter]:
    """One filter per range of the (case, types, deleted, time …) index that ``where`` reads, each in time
    order: a stored combination of types with a value of ``deleted`` (both when ``where`` has none); the
    filter itself when it has no types (the (case, time …) index, one range)."""
    if not where.types:
        return [where]
    flags = [False, True] if where.deleted is None else [where.deleted]
    return [replace(where, types=[stored], deleted=flag) for stored in where.types for flag in flags]


def _by_types(*, where: EventFilter, after: Keyset | None, limit: int, descending: bool) -> list[EventRow]:
    assert where.types  # nosec B101  # _walk calls this only with types
    arms: list[str] = []
    params: list[Any] = []
    for arm in _arms(where):
        conditions, arm_params = _conditions(where=arm, after=after, descending=descending)
        arms.append(
            f"SELECT * FROM (SELECT time, zone, name, trace_id FROM {EVENT_TABLE} "  # noqa: S608 (constants)
            f"WHERE {' AND '.join(conditions)} {_order(descending=descending)} LIMIT %s) AS arm{len(arms)}"
        )
        params += [*arm_params, limit]
    direction = "DESC" if descending else "ASC"
    # Each arm is already in order: the databases merge them (time, then trace, then name: 1, 4, 3).
    sql = " UNION ALL ".join(arms) + f" ORDER BY 1 {direction}, 4 {direction}, 3 {direction} LIMIT %s"
    return _rows(sql, [*params, limit])


def _driven(
    *,
    where: EventFilter,
    trace_ids: list[int],
    after: Keyset | None,
    limit: int,
    descending: bool,
    through: str | None = None,
) -> list[EventRow]:
    """The events of ``trace_ids`` found by trace id (the primary key), sorted, the first ``limit`` kept."""
    if not trace_ids:
        return []
    conditions, params = _conditions(where=where, after=after, descending=descending, table="event.", through=through)
    if connection.vendor == "postgresql":
        ids_from = "unnest(%s::bigint[]) AS hit (id)"
        ids_param: Any = trace_ids
    else:
        # CROSS JOIN: SQLite keeps the ids as the outer loop (not a walk of the time index probing the ids);
        # "+case_id": each id's events by the primary key, not by the (case, types …) index, which also
        # covers the query and which SQLite took without statistics (the whole case's events, per id).
        ids_from = "(SELECT value AS id FROM json_each(%s)) AS hit"
        ids_param = json.dumps(trace_ids)
        conditions[0] = "+" + conditions[0]
    sql = (
        f"SELECT event.time, event.zone, event.name, event.trace_id FROM {ids_from} "  # noqa: S608 (constants)
        f"CROSS JOIN {EVENT_TABLE} AS event WHERE event.trace_id = hit.id AND {' AND '.join(conditions)} "
        f"{_order(descending=descending, table='event.')} LIMIT %s"
    )
    return _rows(sql, [ids_param, *params, limit])


def _chunked(*, where: EventFilter, after: Keyset | None, limit: int, descending: bool) -> list[EventRow]:
    """Walk the time index a chunk at a time; keep the events of the chunk's traces the query matches."""
    assert where.traces_sql is not None  # nosec B101  # events_page calls this only with a query
    found: list[EventRow] = []
    chunk = max(FIRST_CHUNK, limit)
    while True:
        rows = _walk(where=where, after=after, limit=chunk, descending=descending)
        if not rows:
            return found
        matched = _matching_among(where.traces_sql, trace_ids={row.trace_id for row in rows})
        for row in rows:
            if row.trace_id in matched:
                found.append(row)
                if len(found) == limit:
                    return found
        if len(rows) < chunk:
            return found
        last = rows[-1]
        after = (last.time, last.trace_id, last.name)
        chunk = min(chunk * 4, LARGEST_CHUNK)


def _matching_among(traces_sql: tuple[str, Sequence], *, trace_ids: set[int], bitmaps: bool = False) -> set[int]:
    """Which of ``trace_ids`` the matching query selects: one statement, the ids a condition of the query.

    With ``bitmaps`` (PostgreSQL), index scans are off for the statement: the planner then intersects the
    primary key's bitmap of the ids with the query's own index bitmaps (a word's, a flag's) and reads only
    the rows in both. Left to itself it probes each id by the primary key and tests the query on its row,
    which for a word means its out-of-line vector, read for every id (24,000 ids: 200-270 ms where the
    intersection took 37-56 ms at a million traces; docs/benchmarks.md, evbitmap)."""
    subquery, params = traces_sql
    among_param: Any
    postgres = connection.vendor == "postgresql"
    if postgres:
        # The ids as a literal array (client-side binding): the planner sees how many they are.
        among, among_param = "matched.id = ANY(%s::bigint[])", sorted(trace_ids)
    else:
        among, among_param = "matched.id IN (SELECT value FROM json_each(%s))", json.dumps(sorted(trace_ids))
    sql = f"SELECT matched.id FROM ({subquery}) AS matched WHERE {among}"  # noqa: S608 (Django's SQL)
    if not (bitmaps and postgres):
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, among_param])
            return {row[0] for row in cursor}
    with _intersecting_bitmaps() as cursor:
        cursor.execute(sql, [*params, among_param])
        return {row[0] for row in cursor}


def _materialised(*, where: EventFilter, after: Keyset | None, limit: int, descending: bool) -> list[EventRow]:
    """Every matching trace's id into a temporary table (one statement: the query evaluated once, as a count of
    its hits is), then a walk of the events' index that reads only the index (time, trace, name: no table row,
    so no zone) and probes the table's primary key per event, stopped at the page's end; the page's zones
    read after by the events' primary key. The table is dropped before the function returns, whatever happens
    (no leak into the connection's next request; PostgreSQL's ``ON COMMIT DROP`` too)."""
    assert where.traces_sql is not None  # nosec B101  # events_page calls this only with a query
    # A word's hits from the word index alone (77,000 rowids of "invoice": each trace row read to check its
    # case cost 81 ms of a 102 ms page at a million traces on SQLite); the walk keeps the case's events.
    subquery, params = where.hits_superset_sql or where.traces_sql
    walk = partial(
        _covering_walk,
        where=where,
        after=after,
        limit=limit,
        descending=descending,
        condition=f"EXISTS (SELECT 1 FROM {HITS_TABLE} WHERE {HITS_TABLE}.id = event.trace_id)",  # noqa: S608 (constants)
    )
    fill = f"INSERT INTO {HITS_TABLE} (id) SELECT matched.id FROM ({subquery}) AS matched"  # noqa: S608 (Django's SQL)
    if connection.vendor == "postgresql":
        # A failure (the search time budget's statement timeout) rolls the savepoint back, the table with it:
        # DDL is transactional, and PostgreSQL refuses any statement in a failed transaction.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {HITS_TABLE}")
            cursor.execute(f"CREATE TEMPORARY TABLE {HITS_TABLE} (id bigint PRIMARY KEY) ON COMMIT DROP")
            cursor.execute(fill, params)
            cursor.execute(f"ANALYZE {HITS_TABLE}")  # its size, so the walk probes it by its key
            rows = walk()
            cursor.execute(f"DROP TABLE {HITS_TABLE}")
        return rows
    if where.word_exists_sql is not None and FIRST_WORD_WALK > 0:
        # A word common among the first events (a word of the system files' paths) fills the page within a few
        # hundred: they are walked first, each checked in the word index (25 µs an event), before every hit of
        # the word is gathered (330,000 rowids of "windows" into the table: 80 ms at a million traces).
        edge = _window_edge(where=where, after=after, size=FIRST_WORD_WALK * limit, descending=descending)
        condition, condition_params = where.word_exists_sql
        rows = walk(condition=condition, condition_params=condition_params, through=edge)
        if len(rows) >= limit or edge is None:
            return rows
    # SQLite: no transaction of its own. Django's atomic() begins IMMEDIATE here, which would hold the database's
    # write lock, every writer waiting, while the page is found; a temporary table is the connection's own and
    # is written without it. Dropped whatever happens.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {HITS_TABLE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {HITS_TABLE} (id integer PRIMARY KEY)")
        try:
            cursor.execute(fill, params)
            return walk()
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {HITS_TABLE}")


def _covering_walk(
    *,
    where: EventFilter,
    after: Keyset | None,
    limit: int,
    descending: bool,
    condition: str,
    condition_params: Sequence = (),
    through: str | None = None,
) -> list[EventRow]:
    """The page's keys from the events' indexes alone, each event kept by ``condition`` (SQL on ``event``),
    then the page's zones by primary key.

    Both databases fetch an event's table row as soon as the statement names a column the index lacks
    (``zone``), for every event walked, kept or not: reading the index alone was 8-10 times faster at a million
    traces. With ``types``, one range scan of the (case, types, time …) index per stored combination, merged."""
    keys, params = _keys_sql(
        where=where,
        after=after,
        limit=limit,
        descending=descending,
        condition=condition,
        condition_params=condition_params,
        through=through,
    )
    sql = (
        f"SELECT page.time, event.zone, page.name, page.trace_id FROM ({keys}) AS page "  # noqa: S608 (constants)
        f"JOIN {EVENT_TABLE} AS event ON event.trace_id = page.trace_id AND event.name = page.name "
        f"{_order(descending=descending, table='page.')}"
    )
    return _rows(sql, params)


def _keys_sql(
    *,
    where: EventFilter,
    after: Keyset | None,
    limit: int,
    descending: bool,
    condition: str | None = None,
    condition_params: Sequence = (),
    through: str | None = None,
) -> tuple[str, list[Any]]:
    """SQL for the next ``limit`` events' keys (time, trace_id, name) in order, read from the indexes alone."""
    arms: list[str] = []
    params: list[Any] = []
    for arm_where in _arms(where):
        conditions, arm_params = _conditions(
            where=arm_where, after=after, descending=descending, table="event.", through=through
        )
        if condition is not None:
            conditions.append(condition)
        arms.append(
            f"SELECT * FROM (SELECT event.time, event.trace_id, event.name FROM {EVENT_TABLE} AS event "  # noqa: S608 (constants)
            f"WHERE {' AND '.join(conditions)} {_order(descending=descending, table='event.')} "
            f"LIMIT %s) AS arm{len(arms)}"
        )
        params += [*arm_params, *(condition_params if condition is not None else ()), limit]
    direction = "DESC" if descending else "ASC"
    sql = " UNION ALL ".join(arms) + f" ORDER BY 1 {direction}, 2 {direction}, 3 {direction} LIMIT %s"
    return sql, [*params, limit]


@contextmanager
def _intersecting_bitmaps() -> Iterator[CursorWrapper]:
    """PostgreSQL: a cursor in a savepoint with index scans off, so the planner answers with bitmaps it can
    intersect, and the sample's work memory, so they stay exact (past work_mem a bitmap turns lossy: rows
    rechecked, the words read again); both settings as they were after."""
    with (
        transaction.atomic(),
        planner_setting("enable_indexscan", "off"),
        sample_work_memory(),
        connection.cursor() as cursor,
    ):
        yield cursor


def _semi_join_walk(
    *, where: EventFilter, after: Keyset | None, limit: int, descending: bool, through: str | None = None
) -> list[EventRow]:
    """The walk of the events' indexes alone with the query as a semi-join probing each event's trace."""
    assert where.traces_sql is not None  # nosec B101  # called only with a query
    subquery, params = where.traces_sql
    return _covering_walk(
        where=where,
        after=after,
        limit=limit,
        descending=descending,
        condition=f"event.trace_id IN ({subquery})",
        condition_params=params,
        through=through,
    )


def _index_chunked(
    *, where: EventFilter, after: Keyset | None, limit: int, descending: bool, bitmaps: bool = False
) -> list[EventRow]:
    """The chunked walk (``_chunked``) reading the indexes alone: each chunk's keys, the query asked once
    which of the chunk's traces match (one probe per trace, not per event; with ``bitmaps``, an intersection
    of index bitmaps, see _matching_among), the page's zones read last."""
    assert where.traces_sql is not None  # nosec B101  # events_page calls this only with a query
    found: list[tuple[str, int, str]] = []
    chunk = max(FIRST_CHUNK, limit)
    while len(found) < limit:
        sql, params = _keys_sql(where=where, after=after, limit=chunk, descending=descending)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            keys = [tuple(row) for row in cursor]
        if not keys:
            break
        matched = _matching_among(where.traces_sql, trace_ids={trace_id for _, trace_id, _ in keys}, bitmaps=bitmaps)
        found += [key for key in keys if key[1] in matched][: limit - len(found)]
        if len(keys) < chunk:
            break
        after = keys[-1]
        chunk = min(chunk * 4, LARGEST_CHUNK)
    return _with_zones(found)


def _with_zones(keys: list[tuple[str, int, str]]) -> list[EventRow]:
    """The events of ``keys`` (time, trace_id, name), in the keys' order, with their zones."""
    if not keys:
        return []
    ids_param: Any
    if connection.vendor == "postgresql":
        among, ids_param = "trace_id = ANY(%s::bigint[])", sorted({trace_id for _, trace_id, _ in keys})
    else:
        among, ids_param = "trace_id IN (SELECT value FROM json_each(%s))", json.dumps(sorted({key[1] for key in keys}))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT trace_id, name, zone FROM {EVENT_TABLE} WHERE {among}", [ids_param])  # noqa: S608 (constants)
        zones = {(trace_id, name): zone for trace_id, name, zone in cursor}
    return [
        EventRow(time=time, zone=zones[trace_id, name], name=name, trace_id=trace_id) for time, trace_id, name in keys
    ]


def _windowed(
    *, where: EventFilter, after: Keyset | None, limit: int, descending: bool, dense: bool = False
) -> list[EventRow]:
    """PostgreSQL: the page from windows of time, each wider than the last by the density of hits it found.

    A window runs from the page's start (its keyset, or the filter's start) to the time of the
    ``FIRST_WINDOW``-th event on (``_window_edge``, read from the events' index alone). Every event of a hit
    in it belongs to a hit whose first event is at or before the window's end and whose last is at or after
    its start: one statement finds those hits (``where.windowed``), the query's own index (a word's bitmap,
    a flag's) intersected with the span index's bitmap, only the traces in both read; their events in the
    window, by trace id, sorted, are the page when there are ``limit`` of them (or the window reached the
    end of the timeline); else a wider window. A sparse start of the timeline (a disk's system files, none
    a hit of ``invoice``: 23,000 events before its hundredth) costs a bitmap, not a probe per event.
    With ``dense`` hits (see DENSE_SHARE), the first ``DENSE_WALK`` events are walked first, and windows grow
    slower. SQLite has no bitmap intersection and reads a word's hits from its word index:
    ``drive-or-materialise``."""
    if where.windowed is None or connection.vendor != "postgresql":
        return _materialised(where=where, after=after, limit=limit, descending=descending)
    if dense:
        edge = _window_edge(where=where, after=after, size=DENSE_WALK, descending=descending)
        rows = _semi_join_walk(where=where, after=after, limit=limit, descending=descending, through=edge)
        if len(rows) >= limit or edge is None:
            return rows
    window = max(SMALLEST_WINDOW, round(FIRST_WINDOW * _scope_share(where)))
    near = after[0] if after is not None else (where.end if descending else where.start)
    while True:
        edge = _window_edge(where=where, after=after, size=window, descending=descending)
        far = edge if edge is not None else (where.start if descending else where.end)
        low, high = (far, near) if descending else (near, far)
        subquery, params = where.windowed(low, high)
        with _intersecting_bitmaps() as cursor:
            cursor.execute(subquery, params)
            trace_ids = [row[0] for row in cursor]
        rows = _driven(where=where, trace_ids=trace_ids, after=after, limit=limit, descending=descending, through=edge)
        if len(rows) >= limit or edge is None:
            return rows
        window *= _growth(found=len(rows), wanted=limit, most=DENSE_WINDOW_GROWTH if dense else MOST_WINDOW_GROWTH)


def _scope_share(where: EventFilter) -> float:
    """PostgreSQL's estimate of the share of the case's events that ``where``'s types, flag and kinds keep."""
    if where.types is None and where.deleted is None and where.names is None:
        return 1.0
    every, every_params = _conditions(where=EventFilter(case_id=where.case_id), after=None, descending=False)
    kept, kept_params = _conditions(
        where=EventFilter(case_id=where.case_id, names=where.names, types=where.types, deleted=where.deleted),
        after=None,
        descending=False,
    )
    select = f"SELECT 1 FROM {EVENT_TABLE} WHERE "  # noqa: S608 (constants)
    case_events = _estimated_rows((select + " AND ".join(every), every_params))
    scope_events = _estimated_rows((select + " AND ".join(kept), kept_params))
    if not case_events or scope_events is None:
        return 1.0
    return min(1.0, scope_events / case_events)


def _growth(*, found: int, wanted: int, most: int) -> int:
    """How many times wider the next window: enough for twice the events still wanted at the density the last
    window found, at least 2, at most ``most`` (a sparse start says little of what follows it)."""
    if found == 0:
        return most
    return min(most, max(2, -(-2 * wanted // found)))


def _window_edge(*, where: EventFilter, after: Keyset | None, size: int, descending: bool) -> str | None:
    """The time of the ``size``-th event after ``after`` in the walk's order (read from the events' indexes
    alone), or None when fewer are left: the window then reaches the end of the timeline."""
    keys, params = _keys_sql(where=replace(where, traces_sql=None), after=after, limit=size, descending=descending)
    edge = "min" if descending else "max"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), {edge}(window_key.time) FROM ({keys}) AS window_key", params)  # noqa: S608 (constants)
        count, time = cursor.fetchone()
    return time if count >= size else None
