"""The database side of trace search: the full-text index, the number index and the triggers that keep them.

Both databases index the same words — a trace's name, path, text stream, every string property and the
hashes of its data streams (``data.raw.hash.md5`` …, so a bare hash finds its trace) — split
at every character that is not a letter or a digit, lower-cased (search/backends/sql/fulltext.py says the
same rule in Python). The indexes are kept by triggers on ``search_trace``, so every way of writing a trace
(the extraction publisher's upserts, the admin, a data migration) keeps them current in the same
transaction:

* SQLite: a contentless FTS5 table ``search_trace_fts`` whose rowid is the trace's id. Its triggers
  insert the words of a new row and remove those of an old one (a contentless table forgets rows by
  being told their old words, which the trigger recomputes from the old row). A writer of many traces
  may take the words of its own rows over (``search_trace_fts_deferral``, fulltext.defer_words).
* PostgreSQL: a ``search_vector`` tsvector column filled by a BEFORE trigger, with a GIN index; the
  trigger keeps a vector its writer computed (fulltext.document_words).

The same triggers keep the number index, ``search_trace_number``: one row (trace, case, name, value) per
numeric property of a trace, indexed by (case, name, value), so that ``picture.width>=4000`` or
``gps.latitude:[52 TO 53]`` reads an index rather than the JSON of every candidate trace. Properties kept
in columns of the trace itself (``file.size``, search.models.INDEXED_NUMBERS) are left out of it.

These lists are the schema as it is now. Migrations never import them: each migration carries, frozen, the
statements it ran (0005, 0007, 0009, 0010, 0012, 0013), and a test checks that the latest of them ran
exactly these. A change here therefore goes with a new migration that carries the new statements. Django's
SQLite schema editor rebuilds a table to alter it, which drops its triggers: a migration that alters
``search_trace`` installs them again after its operations both ways (see 0009's ``keeping_triggers``); a
test checks the triggers after all migrations (:data:`EXPECTED_TRIGGERS`, :func:`installed_triggers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

FTS_TABLE = "search_trace_fts"
# A writer of many traces at once (the extraction publisher) puts one row here inside its own transaction,
# so no other connection ever sees it: traces with a higher id than ``after_id`` are then left to that
# writer to index in one statement (fulltext.index_deferred_words), much faster than a trigger a row.
DEFERRAL_TABLE = "search_trace_fts_deferral"
NUMBER_TABLE = "search_trace_number"
# Numeric properties with a column of their own (search.models.INDEXED_NUMBERS; a test checks the two agree).
NUMBERS_IN_COLUMNS = ("file.size",)

_SQLITE_WORDS_OF = """
    {row}.name || ' ' || {row}.path || ' ' || substr({row}.text, 1, 200000) || ' ' ||
    coalesce((SELECT group_concat(value, ' ') FROM json_each({row}.properties) WHERE type = 'text'), '') || ' ' ||
    coalesce((SELECT group_concat(hash.value, ' ')
              FROM json_each({row}.streams) AS stream, json_each(stream.value) AS hash
              WHERE hash.key IN ('md5', 'sha1', 'sha256') AND hash.type = 'text'), '')
