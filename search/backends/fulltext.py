"""Full-text indexes of traces in the database: SQLite FTS5 and PostgreSQL tsvector + GIN.

Both index the same words — a trace's name, path, text stream and every string property — split the
same way: at every character that is not a letter or a digit, lower-cased. So ``passwords.txt`` is the
words ``passwords`` and ``txt`` on both databases (PostgreSQL's own parser would keep it as one "file"
word), and a query term is split by :func:`words` in Python with the same rule before it reaches SQL.

The indexes are kept by triggers on ``search_trace``, so every way of writing a trace (the extraction
publisher's upserts, the admin, a data migration) keeps them current in the same transaction:

* SQLite: a contentless FTS5 table ``search_trace_fts`` whose rowid is the trace's id. Its triggers
  insert the words of a new row and remove those of an old one (a contentless table forgets rows by
  being told their old words, which the trigger recomputes from the old row).
* PostgreSQL: a ``search_vector`` tsvector column filled by a BEFORE trigger, with a GIN index.

On PostgreSQL the extraction publisher computes each row's words in Python (:func:`document_words`,
with the same rule as the trigger) and writes the vector with the row, which the trigger then keeps.
On SQLite the extraction publisher indexes its batches itself, in one statement a batch (about 1.7 times
as fast as a trigger a row): inside its transaction it marks the ids it is about to insert as its own
(:func:`defer_words`), and the triggers leave those rows to it (:func:`index_deferred_words`). No
other connection sees the mark, so every other writer is still indexed by the triggers.

The same triggers keep the number index, ``search_trace_number``: one row (trace, case, name, value) per
numeric property of a trace, indexed by (case, name, value), so that ``picture.width>=4000`` or
``gps.latitude:[52 TO 53]`` reads an index rather than the JSON of every candidate trace. Properties kept
in columns of the trace itself (``file.size``, search.models.INDEXED_NUMBERS) are left out of it.

Django's SQLite schema editor rebuilds a table to alter it, which drops its triggers: a migration that
alters ``search_trace`` wraps its operations in :func:`keeping_triggers` (a test checks the triggers
after all migrations).
"""

from __future__ import annotations

import re

FTS_TABLE = "search_trace_fts"

# Letters and digits, as Python's \w without the underscore; SQLite's unicode61 tokenizer and the
# PostgreSQL expression below split at the same characters for the scripts detectives search in.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The indexed words of ``text``, lower-cased, in order."""
    return _WORD.findall(text.lower())


# The text stream is indexed up to this many characters: a PostgreSQL tsvector holds at most 1 MiB.
TEXT_INDEXED_CHARS = 200_000


def document_words(*, name: str, path: str, text: str, properties: dict) -> str:
    """The words the index holds for a trace, as the triggers compute them, separated by spaces: for a
    writer of many traces that computes them in Python, where PostgreSQL's regular expression over every
    text costs more than the rest of writing the row."""
    strings = [value for value in properties.values() if isinstance(value, str)] if isinstance(properties, dict) else []
    # A missing value is the database's to refuse (NOT NULL), not this function's.
    parts = [name or "", path or "", (text or "")[:TEXT_INDEXED_CHARS], *strings]
    return " ".join(words(" ".join(parts)))


_SQLITE_WORDS_OF = """
    {row}.name || ' ' || {row}.path || ' ' || substr({row}.text, 1, 200000) || ' ' ||
    coalesce((SELECT group_concat(value, ' ') FROM json_each({row}.properties) WHERE type = 'text'), '')
"""

_NEW, _OLD, _ALL = (_SQLITE_WORDS_OF.format(row=row) for row in ("new", "old", "search_trace"))

# A writer of many traces at once (the extraction publisher) puts one row here inside its own transaction,
# so no other connection ever sees it: traces with a higher id than ``after_id`` are then left to that
# writer to index in one statement (index_deferred_words), which is much faster than a trigger a row.
DEFERRAL_TABLE = "search_trace_fts_deferral"
_NOT_DEFERRED = "NOT EXISTS (SELECT 1 FROM " + DEFERRAL_TABLE + " WHERE {row}.id > after_id)"  # noqa: S608
_TRIGGERS = ("search_trace_fts_insert", "search_trace_fts_delete", "search_trace_fts_update")

