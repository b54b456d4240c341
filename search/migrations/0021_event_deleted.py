"""The events carry their trace's ``deleted`` flag (issue #20 item 5, branch evbitmap), and the (case, types, time …)
index becomes (case, types, deleted, time …): a ``deleted:`` query (with or without ``type:``) reads only its own
events in time order. The table is rebuilt and refilled, its triggers reinstalled (which now follow a change of
``deleted``). At a million traces the refill took about four minutes."""

import importlib

from django.db import migrations

# Frozen: the statements this migration runs, as search/backends/sql/events.py wrote them when it was frozen.
# A migration means the same thing forever: never edit them, and never import application code here.
SQLITE_EVENTS_INSTALL = [
    'DROP TRIGGER IF EXISTS search_trace_event_insert',
    'DROP TRIGGER IF EXISTS search_trace_event_delete',
    'DROP TRIGGER IF EXISTS search_trace_event_update',
    'DROP TABLE IF EXISTS search_trace_event',
    'CREATE TABLE search_trace_event (trace_id integer NOT NULL, case_id integer NOT NULL,\n        name text NOT NULL, time text NOT NULL, zone text NOT NULL, types text NOT NULL, deleted integer NOT NULL,\n        PRIMARY KEY (trace_id, name)) WITHOUT ROWID',
    "CREATE TRIGGER search_trace_event_insert AFTER INSERT ON search_trace BEGIN\n        INSERT INTO search_trace_event (trace_id, case_id, name, time, zone, types, deleted) SELECT new.id, new.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END, new.types, new.deleted FROM json_each(new.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*';\n    END",
    'CREATE TRIGGER search_trace_event_delete AFTER DELETE ON search_trace BEGIN\n        DELETE FROM search_trace_event WHERE trace_id = old.id;\n    END',
    "CREATE TRIGGER search_trace_event_update AFTER UPDATE OF case_id, properties, types, deleted ON search_trace\n    BEGIN\n        DELETE FROM search_trace_event WHERE trace_id = old.id;\n        INSERT INTO search_trace_event (trace_id, case_id, name, time, zone, types, deleted) SELECT new.id, new.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END, new.types, new.deleted FROM json_each(new.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*';\n    END",
    "INSERT INTO search_trace_event (trace_id, case_id, name, time, zone, types, deleted) SELECT search_trace.id, search_trace.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END, search_trace.types, search_trace.deleted FROM search_trace, json_each(search_trace.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'",
    'CREATE INDEX search_trace_event_time ON search_trace_event (case_id, time, trace_id, name)',
    'CREATE INDEX search_trace_event_types ON search_trace_event (case_id, types, deleted, time, trace_id, name)',
]
SQLITE_EVENTS_UNINSTALL = [
    'DROP TRIGGER IF EXISTS search_trace_event_insert',
    'DROP TRIGGER IF EXISTS search_trace_event_delete',
    'DROP TRIGGER IF EXISTS search_trace_event_update',
    'DROP TABLE IF EXISTS search_trace_event',
]
POSTGRES_EVENTS_INSTALL = [
    'DROP TRIGGER IF EXISTS search_trace_events ON search_trace',
    'DROP TABLE IF EXISTS search_trace_event',
    'CREATE TABLE search_trace_event (trace_id bigint NOT NULL, case_id bigint NOT NULL,\n        name text NOT NULL, time text NOT NULL, zone text NOT NULL, types jsonb NOT NULL, deleted boolean NOT NULL,\n        PRIMARY KEY (trace_id, name))',
    "CREATE OR REPLACE FUNCTION search_trace_events() RETURNS trigger LANGUAGE plpgsql AS $$\n    BEGIN\n        IF TG_OP <> 'INSERT' THEN\n            DELETE FROM search_trace_event WHERE trace_id = OLD.id;\n        END IF;\n        IF TG_OP <> 'DELETE' THEN\n            INSERT INTO search_trace_event (trace_id, case_id, name, time, zone, types, deleted) SELECT NEW.id, NEW.case_id, property.key, left(property.value, 19), CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{2}:[0-9]{2}$' THEN right(property.value, 6) ELSE 'local, unknown' END, NEW.types, NEW.deleted FROM jsonb_each_text(NEW.properties) AS property WHERE jsonb_typeof(NEW.properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}';\n        END IF;\n        RETURN NULL;\n    END $$",
    'CREATE TRIGGER search_trace_events AFTER INSERT OR DELETE OR UPDATE OF case_id, properties, types, deleted\n       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_events()',
    "INSERT INTO search_trace_event (trace_id, case_id, name, time, zone, types, deleted) SELECT search_trace.id, search_trace.case_id, property.key, left(property.value, 19), CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{2}:[0-9]{2}$' THEN right(property.value, 6) ELSE 'local, unknown' END, search_trace.types, search_trace.deleted FROM search_trace, jsonb_each_text(search_trace.properties) AS property WHERE jsonb_typeof(search_trace.properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}'",
    'CREATE INDEX search_trace_event_time ON search_trace_event (case_id, time, trace_id, name)',
    'CREATE INDEX search_trace_event_types ON search_trace_event (case_id, types, deleted, time, trace_id, name)',
]
POSTGRES_EVENTS_UNINSTALL = [
    'DROP TRIGGER IF EXISTS search_trace_events ON search_trace',
    'DROP FUNCTION IF EXISTS search_trace_events()',
    'DROP TABLE IF EXISTS search_trace_event',
]


def run(schema_editor, statements_by_vendor: dict[str, list[str]]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"no events index for database {vendor}")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


def install(apps, schema_editor):
    run(schema_editor, {"sqlite": SQLITE_EVENTS_INSTALL, "postgresql": POSTGRES_EVENTS_INSTALL})


def back_to_0018(apps, schema_editor):
    # 0018's own frozen statements rebuild the index as it was (without the flag).
    previous = importlib.import_module("search.migrations.0018_event_types")
    run(schema_editor, {"sqlite": previous.SQLITE_EVENTS_INSTALL, "postgresql": previous.POSTGRES_EVENTS_INSTALL})


class Migration(migrations.Migration):
    dependencies = [("search", "0020_trace_event_span")]

    operations = [migrations.RunPython(install, back_to_0018)]
