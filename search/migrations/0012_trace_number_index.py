"""The number index: one row per numeric property of a trace, kept by triggers like the full-text index
(now search/backends/sql/schema.py), so comparisons and ranges on properties read an index."""

from django.db import migrations

# Frozen: the statements this migration runs, byte for byte as the live code wrote them when it was frozen
# (search/backends/fulltext.py, since moved to search/backends/sql/schema.py). A migration means the same
# thing forever: never edit them, and never import application code here; a new schema is a new migration.
SQLITE_INSTALL = [
    (
        "CREATE TABLE IF NOT EXISTS search_trace_number (trace_id integer NOT NULL, case_id integer NOT NULL,\n"
        "        name text NOT NULL, value NUMERIC NOT NULL, PRIMARY KEY (trace_id, name)) WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS search_trace_number_value ON search_trace_number (case_id, name, value)",
    "DROP TRIGGER IF EXISTS search_trace_number_insert",
    "DROP TRIGGER IF EXISTS search_trace_number_delete",
    "DROP TRIGGER IF EXISTS search_trace_number_update",
    (
        "CREATE TRIGGER search_trace_number_insert AFTER INSERT ON search_trace\n"
        "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE new.id > after_id) BEGIN\n"
        "        INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT new.id, new.case_id, property.key, property.value FROM json_each(new.properties) AS property WHERE property.type IN ('integer', 'real') AND property.key NOT IN ('file.size');\n"
        "    END"
    ),
    (
        "CREATE TRIGGER search_trace_number_delete AFTER DELETE ON search_trace BEGIN\n"
        "        DELETE FROM search_trace_number WHERE trace_id = old.id;\n"
        "    END"
    ),
    (
        "CREATE TRIGGER search_trace_number_update AFTER UPDATE OF case_id, properties ON search_trace\n"
        "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) BEGIN\n"
        "        DELETE FROM search_trace_number WHERE trace_id = old.id;\n"
        "        INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT new.id, new.case_id, property.key, property.value FROM json_each(new.properties) AS property WHERE property.type IN ('integer', 'real') AND property.key NOT IN ('file.size');\n"
        "    END"
    ),
    "DELETE FROM search_trace_number",
    "INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT search_trace.id, search_trace.case_id, property.key, property.value FROM search_trace, json_each(search_trace.properties) AS property WHERE property.type IN ('integer', 'real') AND property.key NOT IN ('file.size')",
]
POSTGRES_INSTALL = [
    (
        "CREATE TABLE IF NOT EXISTS search_trace_number (trace_id bigint NOT NULL, case_id bigint NOT NULL,\n"
        "        name text NOT NULL, value numeric NOT NULL, PRIMARY KEY (trace_id, name))"
    ),
    "CREATE INDEX IF NOT EXISTS search_trace_number_value ON search_trace_number (case_id, name, value)",
    (
        "CREATE OR REPLACE FUNCTION search_trace_numbers() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "    BEGIN\n"
        "        IF TG_OP <> 'INSERT' THEN\n"
        "            DELETE FROM search_trace_number WHERE trace_id = OLD.id;\n"
        "        END IF;\n"
        "        IF TG_OP <> 'DELETE' THEN\n"
        "            INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT NEW.id, NEW.case_id, property.key, (property.value #>> '{}')::numeric FROM jsonb_each(NEW.properties) AS property WHERE jsonb_typeof(property.value) = 'number' AND property.key NOT IN ('file.size');\n"
        "        END IF;\n"
        "        RETURN NULL;\n"
        "    END $$"
    ),
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    (
        "CREATE TRIGGER search_trace_numbers AFTER INSERT OR DELETE OR UPDATE OF case_id, properties\n"
        "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_numbers()"
    ),
    "DELETE FROM search_trace_number",
    "INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT search_trace.id, search_trace.case_id, property.key, (property.value #>> '{}')::numeric FROM search_trace, jsonb_each(search_trace.properties) AS property WHERE jsonb_typeof(property.value) = 'number' AND property.key NOT IN ('file.size')",
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_number_insert",
    "DROP TRIGGER IF EXISTS search_trace_number_delete",
    "DROP TRIGGER IF EXISTS search_trace_number_update",
    "DROP TABLE IF EXISTS search_trace_number",
]
POSTGRES_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    "DROP FUNCTION IF EXISTS search_trace_numbers()",
    "DROP TABLE IF EXISTS search_trace_number",
]


def run(schema_editor, statements_by_vendor: dict[str, list[str]]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"no full-text index for database {vendor}")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


def install(apps, schema_editor):
    run(schema_editor, {"sqlite": SQLITE_INSTALL, "postgresql": POSTGRES_INSTALL})


def uninstall(apps, schema_editor):
    run(schema_editor, {"sqlite": SQLITE_UNINSTALL, "postgresql": POSTGRES_UNINSTALL})


class Migration(migrations.Migration):
    dependencies = [("search", "0011_trace_sent_on_partial")]

    operations = [migrations.RunPython(install, uninstall)]
