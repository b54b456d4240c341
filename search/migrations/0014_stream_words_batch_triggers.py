"""Stream hashes are words of a trace, and the extraction publisher's rows skip the per-row triggers on
PostgreSQL (now search/backends/sql/schema.py):

* the full-text triggers add the MD5, SHA-1 and SHA-256 of every data stream to the words they index, and run
  again when the streams change, so a bare hash and ``data.raw.hash.md5:…`` are found through the word index;
  every trace is indexed again;
* PostgreSQL: the words trigger runs on an insert only for a row written without its vector, and the number
  trigger on an insert only when the writer has not said it indexes the numbers itself
  (``custodia.numbers_deferred``), as the extraction publisher does, one statement a batch.
"""

from django.db import migrations

# Frozen: the statements this migration runs, byte for byte as search/backends/sql/schema.py wrote them when
# it was frozen. A migration means the same thing forever: never edit them, and never import application
# code here; a new schema is a new migration.
SQLITE_INSTALL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_trace_fts USING fts5(\n"
    "        words, content='', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TABLE IF NOT EXISTS search_trace_fts_deferral (after_id integer NOT NULL)",
    "DELETE FROM search_trace_fts_deferral",
    "DROP TRIGGER IF EXISTS search_trace_fts_insert",
    "DROP TRIGGER IF EXISTS search_trace_fts_delete",
    "DROP TRIGGER IF EXISTS search_trace_fts_update",
    "CREATE TRIGGER search_trace_fts_insert AFTER INSERT ON search_trace\n"
    "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE new.id > after_id) BEGIN\n"
    "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
    "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '') || "
    "' ' ||\n"
    "    coalesce((SELECT group_concat(hash.value, ' ')\n"
    "              FROM json_each(new.streams) AS stream, json_each(stream.value) AS hash\n"
    "              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')\n"
    ");\n"
    "    END",
    "CREATE TRIGGER search_trace_fts_delete AFTER DELETE ON search_trace\n"
    "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) BEGIN\n"
    "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
    "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '') || "
    "' ' ||\n"
    "    coalesce((SELECT group_concat(hash.value, ' ')\n"
    "              FROM json_each(old.streams) AS stream, json_each(stream.value) AS hash\n"
    "              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')\n"
    ");\n"
    "    END",
    "CREATE TRIGGER search_trace_fts_update AFTER UPDATE OF name, path, text, properties, streams\n"
    "        ON search_trace WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) "
    "BEGIN\n"
    "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
    "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '') || "
    "' ' ||\n"
    "    coalesce((SELECT group_concat(hash.value, ' ')\n"
    "              FROM json_each(old.streams) AS stream, json_each(stream.value) AS hash\n"
    "              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')\n"
    ");\n"
    "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
    "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '') || "
    "' ' ||\n"
    "    coalesce((SELECT group_concat(hash.value, ' ')\n"
    "              FROM json_each(new.streams) AS stream, json_each(stream.value) AS hash\n"
    "              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')\n"
    ");\n"
    "    END",
    "INSERT INTO search_trace_fts(search_trace_fts) VALUES ('delete-all')",
    "INSERT INTO search_trace_fts(rowid, words) SELECT id, \n"
    "    search_trace.name || ' ' || search_trace.path || ' ' || substr(search_trace.text, 1, 200000) || ' ' "
    "||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(search_trace.properties) WHERE type = "
    "'text'), '') || ' ' ||\n"
    "    coalesce((SELECT group_concat(hash.value, ' ')\n"
    "              FROM json_each(search_trace.streams) AS stream, json_each(stream.value) AS hash\n"
    "              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')\n"
    " FROM search_trace",
]