"""
_NEW, _OLD = (_SQLITE_WORDS_OF.format(row=row) for row in ("new", "old"))
# SQLite: the words of each row of ``search_trace`` in a query over it, as the triggers compute them.
SQLITE_WORDS_OF_TRACES = _SQLITE_WORDS_OF.format(row="search_trace")

_NOT_DEFERRED = "NOT EXISTS (SELECT 1 FROM " + DEFERRAL_TABLE + " WHERE {row}.id > after_id)"  # noqa: S608
_TRIGGERS = ("search_trace_fts_insert", "search_trace_fts_delete", "search_trace_fts_update")

_NUMBERS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, property.value FROM json_each({row}.properties) AS property "  # noqa: S608
    "WHERE property.type IN ('integer', 'real') AND property.key NOT IN ("
    + ", ".join(f"'{name}'" for name in NUMBERS_IN_COLUMNS)
    + ")"
)
# SQLite: the number index's rows of every trace, a SELECT to append a condition on search_trace to
# (``AND …``) where only some are wanted.
SQLITE_NUMBERS_OF_TRACES = _NUMBERS_OF.format(row="search_trace").replace(
    " FROM json_each", " FROM search_trace, json_each"
)
_NUMBER_TRIGGERS = ("search_trace_number_insert", "search_trace_number_delete", "search_trace_number_update")

# Only constants go into these statements (S608 cannot tell).
SQLITE_NUMBERS_INSTALL = [
    # Without a rowid: the (trace, name) key is the table, and the value index the one other b-tree.
    f"""CREATE TABLE IF NOT EXISTS {NUMBER_TABLE} (trace_id integer NOT NULL, case_id integer NOT NULL,
        name text NOT NULL, value NUMERIC NOT NULL, PRIMARY KEY (trace_id, name)) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {NUMBER_TABLE}_value ON {NUMBER_TABLE} (case_id, name, value)",
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _NUMBER_TRIGGERS),
    f"""CREATE TRIGGER search_trace_number_insert AFTER INSERT ON search_trace
        WHEN {_NOT_DEFERRED.format(row="new")} BEGIN
        INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {_NUMBERS_OF.format(row="new")};
    END""",
    f"""CREATE TRIGGER search_trace_number_delete AFTER DELETE ON search_trace BEGIN
        DELETE FROM {NUMBER_TABLE} WHERE trace_id = old.id;
    END""",  # noqa: S608
    f"""CREATE TRIGGER search_trace_number_update AFTER UPDATE OF case_id, properties ON search_trace
        WHEN {_NOT_DEFERRED.format(row="old")} BEGIN
        DELETE FROM {NUMBER_TABLE} WHERE trace_id = old.id;
        INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {_NUMBERS_OF.format(row="new")};
    END""",  # noqa: S608
    # Rows written before the index existed (or while a table rebuild had dropped the triggers).
    f"DELETE FROM {NUMBER_TABLE}",  # noqa: S608
    f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {SQLITE_NUMBERS_OF_TRACES}",
]
SQLITE_NUMBERS_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _NUMBER_TRIGGERS),
    f"DROP TABLE IF EXISTS {NUMBER_TABLE}",
]
SQLITE_INSTALL = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
        words, content='', tokenize='unicode61 remove_diacritics 0')""",
    f"CREATE TABLE IF NOT EXISTS {DEFERRAL_TABLE} (after_id integer NOT NULL)",
    f"DELETE FROM {DEFERRAL_TABLE}",  # noqa: S608
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"""CREATE TRIGGER search_trace_fts_insert AFTER INSERT ON search_trace
        WHEN {_NOT_DEFERRED.format(row="new")} BEGIN
        INSERT INTO {FTS_TABLE}(rowid, words) VALUES (new.id, {_NEW});
    END""",  # noqa: S608
    f"""CREATE TRIGGER search_trace_fts_delete AFTER DELETE ON search_trace
        WHEN {_NOT_DEFERRED.format(row="old")} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, words) VALUES ('delete', old.id, {_OLD});
    END""",  # noqa: S608
    f"""CREATE TRIGGER search_trace_fts_update AFTER UPDATE OF name, path, text, properties, streams
        ON search_trace WHEN {_NOT_DEFERRED.format(row="old")} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, words) VALUES ('delete', old.id, {_OLD});
        INSERT INTO {FTS_TABLE}(rowid, words) VALUES (new.id, {_NEW});
    END""",  # noqa: S608
    # Rows written before the index existed (or while a table rebuild had dropped the triggers).
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')",  # noqa: S608
    f"INSERT INTO {FTS_TABLE}(rowid, words) SELECT id, {SQLITE_WORDS_OF_TRACES} FROM search_trace",  # noqa: S608
]
SQLITE_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
    f"DROP TABLE IF EXISTS {DEFERRAL_TABLE}",
]

# A writer that computed the words itself (the extraction publisher, with fulltext.document_words) sets the
# vector; the trigger keeps it: on an insert when there is one, on an update when it changed. Otherwise
# [^[:alnum:]]+ → one space: the same words as FTS5's unicode61 and as fulltext.words() in Python.
POSTGRES_WORDS_FUNCTION = """CREATE OR REPLACE FUNCTION search_trace_words() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.search_vector IS NOT NULL
           AND (TG_OP = 'INSERT' OR NEW.search_vector IS DISTINCT FROM OLD.search_vector) THEN
            RETURN NEW;
        END IF;
        NEW.search_vector := to_tsvector('simple', regexp_replace(
            NEW.name || ' ' || NEW.path || ' ' || left(NEW.text, 200000) || ' ' || coalesce(
                (SELECT string_agg(value #>> '{}', ' ') FROM jsonb_each(NEW.properties)
                 WHERE jsonb_typeof(value) = 'string'), '') || ' ' || coalesce(
                (SELECT string_agg(hash.value #>> '{}', ' ')
                 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(NEW.streams) = 'array' THEN NEW.streams ELSE '[]' END)
                      AS stream (value),
                      jsonb_each(CASE WHEN jsonb_typeof(stream.value) = 'object' THEN stream.value
                                 ELSE '{}' END) AS hash
                 WHERE hash.key IN ('md5', 'sha1', 'sha256') AND jsonb_typeof(hash.value) = 'string'), ''),
            '[^[:alnum:]]+', ' ', 'g'));
        RETURN NEW;
    END $$"""
POSTGRES_INSTALL = [
    "ALTER TABLE search_trace ADD COLUMN IF NOT EXISTS search_vector tsvector",
    POSTGRES_WORDS_FUNCTION,
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    "DROP TRIGGER IF EXISTS search_trace_words_insert ON search_trace",
    # A row written with its vector (the extraction publisher's) needs no call of the function at all.
    """CREATE TRIGGER search_trace_words_insert BEFORE INSERT ON search_trace
       FOR EACH ROW WHEN (NEW.search_vector IS NULL) EXECUTE FUNCTION search_trace_words()""",
    """CREATE TRIGGER search_trace_words BEFORE UPDATE OF name, path, text, properties, streams
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_words()""",
    "UPDATE search_trace SET name = name",
    "CREATE INDEX IF NOT EXISTS search_trace_search_vector ON search_trace USING gin (search_vector)",
]
# PostgreSQL: set to 'on' for its own transaction (set_config(…, true)) by a writer that indexes the numbers
# of the traces it inserts itself.
NUMBERS_DEFERRED_SETTING = "custodia.numbers_deferred"

_POSTGRES_NUMBERS_OF = (
    "SELECT NEW.id, NEW.case_id, property.key, (property.value #>> '{}')::numeric "
    "FROM jsonb_each(NEW.properties) AS property "
    "WHERE jsonb_typeof(property.value) = 'number' AND property.key NOT IN ("
    + ", ".join(f"'{name}'" for name in NUMBERS_IN_COLUMNS)
    + ")"
)
POSTGRES_NUMBERS_INSTALL = [
    f"""CREATE TABLE IF NOT EXISTS {NUMBER_TABLE} (trace_id bigint NOT NULL, case_id bigint NOT NULL,
        name text NOT NULL, value numeric NOT NULL, PRIMARY KEY (trace_id, name))""",
    f"CREATE INDEX IF NOT EXISTS {NUMBER_TABLE}_value ON {NUMBER_TABLE} (case_id, name, value)",
    f"""CREATE OR REPLACE FUNCTION search_trace_numbers() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM {NUMBER_TABLE} WHERE trace_id = OLD.id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {_POSTGRES_NUMBERS_OF};
        END IF;
        RETURN NULL;
    END $$""",  # noqa: S608
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    "DROP TRIGGER IF EXISTS search_trace_numbers_insert ON search_trace",
    # The extraction publisher writes the number rows of the traces it inserts itself, one statement a batch
    # (POSTGRES_NUMBERS_OF_INSERTED), and says so for its own transaction with NUMBERS_DEFERRED_SETTING.
    f"""CREATE TRIGGER search_trace_numbers_insert AFTER INSERT ON search_trace FOR EACH ROW
       WHEN (current_setting('{NUMBERS_DEFERRED_SETTING}', true) IS DISTINCT FROM 'on')
       EXECUTE FUNCTION search_trace_numbers()""",
    """CREATE TRIGGER search_trace_numbers AFTER DELETE OR UPDATE OF case_id, properties
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_numbers()""",
    f"DELETE FROM {NUMBER_TABLE}",  # noqa: S608
    f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) "
    + _POSTGRES_NUMBERS_OF.replace("NEW.", "search_trace.").replace(
        " FROM jsonb_each", " FROM search_trace, jsonb_each"
    ),
]
# PostgreSQL: the number rows of the traces a CTE ``written`` (id, case_id, properties, inserted) wrote,
# those it inserted: ``WITH written AS (INSERT … RETURNING …) `` + this.
POSTGRES_NUMBERS_OF_INSERTED = (
    "INSERT INTO " + NUMBER_TABLE + " (trace_id, case_id, name, value) "
    "SELECT written.id, written.case_id, property.key, (property.value #>> '{}')::numeric "
    "FROM written, jsonb_each(written.properties) AS property "
    "WHERE written.inserted AND jsonb_typeof(property.value) = 'number' AND property.key NOT IN ("
    + ", ".join(f"'{name}'" for name in NUMBERS_IN_COLUMNS)
    + ")"
)
POSTGRES_NUMBERS_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_numbers ON search_trace",
    "DROP FUNCTION IF EXISTS search_trace_numbers()",
    f"DROP TABLE IF EXISTS {NUMBER_TABLE}",
]
POSTGRES_UNINSTALL = [
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    "DROP FUNCTION IF EXISTS search_trace_words()",
    "DROP INDEX IF EXISTS search_trace_search_vector",
    "ALTER TABLE search_trace DROP COLUMN IF EXISTS search_vector",
]

# The triggers on search_trace that keep the indexes, by database vendor.
EXPECTED_TRIGGERS = {
    "sqlite": {*_TRIGGERS, *_NUMBER_TRIGGERS},
    "postgresql": {
        "search_trace_words",
        "search_trace_words_insert",
        "search_trace_numbers",
        "search_trace_numbers_insert",
    },
}


def installed_triggers(connection: BaseDatabaseWrapper) -> set[str]:
    """The names of the triggers present on ``search_trace`` (for checks and tests)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'search_trace'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'search_trace'::regclass AND NOT tgisinternal"
            )
        return {row[0] for row in cursor.fetchall()}
