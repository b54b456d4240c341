"""Each trace's first and last event time (issue #20 item 5, branch evbitmap), PostgreSQL only: two generated
columns of ``search_trace`` by the rule of its events (search/backends/sql/events.py) and a (case, first, last)
index, which the events timeline's ``drive-or-windows`` plan intersects with a query's own indexes. Adding the
columns rewrites the table once (about four minutes at a million traces). SQLite is left as it is."""

from django.db import migrations

# Frozen: the statements this migration runs, as search/backends/sql/events.py wrote them when it was frozen.
# A migration means the same thing forever: never edit them, and never import application code here.
POSTGRES_SPAN_INSTALL = [
    "CREATE OR REPLACE FUNCTION search_trace_first_event(properties jsonb) RETURNS text\n        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT min(left(property.value, 19)) FROM jsonb_each_text(properties) AS property WHERE jsonb_typeof(properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' $$",
    "CREATE OR REPLACE FUNCTION search_trace_last_event(properties jsonb) RETURNS text\n        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT max(left(property.value, 19)) FROM jsonb_each_text(properties) AS property WHERE jsonb_typeof(properties -> property.key) = 'string' AND property.key LIKE '%On' AND property.value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' $$",
    "ALTER TABLE search_trace\n        ADD COLUMN first_event text GENERATED ALWAYS AS (search_trace_first_event(properties)) STORED,\n        ADD COLUMN last_event text GENERATED ALWAYS AS (search_trace_last_event(properties)) STORED",
    "CREATE INDEX search_trace_event_span ON search_trace (case_id, first_event, last_event)",
]
POSTGRES_SPAN_UNINSTALL = [
    "DROP INDEX IF EXISTS search_trace_event_span",
    "ALTER TABLE search_trace DROP COLUMN IF EXISTS first_event, DROP COLUMN IF EXISTS last_event",
    "DROP FUNCTION IF EXISTS search_trace_first_event(jsonb)",
    "DROP FUNCTION IF EXISTS search_trace_last_event(jsonb)",
]


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in POSTGRES_SPAN_INSTALL:
            schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in POSTGRES_SPAN_UNINSTALL:
            schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


class Migration(migrations.Migration):
    dependencies = [("search", "0019_covering_trace_indexes")]

    operations = [migrations.RunPython(install, uninstall)]
