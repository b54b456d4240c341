"""The publisher: trace rows of an extraction run written to the database in small batches.

Each batch is its own transaction (every ``BATCH_TRACES`` rows or ``BATCH_SECONDS``), so traces are
searchable while the run goes on. Rows are upserted by uid: a retried or redelivered run rewrites the same
rows and never duplicates them. On PostgreSQL a batch of new uids is copied straight into the table (one
``COPY``, with the vectors and number rows computed here), and only a batch that meets a uid already there
is upserted. With each batch the publisher keeps the run's counters current, records the
case's new property names (for completion) and, with a search backend that indexes separately
(Elasticsearch), hands it the batch once committed.
"""

from __future__ import annotations

import time
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from search.backends.base import get_search_backend, traces_changed_on_commit
from search.backends.sql import fulltext, schema
from search.hashset_marks import HashSetMarker
from search.models import PROPERTY_NAME_MAX_LENGTH, CasePropertyName, ExtractionRun, Trace

# A commit costs about as much as writing a few hundred traces; BATCH_SECONDS still shows them promptly.
BATCH_TRACES = 2000
BATCH_SECONDS = 2.0
# PostgreSQL: the temporary table a batch is copied into (one per connection, emptied at each commit).
STAGING_TABLE = "custodia_publish_batch"


def _trace_field(name: str) -> Field[Any, Any]:
    """The trace's own field ``name``, a column of ``search_trace`` (a foreign key's is the id)."""
    # get_field also answers reverse relations and generic keys, which have no column: no name here is one.
    return cast("Field[Any, Any]", Trace._meta.get_field(name))


