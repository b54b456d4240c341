"""The span of each trace's events by its last event first (issue #20 item 5), PostgreSQL only: the windows of a
descending page, or of a page after a keyset, ask for the traces whose last event comes at or after a time.
About ten seconds at a million traces. SQLite is left as it is."""

from django.db import migrations

# Frozen: the statements this migration runs, as search/backends/sql/events.py wrote them when it was frozen.
POSTGRES_SPAN_LAST_INSTALL = [
    "CREATE INDEX search_trace_event_span_last ON search_trace (case_id, last_event, first_event)",
]
POSTGRES_SPAN_LAST_UNINSTALL = ["DROP INDEX IF EXISTS search_trace_event_span_last"]


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in POSTGRES_SPAN_LAST_INSTALL:
            schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in POSTGRES_SPAN_LAST_UNINSTALL:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("search", "0021_event_deleted")]

    operations = [migrations.RunPython(install, uninstall)]
