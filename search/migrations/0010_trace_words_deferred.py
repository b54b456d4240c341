"""SQLite: the full-text triggers leave the traces a writer inserts in bulk to that writer, which indexes
them in one statement (search/backends/sql/fulltext.py: defer_words, index_deferred_words)."""

from django.db import migrations

# Frozen: the statements this migration runs, byte for byte as the live code wrote them when it was frozen
# (search/backends/fulltext.py, since moved to search/backends/sql/schema.py). A migration means the same
# thing forever: never edit them, and never import application code here; a new schema is a new migration.
# The word index (FTS5 or tsvector + GIN) and the number index, their triggers, and the traces already there.
SQLITE_INSTALL = [
    (
        "CREATE VIRTUAL TABLE IF NOT EXISTS search_trace_fts USING fts5(\n"
        "        words, content='', tokenize='unicode61 remove_diacritics 0')"
    ),
    "CREATE TABLE IF NOT EXISTS search_trace_fts_deferral (after_id integer NOT NULL)",
    "DELETE FROM search_trace_fts_deferral",
    "DROP TRIGGER IF EXISTS search_trace_fts_insert",
    "DROP TRIGGER IF EXISTS search_trace_fts_delete",
    "DROP TRIGGER IF EXISTS search_trace_fts_update",
    (
        "CREATE TRIGGER search_trace_fts_insert AFTER INSERT ON search_trace\n"
        "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE new.id > after_id) BEGIN\n"
        "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
        "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
        "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '')\n"
        ");\n"
        "    END"
    ),
    (
        "CREATE TRIGGER search_trace_fts_delete AFTER DELETE ON search_trace\n"
        "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) BEGIN\n"
        "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
        "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
        "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '')\n"
        ");\n"
        "    END"
    ),
    (
        "CREATE TRIGGER search_trace_fts_update AFTER UPDATE OF name, path, text, properties\n"
        "        ON search_trace WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) BEGIN\n"
        "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
        "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
        "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '')\n"
        ");\n"
        "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
        "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
        "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '')\n"
        ");\n"
        "    END"
    ),
    "INSERT INTO search_trace_fts(search_trace_fts) VALUES ('delete-all')",
    (
        "INSERT INTO search_trace_fts(rowid, words) SELECT id, \n"
        "    search_trace.name || ' ' || search_trace.path || ' ' || substr(search_trace.text, 1, 200000) || ' ' ||\n"
        "    coalesce((SELECT group_concat(value, ' ') FROM json_each(search_trace.properties) WHERE type = 'text'), '')\n"
        " FROM search_trace"
    ),
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
    "ALTER TABLE search_trace ADD COLUMN IF NOT EXISTS search_vector tsvector",
    (
        "CREATE OR REPLACE FUNCTION search_trace_words() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "    BEGIN\n"
        "        IF NEW.search_vector IS NOT NULL\n"
        "           AND (TG_OP = 'INSERT' OR NEW.search_vector IS DISTINCT FROM OLD.search_vector) THEN\n"
        "            RETURN NEW;\n"
        "        END IF;\n"
        "        NEW.search_vector := to_tsvector('simple', regexp_replace(\n"
        "            NEW.name || ' ' || NEW.path || ' ' || left(NEW.text, 200000) || ' ' || coalesce(\n"
        "                (SELECT string_agg(value #>> '{}', ' ') FROM jsonb_each(NEW.properties)\n"
        "                 WHERE jsonb_typeof(value) = 'string'), ''),\n"
        "            '[^[:alnum:]]+', ' ', 'g'));\n"
        "        RETURN NEW;\n"
        "    END $$"
    ),
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    (
        "CREATE TRIGGER search_trace_words BEFORE INSERT OR UPDATE OF name, path, text, properties\n"
        "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_words()"
    ),
    "UPDATE search_trace SET name = name",
    "CREATE INDEX IF NOT EXISTS search_trace_search_vector ON search_trace USING gin (search_vector)",
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


def run(schema_editor, statements_by_vendor: dict[str, list[str]]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"no full-text index for database {vendor}")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


def install(apps, schema_editor):
    run(schema_editor, {"sqlite": SQLITE_INSTALL, "postgresql": POSTGRES_INSTALL})


class Migration(migrations.Migration):
    dependencies = [("search", "0009_trace_case_unindexed")]

    # Back to 0009, the triggers keep their condition: with no deferral row, it always holds.
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