NUMBER_TABLE = "search_trace_number"
# Numeric properties with a column of their own (search.models.INDEXED_NUMBERS; a test checks the two agree).
NUMBERS_IN_COLUMNS = ("file.size",)
_NUMBERS_OF = (
    "SELECT {row}.id, {row}.case_id, property.key, property.value FROM json_each({row}.properties) AS property "  # noqa: S608
    "WHERE property.type IN ('integer', 'real') AND property.key NOT IN ("
    + ", ".join(f"'{name}'" for name in NUMBERS_IN_COLUMNS)
    + ")"
)
# The numbers of every trace (with a condition on search_trace appended where only some are wanted).
_NUMBERS_OF_TRACES = _NUMBERS_OF.format(row="search_trace").replace(" FROM json_each", " FROM search_trace, json_each")
_NUMBER_TRIGGERS = ("search_trace_number_insert", "search_trace_number_delete", "search_trace_number_update")
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
    f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {_NUMBERS_OF_TRACES}",
]
SQLITE_NUMBERS_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _NUMBER_TRIGGERS),
    f"DROP TABLE IF EXISTS {NUMBER_TABLE}",
]
# Only constants go into these statements (S608 cannot tell).
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
    f"""CREATE TRIGGER search_trace_fts_update AFTER UPDATE OF name, path, text, properties
        ON search_trace WHEN {_NOT_DEFERRED.format(row="old")} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, words) VALUES ('delete', old.id, {_OLD});
        INSERT INTO {FTS_TABLE}(rowid, words) VALUES (new.id, {_NEW});
    END""",  # noqa: S608
    # Rows written before the index existed (or while a table rebuild had dropped the triggers).
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')",  # noqa: S608
    f"INSERT INTO {FTS_TABLE}(rowid, words) SELECT id, {_ALL} FROM search_trace",  # noqa: S608
]
SQLITE_UNINSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS),
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
    f"DROP TABLE IF EXISTS {DEFERRAL_TABLE}",
]


def defer_words(cursor) -> int | None:
    """SQLite, inside a transaction: traces inserted from now on in it are indexed by
    :func:`index_deferred_words` (before the transaction ends), not by the triggers. Returns the mark;
    None on PostgreSQL, whose trigger computes a row's words as it is written."""
    if cursor.db.vendor != "sqlite":
        return None
    cursor.execute("SELECT coalesce(max(id), 0) FROM search_trace")
    after_id = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO {DEFERRAL_TABLE} (after_id) VALUES (%s)", [after_id])  # noqa: S608
    return after_id


def index_deferred_words(cursor, *, after_id: int | None) -> None:
    """Index the words of the traces inserted since :func:`defer_words`, in one statement, and end the
    deferral: a row inserted and changed again in the meantime is indexed as it is now."""
    if after_id is None:
        return
    words_of_new_rows = f"INSERT INTO {FTS_TABLE}(rowid, words) SELECT id, {_ALL} FROM search_trace WHERE id > %s"  # noqa: S608
    cursor.execute(words_of_new_rows, [after_id])
    cursor.execute(
        f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {_NUMBERS_OF_TRACES} AND search_trace.id > %s",
        [after_id],
    )
    cursor.execute(f"DELETE FROM {DEFERRAL_TABLE}")  # noqa: S608