class Publisher:
    """Collects trace rows and commits them in small batches, keeping the run's counters current.

    A batch is one ``INSERT … ON CONFLICT (uid) DO UPDATE`` run with ``executemany``: the upsert
    ``bulk_create(update_conflicts=True)`` writes, without a model instance and a compiled statement per
    row. The first batch is committed as soon as it holds ``FIRST_BATCH_TRACES``: the run shows traces
    at once, and later batches are larger.

    One publisher per share (``shard``) of a run: :meth:`add` each row (the dicts
    :mod:`search.extraction.pipeline` makes), then :meth:`flush` what is left when the walk ends.
    """

    UPDATE_FIELDS = [
        "parent_uid",
        "run",
        "ordinal",
        "name",
        "path",
        "types",
        "properties",
        "streams",
        "tools",
        "errors",
        "deleted",
        "has_errors",
        "text",
        "sha256",
        "extracted_at",
    ]
    INSERT_FIELDS = ["uid", "evidence", "case", *UPDATE_FIELDS]
    _JSON_FIELDS = frozenset({"types", "properties", "streams", "tools", "errors"})
    FIRST_BATCH_TRACES = 50

    def __init__(self, run: ExtractionRun, *, shard: int = 0):
        self.run = run
        self.shard = shard
        self.rows: list[tuple] = []
        self.files = self.bytes = self.errors = 0
        self.flushed = {"traces": 0, "files": 0, "bytes": 0, "errors": 0}
        self.count = 0
        self.last_flush = time.monotonic()
        self._batch_size = self.FIRST_BATCH_TRACES
        self._evidence_id = run.evidence_id
        self._case_id = run.evidence.case_id
        self._sql: str | None = None
        self._words_in_python = connection.vendor == "postgresql"
        self._property_names: set[str] = set()
        self._staging_ready = False
        # PostgreSQL: rows are copied straight into the table until a batch meets a uid already there (a
        # retried or redelivered run); from then on this publisher upserts (_upsert_copied).
        self._copy_straight = connection.vendor == "postgresql"
        # The organisation's hash sets, looked up once a batch (nothing to do when it has none).
        self._marker = HashSetMarker.for_organization(organization_id=run.evidence.case.organization_id)

    @property
    def ordinal(self) -> int:
        # Interleaved by shard, so that every share of a run has its own, stable positions.
        return self.count * self.run.shards + self.shard

    def add(self, row: dict) -> None:
        """Queue one trace row; commit the batch when it is full or ``BATCH_SECONDS`` old."""
        self.queue(row)
        if len(self.rows) >= self._batch_size or time.monotonic() - self.last_flush >= BATCH_SECONDS:
            self.flush()

    def queue(self, row: dict) -> None:
        """Queue one trace row and count it, without committing (:meth:`add` commits when the batch is due;
        bench/search.py queues rows to write them its own way, as a floor)."""
        self.count += 1
        streams = row["streams"]
        raw = next((s for s in streams if s.get("name") == "raw"), None)
        if "file" in row["types"]:
            self.files += 1
            self.bytes += raw["size"] if raw else 0
        has_errors = bool(row["errors"])
        self.errors += has_errors
        # In the order of INSERT_FIELDS; JSON and the time are adapted at flush, for the whole batch.
        self.rows.append(
            (
                row["uid"],
                self._evidence_id,
                self._case_id,
                row["parent_uid"],
                self.run.pk,
                self.ordinal,
                row["name"],
                row["path"],
                row["types"],
                row["properties"],
                streams,
                row["tools"],
                row["errors"],
                row["deleted"],
                has_errors,
                row["text"],
                (raw or {}).get("sha256") or "",
            )
        )

    def upsert_sql(self) -> str:
        """SQLite: the batch's upsert, ``INSERT … ON CONFLICT (uid) DO UPDATE``, one row of :meth:`parameters`
        each (PostgreSQL copies the batch instead, :meth:`_upsert_copied`)."""
        if self._sql is None:
            quote = connection.ops.quote_name
            columns = [_trace_field(name).column for name in self.INSERT_FIELDS]
            updates = [_trace_field(name).column for name in self.UPDATE_FIELDS]
            # Only the model's own table and column names go into the statement; values are parameters.
            table = quote(Trace._meta.db_table)
            marks = ["%s"] * len(columns)
            names, values = ", ".join(quote(c) for c in columns), ", ".join(marks)
            uid = quote(Trace._meta.get_field("uid").column)
            assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in updates)
            self._sql = (
                f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({uid}) DO UPDATE SET {assignments}"  # noqa: S608
            )
        return self._sql

    def _upsert_copied(self) -> None:
        """PostgreSQL: the batch goes to the server by ``COPY`` into a temporary table, then into
        ``search_trace`` by one ``INSERT … SELECT … ON CONFLICT (uid) DO UPDATE``, whose ``RETURNING`` feeds
        the number index in the same statement (schema.POSTGRES_NUMBERS_OF_INSERTED) while the per-row
        trigger stands aside (schema.NUMBERS_DEFERRED_SETTING, for this transaction only). One statement a
        batch instead of one a trace: the server plans and runs it once, and no trigger runs per row."""
        quote = connection.ops.quote_name
        columns = [_trace_field(name).column for name in self.INSERT_FIELDS]
        updates = [*(_trace_field(name).column for name in self.UPDATE_FIELDS), "search_vector"]
        names = ", ".join(quote(c) for c in columns)
        staging = STAGING_TABLE
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            if not self._staging_ready:
                # The trace table's own column types, a words column and the position in the batch; emptied
                # at every commit, so it never holds a row of another batch.
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "  # noqa: S608
                    f"SELECT {names}, ''::text AS words, 0 AS position FROM {quote(Trace._meta.db_table)} WITH NO DATA"
                )
                self._staging_ready = True
            with cursor.copy(f"COPY {staging} ({names}, words, position) FROM STDIN") as copy:
                for position, row in enumerate(self.parameters()):
                    copy.write_row((*row, position))
            assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in updates)
            # The last of several rows of one uid wins, as one upsert after the other would have it; the rest
            # in the order they came, which is the order of their ids.
            cursor.execute("SELECT set_config(%s, 'on', true)", [schema.NUMBERS_DEFERRED_SETTING])
            cursor.execute(
                f"WITH written AS (INSERT INTO {quote(Trace._meta.db_table)} ({names}, search_vector) "  # noqa: S608
                f"SELECT {names}, to_tsvector('simple', words) FROM ("
                f"SELECT DISTINCT ON (uid) * FROM {staging} ORDER BY uid, position DESC) AS latest ORDER BY position "
                f"ON CONFLICT ({quote('uid')}) DO UPDATE SET {assignments} "
                "RETURNING id, case_id, properties, xmax::text = '0' AS inserted) "
                f"{schema.POSTGRES_NUMBERS_OF_INSERTED}"
            )
            cursor.execute("SELECT set_config(%s, 'off', true)", [schema.NUMBERS_DEFERRED_SETTING])
            cursor.execute(f"DELETE FROM {staging}")  # noqa: S608 (our own table) — also inside an outer transaction

    def _copy_new(self) -> None:
        """PostgreSQL, a batch of new traces: ``COPY`` straight into ``search_trace``, with ids drawn from its
        sequence first, each row's vector as text (fulltext.document_tsvector: the server reads it without
        parsing words) and the number index's rows by a second ``COPY`` (the per-row trigger stands aside,
        schema.NUMBERS_DEFERRED_SETTING). No staging table, no second pass over the rows, and the server
        writes the rows while the client still computes the next ones. A uid already in the table (or twice
        in the batch) fails the copy with a unique violation: the caller then upserts the batch instead."""
        quote = connection.ops.quote_name
        table = quote(Trace._meta.db_table)
        names = ", ".join(quote(_trace_field(name).column) for name in self.INSERT_FIELDS)
        in_columns = set(schema.NUMBERS_IN_COLUMNS)
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [Trace._meta.db_table, len(self.rows)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT set_config(%s, 'on', true)", [schema.NUMBERS_DEFERRED_SETTING])
            numbers = []
            with cursor.copy(f"COPY {table} (id, {names}, search_vector) FROM STDIN") as copy:
                document_tsvector = fulltext.document_tsvector
                for trace_id, values, row in zip(ids, self.parameters(words=False), self.rows, strict=True):
                    properties = row[9]
                    vector = document_tsvector(
                        name=row[6], path=row[7], text=row[15], properties=properties, streams=row[10]
                    )
                    copy.write_row((trace_id, *values, vector))
                    if isinstance(properties, dict):
                        numbers += [
                            (trace_id, self._case_id, key, value)
                            for key, value in properties.items()
                            if isinstance(value, int | float) and not isinstance(value, bool) and key not in in_columns
                        ]
            if numbers:
                with cursor.copy(f"COPY {schema.NUMBER_TABLE} (trace_id, case_id, name, value) FROM STDIN") as copy:
                    for number in numbers:
                        copy.write_row(number)
            cursor.execute("SELECT set_config(%s, 'off', true)", [schema.NUMBERS_DEFERRED_SETTING])

    def parameters(self, *, words: bool | None = None) -> list[tuple]:
        """The batch's rows as the database takes them (JSON adapted, keys prepared), in the order of
        :data:`INSERT_FIELDS`, and on PostgreSQL their words (fulltext.document_words) last (``words``
        says otherwise: False leaves them out)."""
        adapt_json = connection.ops.adapt_json_value
        extracted_at = connection.ops.adapt_datetimefield_value(timezone.now())
        # The same for every row: the keys as their fields give them to the database (a UUID as text…).
        keys = tuple(
            _trace_field(name).get_db_prep_save(value, connection)
            for name, value in (("evidence", self._evidence_id), ("case", self._case_id))
        )
        run_key = Trace._meta.get_field("run").get_db_prep_save(self.run.pk, connection)
        rows = [
            (
                row[0],
                *keys,
                row[3],
                run_key,
                *row[5:8],
                adapt_json(row[8], None),
                adapt_json(row[9], None),
                adapt_json(row[10], None),
                adapt_json(row[11], None),
                adapt_json(row[12], None),
                *row[13:],
                extracted_at,
            )
            for row in self.rows
        ]
        if self._words_in_python if words is None else words:
            document_words = fulltext.document_words
            rows = [
                (*values, document_words(name=row[6], path=row[7], text=row[15], properties=row[9], streams=row[10]))
                for values, row in zip(rows, self.rows, strict=True)
            ]
        return rows

    def flush(self) -> None:
        """Commit the queued rows with the run's counters (nothing to do when none is queued)."""
        if not self.rows:
            return
        with transaction.atomic():
            with connection.cursor() as cursor:
                # On SQLite the new rows' words go into the index in one statement, not a trigger a row.
                deferred = fulltext.defer_words(cursor)
                if self._copy_straight:
                    try:
                        with transaction.atomic():
                            self._copy_new()
                    except IntegrityError:
                        self._copy_straight = False
                        self._upsert_copied()
                elif connection.vendor == "postgresql":
                    self._upsert_copied()
                else:
                    cursor.executemany(self.upsert_sql(), self.parameters())
                fulltext.index_deferred_words(cursor, after_id=deferred)
            if self._marker.hash_set_ids:
                self._marker.mark_batch(case_id=self._case_id, rows=[(row[0], row[10]) for row in self.rows])
            # Tools write a few hundred names in all: after the first batches, nothing is new.
            names = {name for row in self.rows for name in row[9]} - self._property_names
            if names:
                property_names_record(case_id=self._case_id, names=names)
                self._property_names |= names
            if get_search_backend().indexes_separately:
                # Elasticsearch learns of the batch once it has committed (the database stays the record).
                uids = [row[0] for row in self.rows]
                traces_changed_on_commit(
                    trace_ids=list(Trace.objects.filter(uid__in=uids).values_list("pk", flat=True))
                )
            now = {"traces": self.count, "files": self.files, "bytes": self.bytes, "errors": self.errors}
            delta = {key: now[key] - self.flushed[key] for key in now}
            ExtractionRun.objects.filter(pk=self.run.pk).update(
                traces=F("traces") + delta["traces"],
                files=F("files") + delta["files"],
                bytes_processed=F("bytes_processed") + delta["bytes"],
                errors=F("errors") + delta["errors"],
                first_trace_at=Coalesce(F("first_trace_at"), Value(timezone.now())),
            )
            self.flushed = now
        self.run.first_trace_at = self.run.first_trace_at or timezone.now()
        self.rows = []
        self._batch_size = BATCH_TRACES
        self.last_flush = time.monotonic()


def property_names_record(*, case_id: int, names: set[str]) -> None:
    """Remember that traces of the case carry these property names (for completion)."""
    CasePropertyName.objects.bulk_create(
        [CasePropertyName(case_id=case_id, name=name) for name in names if len(name) <= PROPERTY_NAME_MAX_LENGTH],
        ignore_conflicts=True,
    )
