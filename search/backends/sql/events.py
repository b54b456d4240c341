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

These lists are the schema as it is now; migration 0016 carries them frozen (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

EVENT_TABLE = "search_trace_event"
ZONE_UTC = "UTC"
ZONE_LOCAL_UNKNOWN = "local, unknown"
TIME_WIDTH = 19

_TRIGGERS = ("search_trace_event_insert", "search_trace_event_delete", "search_trace_event_update")

# SQLite: GLOB is case-sensitive (LIKE is not, and would take ``email.version`` for a time).
_SQLITE_EVENTS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, substr(property.value, 1, 19), "
    "CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' "
    "WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' "
    "THEN substr(property.value, -6) ELSE 'local, unknown' END "
    "FROM json_each({row}.properties) AS property "
    "WHERE property.type = 'text' AND property.key GLOB '*On' "
    "AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
)
SQLITE_EVENTS_INSTALL = [
    f"""CREATE TABLE IF NOT EXISTS {EVENT_TABLE} (trace_id integer NOT NULL, case_id integer NOT NULL,
        name text NOT NULL, time text NOT NULL, zone text NOT NULL, PRIMARY KEY (trace_id, name)) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {EVENT_TABLE}_time ON {EVENT_TABLE} (case_id, time, trace_id, name)",
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"""CREATE TRIGGER search_trace_event_insert AFTER INSERT ON search_trace BEGIN
        INSERT INTO {EVENT_TABLE} (trace_id, case_id, name, time, zone) {_SQLITE_EVENTS_OF.format(row="new")};
    END""",
    f"""CREATE TRIGGER search_trace_event_delete AFTER DELETE ON search_trace BEGIN
        DELETE FROM {EVENT_TABLE} WHERE trace_id = old.id;
    END""",  # noqa: S608
    f"""CREATE TRIGGER search_trace_event_update AFTER UPDATE OF case_id, properties ON search_trace BEGIN
        DELETE FROM {EVENT_TABLE} WHERE trace_id = old.id;
        INSERT INTO {EVENT_TABLE} (trace_id, case_id, name, time, zone) {_SQLITE_EVENTS_OF.format(row="new")};
    END""",  # noqa: S608
    # The traces written before the index existed.
    f"DELETE FROM {EVENT_TABLE}",  # noqa: S608
    f"INSERT INTO {EVENT_TABLE} (trace_id, case_id, name, time, zone) "
    + _SQLITE_EVENTS_OF.format(row="search_trace").replace(" FROM json_each", " FROM search_trace, json_each"),
]
SQLITE_EVENTS_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
]

_POSTGRES_EVENTS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, left(property.value, 19), "
    "CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' "
    "WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{{2}}:[0-9]{{2}}$' "
    "THEN right(property.value, 6) ELSE 'local, unknown' END "
    "FROM jsonb_each_text({row}.properties) AS property "
    "WHERE jsonb_typeof({row}.properties -> property.key) = 'string' AND property.key LIKE '%On' "
    "AND property.value ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'"
)
POSTGRES_EVENTS_INSTALL = [
    f"""CREATE TABLE IF NOT EXISTS {EVENT_TABLE} (trace_id bigint NOT NULL, case_id bigint NOT NULL,
        name text NOT NULL, time text NOT NULL, zone text NOT NULL, PRIMARY KEY (trace_id, name))""",
    f"CREATE INDEX IF NOT EXISTS {EVENT_TABLE}_time ON {EVENT_TABLE} (case_id, time, trace_id, name)",
    f"""CREATE OR REPLACE FUNCTION search_trace_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM {EVENT_TABLE} WHERE trace_id = OLD.id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO {EVENT_TABLE} (trace_id, case_id, name, time, zone) {_POSTGRES_EVENTS_OF.format(row="NEW")};
        END IF;
        RETURN NULL;
    END $$""",  # noqa: S608
    "DROP TRIGGER IF EXISTS search_trace_events ON search_trace",
    """CREATE TRIGGER search_trace_events AFTER INSERT OR DELETE OR UPDATE OF case_id, properties
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_events()""",
    f"DELETE FROM {EVENT_TABLE}",  # noqa: S608
    f"INSERT INTO {EVENT_TABLE} (trace_id, case_id, name, time, zone) "
    + _POSTGRES_EVENTS_OF.format(row="search_trace").replace(
        " FROM jsonb_each_text", " FROM search_trace, jsonb_each_text"
    ),
]
POSTGRES_EVENTS_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_events ON search_trace",
    "DROP FUNCTION IF EXISTS search_trace_events()",
    f"DROP TABLE IF EXISTS {EVENT_TABLE}",
]
EVENT_TRIGGERS = {"sqlite": set(_TRIGGERS), "postgresql": {"search_trace_events"}}


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
    from ``start`` (included) to ``end`` (excluded), of the property names ``names`` (None: all)."""

    case_id: int
    traces_sql: tuple[str, Sequence] | None = None
    start: str | None = None
    end: str | None = None
    names: Sequence[str] | None = None


def events_page(
    *, where: EventFilter, after: tuple[str, int, str] | None, limit: int, descending: bool = False
) -> list[EventRow]:
    """The next ``limit`` events in time order (then trace, then property) after the keyset ``after``.

    Keyset paging: each page is a range scan of the (case, time, trace, name) index, however deep."""
    conditions: list[str] = ["case_id = %s"]
    params: list[Any] = [where.case_id]
    if where.start is not None:
        conditions.append("time >= %s")
        params.append(where.start)
    if where.end is not None:
        conditions.append("time < %s")
        params.append(where.end)
    if where.names is not None:
        if not where.names:
            return []
        conditions.append(f"name IN ({', '.join(['%s'] * len(where.names))})")
        params.extend(where.names)
    if where.traces_sql is not None:
        subquery, subquery_params = where.traces_sql
        conditions.append(f"trace_id IN ({subquery})")
        params.extend(subquery_params)
    if after is not None:
        # Row-value comparison: both databases read it as one index bound.
        conditions.append(f"(time, trace_id, name) {'<' if descending else '>'} (%s, %s, %s)")
        params.extend(after)
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT time, zone, name, trace_id FROM {EVENT_TABLE} WHERE {' AND '.join(conditions)} "  # noqa: S608 (constants)
        f"ORDER BY time {direction}, trace_id {direction}, name {direction} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [EventRow(time=time, zone=zone, name=name, trace_id=trace_id) for time, zone, name, trace_id in cursor]