# A writer that computed the words itself (the extraction publisher, with document_words) sets the
# vector; the trigger keeps it: on an insert when there is one, on an update when it changed. Otherwise
# [^[:alnum:]]+ → one space: the same words as FTS5's unicode61 and as words() in Python.
POSTGRES_WORDS_FUNCTION = """CREATE OR REPLACE FUNCTION search_trace_words() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.search_vector IS NOT NULL
           AND (TG_OP = 'INSERT' OR NEW.search_vector IS DISTINCT FROM OLD.search_vector) THEN
            RETURN NEW;
        END IF;
        NEW.search_vector := to_tsvector('simple', regexp_replace(
            NEW.name || ' ' || NEW.path || ' ' || left(NEW.text, 200000) || ' ' || coalesce(
                (SELECT string_agg(value #>> '{}', ' ') FROM jsonb_each(NEW.properties)
                 WHERE jsonb_typeof(value) = 'string'), ''),
            '[^[:alnum:]]+', ' ', 'g'));
        RETURN NEW;
    END $$"""
POSTGRES_INSTALL = [
    "ALTER TABLE search_trace ADD COLUMN IF NOT EXISTS search_vector tsvector",
    POSTGRES_WORDS_FUNCTION,
    "DROP TRIGGER IF EXISTS search_trace_words ON search_trace",
    """CREATE TRIGGER search_trace_words BEFORE INSERT OR UPDATE OF name, path, text, properties
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_words()""",
    "UPDATE search_trace SET name = name",
    "CREATE INDEX IF NOT EXISTS search_trace_search_vector ON search_trace USING gin (search_vector)",
]
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
    """CREATE TRIGGER search_trace_numbers AFTER INSERT OR DELETE OR UPDATE OF case_id, properties
       ON search_trace FOR EACH ROW EXECUTE FUNCTION search_trace_numbers()""",
    f"DELETE FROM {NUMBER_TABLE}",  # noqa: S608
    f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) "
    + _POSTGRES_NUMBERS_OF.replace("NEW.", "search_trace.").replace(
        " FROM jsonb_each", " FROM search_trace, jsonb_each"
    ),
]
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


# vendor → ((word index install, uninstall), (number index install, uninstall))
_STATEMENTS = {
    "sqlite": ((SQLITE_INSTALL, SQLITE_UNINSTALL), (SQLITE_NUMBERS_INSTALL, SQLITE_NUMBERS_UNINSTALL)),
    "postgresql": ((POSTGRES_INSTALL, POSTGRES_UNINSTALL), (POSTGRES_NUMBERS_INSTALL, POSTGRES_NUMBERS_UNINSTALL)),
}


def _statements(vendor: str, *, install: bool, words: bool = True) -> list[str]:
    if vendor not in _STATEMENTS:
        raise RuntimeError(f"no full-text index for database {vendor}")
    word_statements, number_statements = _STATEMENTS[vendor]
    chosen = [word_statements, number_statements] if words else [number_statements]
    return [statement for pair in chosen for statement in pair[0 if install else 1]]


def _execute(schema_editor, statements: list[str]) -> None:
    for statement in statements:
        schema_editor.execute(statement, params=None)  # literal % and {} in the SQL: no placeholders


def install(schema_editor) -> None:
    """Create (or re-create) the indexes and their triggers, and index the traces already there."""
    _execute(schema_editor, _statements(schema_editor.connection.vendor, install=True))


def replace_postgres_word_function(schema_editor) -> None:
    """PostgreSQL: the trigger function of the word index as it is now, alone (no traces are reindexed)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_WORDS_FUNCTION, params=None)


def install_numbers(schema_editor) -> None:
    """Create (or re-create) the number index alone, and fill it from the traces already there."""
    _execute(schema_editor, _statements(schema_editor.connection.vendor, install=True, words=False))


def uninstall_numbers(schema_editor) -> None:
    """Remove the number index alone (the reversal of the migration that added it)."""
    _execute(schema_editor, _statements(schema_editor.connection.vendor, install=False, words=False))


def _reinstall(apps, schema_editor) -> None:
    install(schema_editor)


def keeping_triggers(*operations) -> list:
    """Migration operations that alter ``search_trace``, with the full-text triggers installed again
    after them both ways: SQLite may apply them (or their reversal) by rebuilding the table."""
    from django.db import migrations

    return [
        migrations.RunPython(migrations.RunPython.noop, _reinstall),  # reversed last
        *operations,
        migrations.RunPython(_reinstall, migrations.RunPython.noop),
    ]


def uninstall(schema_editor) -> None:
    _execute(schema_editor, _statements(schema_editor.connection.vendor, install=False))


def installed_triggers(connection) -> set[str]:
    """The names of the full-text triggers present on ``search_trace`` (for checks and tests)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'search_trace'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'search_trace'::regclass AND NOT tgisinternal"
            )
        return {row[0] for row in cursor.fetchall()}