POSTGRES_INSTALL = [
    "ALTER TABLE search_trace ADD COLUMN IF NOT EXISTS search_vector tsvector",
    "CREATE OR REPLACE FUNCTION search_trace_words() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "    BEGIN\n"
    "        IF NEW.search_vector IS NOT NULL\n"
    "           AND (TG_OP = 'INSERT' OR NEW.search_vector IS DISTINCT FROM OLD.search_vector) THEN\n"
    "            RETURN NEW;\n"
    "        END IF;\n"
    "        NEW.search_vector := to_tsvector('simple', regexp_replace(\n"
    "            NEW.name || ' ' || NEW.path || ' ' || left(NEW.text, 200000) || ' ' || coalesce(\n"
    "                (SELECT string_agg(value #>> '{}', ' ') FROM jsonb_each(NEW.properties)\n"
    "                 WHERE jsonb_typeof(value) = 'string'), '') || ' ' || coalesce(\n"
    "                (SELECT string_agg(hash.value #>> '{}', ' ')\n"
    "                 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(NEW.streams) = 'array' THEN NEW.streams "
    "ELSE '[]' END)\n"
    "                      AS stream (value),\n"
    "                      jsonb_each(CASE WHEN jsonb_typeof(stream.value) = 'object' THEN stream.value\n"
    "                                 ELSE '{}' END) AS hash\n"
    "                 WHERE hash.key IN ('md5', 'sha1', 'sha256') AND jsonb_typeof(hash.value) = 'string'), "
    "''),\n"
    "            '[^[:alnum:]]+', ' ', 'g'));\n"
    "        RETURN NEW;\n"
    "    END $$",
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    "DROP TRIGGER IF EXISTS search_trace_words_insert ON search_trace",
    "CREATE TRIGGER search_trace_words_insert BEFORE INSERT ON search_trace\n"
    "       FOR EACH ROW WHEN (NEW.search_vector IS NULL) EXECUTE FUNCTION search_trace_words()",
    "CREATE TRIGGER search_trace_words BEFORE UPDATE OF name, path, text, properties, streams\n"
    "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_words()",
    "UPDATE search_trace SET name = name",
    "CREATE INDEX IF NOT EXISTS search_trace_search_vector ON search_trace USING gin (search_vector)",
    "CREATE TABLE IF NOT EXISTS search_trace_number (trace_id bigint NOT NULL, case_id bigint NOT NULL,\n"
    "        name text NOT NULL, value numeric NOT NULL, PRIMARY KEY (trace_id, name))",
    "CREATE INDEX IF NOT EXISTS search_trace_number_value ON search_trace_number (case_id, name, value)",
    "CREATE OR REPLACE FUNCTION search_trace_numbers() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "    BEGIN\n"
    "        IF TG_OP <> 'INSERT' THEN\n"
    "            DELETE FROM search_trace_number WHERE trace_id = OLD.id;\n"
    "        END IF;\n"
    "        IF TG_OP <> 'DELETE' THEN\n"
    "            INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT NEW.id, NEW.case_id, "
    "property.key, (property.value #>> '{}')::numeric FROM jsonb_each(NEW.properties) AS property WHERE "
    "jsonb_typeof(property.value) = 'number' AND property.key NOT IN ('file.size');\n"
    "        END IF;\n"
    "        RETURN NULL;\n"
    "    END $$",
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    "DROP TRIGGER IF EXISTS search_trace_numbers_insert ON search_trace",
    "CREATE TRIGGER search_trace_numbers_insert AFTER INSERT ON search_trace FOR EACH ROW\n"
    "       WHEN (current_setting('custodia.numbers_deferred', true) IS DISTINCT FROM 'on')\n"
    "       EXECUTE FUNCTION search_trace_numbers()",
    "CREATE TRIGGER search_trace_numbers AFTER DELETE OR UPDATE OF case_id, properties\n"
    "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_numbers()",
    "DELETE FROM search_trace_number",
    "INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT search_trace.id, "
    "search_trace.case_id, property.key, (property.value #>> '{}')::numeric FROM search_trace, "
    "jsonb_each(search_trace.properties) AS property WHERE jsonb_typeof(property.value) = 'number' AND "
    "property.key NOT IN ('file.size')",
]

