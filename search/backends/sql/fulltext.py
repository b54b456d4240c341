"""Words and numbers of traces as the database indexes them (search/backends/sql/schema.py), from Python.

Both databases index the same words, split the same way: at every character that is not a letter or a
digit, lower-cased. So ``passwords.txt`` is the words ``passwords`` and ``txt`` on both (PostgreSQL's own
parser would keep it as one "file" word), and a query term is split by :func:`words` with the same rule
before it reaches SQL. The query side: :func:`match_condition` (any of some phrases, one look-up of the
word index) and :func:`number_condition` (a numeric property compared, through the number index).

The writer side: on PostgreSQL the extraction publisher computes each row's words in Python
(:func:`document_words`, with the same rule as the trigger) and writes the vector with the row, which the
trigger then keeps. On SQLite the extraction publisher indexes its batches itself, in one statement a batch
(about 1.7 times as fast as a trigger a row): inside its transaction it marks the ids it is about to insert
as its own (:func:`defer_words`), and the triggers leave those rows to it (:func:`index_deferred_words`).
No other connection sees the mark, so every other writer is still indexed by the triggers.
"""

from __future__ import annotations

import re
from collections import Counter

from django.db.backends.utils import CursorWrapper

from search.backends.sql.schema import (
    DEFERRAL_TABLE,
    FTS_TABLE,
    NUMBER_TABLE,
    SQLITE_NUMBERS_OF_TRACES,
    SQLITE_WORDS_OF_TRACES,
)

# Letters and digits, as Python's \w without the underscore; SQLite's unicode61 tokenizer and the
# PostgreSQL trigger's expression split at the same characters for the scripts detectives search in.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The indexed words of ``text``, lower-cased, in order."""
    return _WORD.findall(text.lower())


# The text stream is indexed up to this many characters: a PostgreSQL tsvector holds at most 1 MiB.
TEXT_INDEXED_CHARS = 200_000


_HASH_KEYS = ("md5", "sha1", "sha256")


def _document_text(*, name: str, path: str, text: str, properties: dict, streams: list | None) -> str:
    strings = [value for value in properties.values() if isinstance(value, str)] if isinstance(properties, dict) else []
    hashes = [
        stream[key]
        for stream in (streams if isinstance(streams, list) else ())
        if isinstance(stream, dict)
        for key in _HASH_KEYS
        if isinstance(stream.get(key), str)
    ]
    # A missing value is the database's to refuse (NOT NULL), not this function's.
    return " ".join([name or "", path or "", (text or "")[:TEXT_INDEXED_CHARS], *strings, *hashes])


def document_words(*, name: str, path: str, text: str, properties: dict, streams: list | None = None) -> str:
    """The words the index holds for a trace, as the triggers compute them, separated by spaces: for a
    writer of many traces that computes them in Python, where PostgreSQL's regular expression over every
    text costs more than the rest of writing the row."""
    return " ".join(words(_document_text(name=name, path=path, text=text, properties=properties, streams=streams)))


# PostgreSQL's parser reads digits, ``e`` and digits at the start of a word as a number in scientific
# notation and starts a new word after it: ``3e7abc`` is the two words ``3e7`` and ``abc`` to to_tsvector.
# So the words of ASCII text as to_tsvector('simple', …) finds them in document_words: such a head first.
_ASCII_TSVECTOR_WORD = re.compile(r"(?<![a-z0-9])[0-9]+e[0-9]+(?=[a-z])|[a-z0-9]+")
# to_tsvector leaves out words of this many bytes or more (with a notice), and does not count their position.
_TSVECTOR_WORD_LIMIT = 2047
# Positions past this are counted as this one; a word keeps at most this many positions (to_tsvector's own).
_TSVECTOR_LAST_POSITION = 16383
_TSVECTOR_POSITIONS_PER_WORD = 255


def document_tsvector(*, name: str, path: str, text: str, properties: dict, streams: list | None = None) -> str | None:
    """PostgreSQL: ``to_tsvector('simple', document_words(…))`` in its text form (``abc:1 def:2 abc:3``),
    which the server reads without its parser and dictionary: the same vector, for a writer that copies rows
    straight into the table. None for a trace with any character that is not ASCII: how the server's parser
    splits other scripts depends on its locale, so it computes those itself (the trigger does, for a row
    written without a vector)."""
    document = _document_text(name=name, path=path, text=text, properties=properties, streams=streams).lower()
    if not document.isascii():
        return None
    tokens = _ASCII_TSVECTOR_WORD.findall(document)
    if len(tokens) > _TSVECTOR_POSITIONS_PER_WORD or max(map(len, tokens), default=0) >= _TSVECTOR_WORD_LIMIT:
        return _long_tsvector(tokens)
    # One C-level pass for the common document (a few hundred words at most): no Python code per word.
    return " ".join(map("{}:{}".format, tokens, range(1, len(tokens) + 1)))


def _long_tsvector(tokens: list[str]) -> str:
    """:func:`document_tsvector` of a long document: words too long to index, positions past the last and
    positions of a word past its count are left out as to_tsvector leaves them out."""
    if (
        len(tokens) <= _TSVECTOR_LAST_POSITION
        and max(Counter(tokens).values()) <= _TSVECTOR_POSITIONS_PER_WORD
        and max(map(len, tokens)) < _TSVECTOR_WORD_LIMIT
    ):
        return " ".join(map("{}:{}".format, tokens, range(1, len(tokens) + 1)))
    entries = []
    counts: dict[str, int] = {}
    position = 0
    for token in tokens:
        if len(token) >= _TSVECTOR_WORD_LIMIT:
            continue
        position += 1
        counts[token] = seen = counts.get(token, 0) + 1
        if seen <= _TSVECTOR_POSITIONS_PER_WORD:
            entries.append(f"{token}:{min(position, _TSVECTOR_LAST_POSITION)}")
    return " ".join(entries)


def defer_words(cursor: CursorWrapper) -> int | None:
    """SQLite, inside a transaction: traces inserted from now on in it are indexed by
    :func:`index_deferred_words` (before the transaction ends), not by the triggers. Returns the mark;
    None on PostgreSQL, whose trigger computes a row's words as it is written."""
    if cursor.db.vendor != "sqlite":
        return None
    cursor.execute("SELECT coalesce(max(id), 0) FROM search_trace")
    after_id = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO {DEFERRAL_TABLE} (after_id) VALUES (%s)", [after_id])  # noqa: S608
    return after_id


def index_deferred_words(cursor: CursorWrapper, *, after_id: int | None) -> None:
    """Index the words of the traces inserted since :func:`defer_words`, in one statement, and end the
    deferral: a row inserted and changed again in the meantime is indexed as it is now."""
    if after_id is None:
        return
    words_of_new_rows = (
        f"INSERT INTO {FTS_TABLE}(rowid, words) SELECT id, {SQLITE_WORDS_OF_TRACES} FROM search_trace WHERE id > %s"  # noqa: S608
    )
    cursor.execute(words_of_new_rows, [after_id])
    numbers_of_new_rows = f"INSERT INTO {NUMBER_TABLE} (trace_id, case_id, name, value) {SQLITE_NUMBERS_OF_TRACES}"
    cursor.execute(f"{numbers_of_new_rows} AND search_trace.id > %s", [after_id])
    cursor.execute(f"DELETE FROM {DEFERRAL_TABLE}")  # noqa: S608


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
