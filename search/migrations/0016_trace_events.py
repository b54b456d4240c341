"""The events index (issue #20 item 5): one row per timestamp property of a trace, kept by triggers
(now search/backends/sql/events.py), so the supertimeline reads an index in time order."""

from django.db import migrations

# Frozen: the statements this migration runs, as search/backends/sql/events.py wrote them when it was frozen.
# A migration means the same thing forever: never edit them, and never import application code here.
SQLITE_EVENTS_INSTALL = [
    (
        'CREATE TABLE IF NOT EXISTS search_trace_event (trace_id integer NOT NULL, case_id integer NOT NULL,\n'
        '        name text NOT NULL, time text NOT NULL, zone text NOT NULL, PRIMARY KEY (trace_id, name)) WITHOUT ROWID'
    ),
    'CREATE INDEX IF NOT EXISTS search_trace_event_time ON search_trace_event (case_id, time, trace_id, name)',
    'DROP TRIGGER IF EXISTS search_trace_event_insert',
    'DROP TRIGGER IF EXISTS search_trace_event_delete',
    'DROP TRIGGER IF EXISTS search_trace_event_update',
    (
        'CREATE TRIGGER search_trace_event_insert AFTER INSERT ON search_trace BEGIN\n'
        "        INSERT INTO search_trace_event (trace_id, case_id, name, time, zone) SELECT new.id, new.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END FROM json_each(new.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*';\n"
        '    END'
    ),
    (
        'CREATE TRIGGER search_trace_event_delete AFTER DELETE ON search_trace BEGIN\n'
        '        DELETE FROM search_trace_event WHERE trace_id = old.id;\n'
        '    END'
    ),
    (
        'CREATE TRIGGER search_trace_event_update AFTER UPDATE OF case_id, properties ON search_trace BEGIN\n'
        '        DELETE FROM search_trace_event WHERE trace_id = old.id;\n'
        "        INSERT INTO search_trace_event (trace_id, case_id, name, time, zone) SELECT new.id, new.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END FROM json_each(new.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*';\n"
        '    END'
    ),
    'DELETE FROM search_trace_event',
    "INSERT INTO search_trace_event (trace_id, case_id, name, time, zone) SELECT search_trace.id, search_trace.case_id, property.key, substr(property.value, 1, 19), CASE WHEN property.value GLOB '*Z' OR property.value GLOB '*+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND substr(property.value, -6) GLOB '[+-][0-9][0-9]:[0-9][0-9]' THEN substr(property.value, -6) ELSE 'local, unknown' END FROM search_trace, json_each(search_trace.properties) AS property WHERE property.type = 'text' AND property.key GLOB '*On' AND property.value GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'",
]
SQLITE_EVENTS_UNINSTALL = [
    'DROP TRIGGER IF EXISTS search_trace_event_insert',
    'DROP TRIGGER IF EXISTS search_trace_event_delete',
    'DROP TRIGGER IF EXISTS search_trace_event_update',
    'DROP TABLE IF EXISTS search_trace_event',
]
POSTGRES_EVENTS_INSTALL = [
    (
        'CREATE TABLE IF NOT EXISTS search_trace_event (trace_id bigint NOT NULL, case_id bigint NOT NULL,\n'
        '        name text NOT NULL, time text NOT NULL, zone text NOT NULL, PRIMARY KEY (trace_id, name))'
    ),
    'CREATE INDEX IF NOT EXISTS search_trace_event_time ON search_trace_event (case_id, time, trace_id, name)',
    (
        'CREATE OR REPLACE FUNCTION search_trace_events() RETURNS trigger LANGUAGE plpgsql AS $$\n'
        '    BEGIN\n'
        "        IF TG_OP <> 'INSERT' THEN\n"
        '            DELETE FROM search_trace_event WHERE trace_id = OLD.id;\n'
        '        END IF;\n'
        "        IF TG_OP <> 'DELETE' THEN\n"
        "            INSERT INTO search_trace_event (trace_id, case_id, name, time, zone) SELECT NEW.id, NEW.case_id, property.key, left(property.value, 19), CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{2}:[0-9]{2}$' THEN right(property.value, 6) ELSE 'local, unknown' END FROM jsonb_each_text(NEW.properties) AS property WHERE jsonb_typeof(NEW.properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}';\n"
        '        END IF;\n'
        '        RETURN NULL;\n'
        '    END $$'
    ),
    'DROP TRIGGER IF EXISTS search_trace_events ON search_trace',
    (
        'CREATE TRIGGER search_trace_events AFTER INSERT OR DELETE OR UPDATE OF case_id, properties\n'
        '       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_events()'
    ),
    'DELETE FROM search_trace_event',
    "INSERT INTO search_trace_event (trace_id, case_id, name, time, zone) SELECT search_trace.id, search_trace.case_id, property.key, left(property.value, 19), CASE WHEN property.value LIKE '%Z' OR property.value LIKE '%+00:00' THEN 'UTC' WHEN length(property.value) > 19 AND right(property.value, 6) ~ '^[+-][0-9]{2}:[0-9]{2}$' THEN right(property.value, 6) ELSE 'local, unknown' END FROM search_trace, jsonb_each_text(search_trace.properties) AS property WHERE jsonb_typeof(search_trace.properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}'",
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


def uninstall(apps, schema_editor):
    run(schema_editor, {"sqlite": SQLITE_EVENTS_UNINSTALL, "postgresql": POSTGRES_EVENTS_UNINSTALL})


class Migration(migrations.Migration):
    dependencies = [("search", "0015_run_lease")]

    operations = [migrations.RunPython(install, uninstall)]