# Back to 0013: the statements of search/backends/sql/schema.py before this migration.
SQLITE_INSTALL_BEFORE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_trace_fts USING fts5(\n"
    "        words, content='', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TABLE IF NOT EXISTS search_trace_fts_deferral (after_id integer NOT NULL)",
    "DELETE FROM search_trace_fts_deferral",
    "DROP TRIGGER IF EXISTS search_trace_fts_insert",
    "DROP TRIGGER IF EXISTS search_trace_fts_delete",
    "DROP TRIGGER IF EXISTS search_trace_fts_update",
    "CREATE TRIGGER search_trace_fts_insert AFTER INSERT ON search_trace\n"
    "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE new.id > after_id) BEGIN\n"
    "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
    "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '')\n"
    ");\n"
    "    END",
    "CREATE TRIGGER search_trace_fts_delete AFTER DELETE ON search_trace\n"
    "        WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) BEGIN\n"
    "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
    "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '')\n"
    ");\n"
    "    END",
    "CREATE TRIGGER search_trace_fts_update AFTER UPDATE OF name, path, text, properties\n"
    "        ON search_trace WHEN NOT EXISTS (SELECT 1 FROM search_trace_fts_deferral WHERE old.id > after_id) "
    "BEGIN\n"
    "        INSERT INTO search_trace_fts(search_trace_fts, rowid, words) VALUES ('delete', old.id, \n"
    "    old.name || ' ' || old.path || ' ' || substr(old.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(old.properties) WHERE type = 'text'), '')\n"
    ");\n"
    "        INSERT INTO search_trace_fts(rowid, words) VALUES (new.id, \n"
    "    new.name || ' ' || new.path || ' ' || substr(new.text, 1, 200000) || ' ' ||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(new.properties) WHERE type = 'text'), '')\n"
    ");\n"
    "    END",
    "INSERT INTO search_trace_fts(search_trace_fts) VALUES ('delete-all')",
    "INSERT INTO search_trace_fts(rowid, words) SELECT id, \n"
    "    search_trace.name || ' ' || search_trace.path || ' ' || substr(search_trace.text, 1, 200000) || ' ' "
    "||\n"
    "    coalesce((SELECT group_concat(value, ' ') FROM json_each(search_trace.properties) WHERE type = "
    "'text'), '')\n"
    " FROM search_trace",
]

POSTGRES_INSTALL_BEFORE = [
    "DROP TRIGGER IF EXISTS search_trace_words_insert ON search_trace",
    "DROP TRIGGER IF EXISTS search_trace_numbers_insert ON search_trace",
    "ALTER TABLE search_trace ADD COLUMN IF NOT EXISTS search_vector tsvector",
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
    "    END $$",
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    "CREATE TRIGGER search_trace_words BEFORE INSERT OR UPDATE OF name, path, text, properties\n"
    "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_words()",
    "UPDATE search_trace SET name = name",
    "CREATE INDEX IF NOT EXISTS search_trace_search_vector ON search_trace USING gin (search_vector)",
    "CREATE TABLE IF NOT EXISTS search_trace_number (trace_id bigint NOT NULL, case_id bigint NOT NULL,\n"
    "        name text NOT NULL, value numeric NOT NULL, PRIMARY KEY (trace_id, name))",
    "CREATE INDEX IF NOT EXISTS search_trace_number_value ON search_trace_number (case_id, name, value)",
    "CREATE OR REPLACE FUNCTION search_trace_numbers() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "    BEGIN\n"
    "        IF TG_OP <> 'INSERT' THEN\n"
    "            DELETE FROM search_trace_number WHERE trace_id = OLD.id;\n"
    "        END IF;\n"
    "        IF TG_OP <> 'DELETE' THEN\n"
    "            INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT NEW.id, NEW.case_id, "
    "property.key, (property.value #>> '{}')::numeric FROM jsonb_each(NEW.properties) AS property WHERE "
    "jsonb_typeof(property.value) = 'number' AND property.key NOT IN ('file.size');\n"
    "        END IF;\n"
    "        RETURN NULL;\n"
    "    END $$",
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    "CREATE TRIGGER search_trace_numbers AFTER INSERT OR DELETE OR UPDATE OF case_id, properties\n"
    "       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_numbers()",
    "DELETE FROM search_trace_number",
    "INSERT INTO search_trace_number (trace_id, case_id, name, value) SELECT search_trace.id, "
    "search_trace.case_id, property.key, (property.value #>> '{}')::numeric FROM search_trace, "
    "jsonb_each(search_trace.properties) AS property WHERE jsonb_typeof(property.value) = 'number' AND "
    "property.key NOT IN ('file.size')",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)  # literal {} in the SQL: no placeholders

    return run


class Migration(migrations.Migration):
    dependencies = [("search", "0013_trace_words_from_writer")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_INSTALL, "postgresql": POSTGRES_INSTALL}),
            _run({"sqlite": SQLITE_INSTALL_BEFORE, "postgresql": POSTGRES_INSTALL_BEFORE}),
        )
    ]