EXPECTED_TRIGGERS = {
    "sqlite": {*_TRIGGERS, *_NUMBER_TRIGGERS},
    "postgresql": {"search_trace_words", "search_trace_numbers"},
}


def number_condition(
    vendor: str,
    *,
    case_id: int,
    name: str,
    comparisons: list[tuple[str, float]],
    id_column: str = '"search_trace"."id"',
) -> tuple[str, list]:
    """An SQL condition on a ``search_trace`` row: its numeric property ``name`` holds every one of
    ``comparisons`` (``(">=", 4000)``; operators ``=``, ``<``, ``<=``, ``>``, ``>=``), looked up in the
    number index."""
    if not comparisons or any(op not in ("=", "<", "<=", ">", ">=") for op, _ in comparisons):
        raise ValueError(f"not comparisons: {comparisons!r}")
    # PostgreSQL would compare numeric with a float parameter as floats, past the index.
    cast = "::numeric" if vendor == "postgresql" else ""
    compared = " AND ".join(f"value {op} %s{cast}" for op, _ in comparisons)
    return (
        f"{id_column} IN (SELECT trace_id FROM {NUMBER_TABLE} WHERE case_id = %s AND name = %s AND {compared})",  # noqa: S608
        [case_id, name, *(value for _, value in comparisons)],
    )


# -- matching -------------------------------------------------------------------------------------


def _fts5_phrase(tokens: list[str], *, prefix: bool) -> str:
    # Tokens are letters and digits only, so a double-quoted FTS5 string needs no escaping.
    return '"' + " ".join(tokens) + '"' + (" *" if prefix else "")


def _tsquery_phrase(tokens: list[str], *, prefix: bool) -> str:
    parts = [f"'{token}'" for token in tokens]
    if prefix:
        parts[-1] += ":*"
    return " <-> ".join(parts)


def fts5_expression(groups: list[list[tuple[list[str], bool]]]) -> str:
    """An FTS5 MATCH expression: every group holds, a group when any of its phrases does."""
    if not groups or not all(group and all(tokens for tokens, _ in group) for group in groups):
        raise ValueError("a full-text match needs at least one word in every group")
    return " AND ".join(
        "(" + " OR ".join(_fts5_phrase(tokens, prefix=prefix) for tokens, prefix in group) + ")" for group in groups
    )


def match_condition(
    vendor: str, phrases: list[tuple[list[str], bool]], *, id_column: str = '"search_trace"."id"'
) -> tuple[str, list[str]]:
    """An SQL condition on a ``search_trace`` row, whose id is ``id_column`` in the query (the table
    may have an alias): it holds any of ``phrases`` (``(tokens, prefix)`` each: the tokens in a row, the
    last as a prefix), in one look-up of the index for them all.

    On PostgreSQL the condition is on the row's own tsvector, so the planner reads the GIN index and the
    trace rows once, together with the query's other conditions, rather than joining the table to itself.
    """
    if not phrases or not all(tokens for tokens, _ in phrases):
        raise ValueError("a full-text match needs at least one word")
    if vendor == "sqlite":
        words = " OR ".join(_fts5_phrase(tokens, prefix=prefix) for tokens, prefix in phrases)
        return f"{id_column} IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)", [words]  # noqa: S608
    if vendor == "postgresql":
        query = " | ".join(f"({_tsquery_phrase(tokens, prefix=prefix)})" for tokens, prefix in phrases)
        table = id_column.rsplit(".", 1)[0]
        return f"{table}.\"search_vector\" @@ to_tsquery('simple', %s)", [query]
    raise RuntimeError(f"no full-text index for database {vendor}")
