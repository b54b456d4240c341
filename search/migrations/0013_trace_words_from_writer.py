"""PostgreSQL: the word trigger keeps a vector its writer computed (now search/backends/sql/schema.py)."""

from django.db import migrations

# Frozen: the statements this migration runs, byte for byte as the live code wrote them when it was frozen
# (search/backends/fulltext.py, since moved to search/backends/sql/schema.py). A migration means the same
# thing forever: never edit them, and never import application code here; a new schema is a new migration.
POSTGRES_WORDS_FUNCTION = (
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
)


def replace(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_WORDS_FUNCTION, params=None)  # literal {} in the SQL: no placeholders


class Migration(migrations.Migration):
    dependencies = [("search", "0012_trace_number_index")]

    # Back to 0012, the function may keep its first lines: the writer of that code never sets the vector.
    operations = [migrations.RunPython(replace, migrations.RunPython.noop)]
