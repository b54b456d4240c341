"""Extraction runs and the traces they produce (DESIGN.md §6, Hansken's trace model).

A trace is keyed by its uid ``<evidence-uuid>:0-3-1-7``; writing the same trace again (a retried or
redelivered task) updates it in place, so extraction is safe to repeat and never duplicates.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Func, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Length, Lower, Replace, StrIndex, Substr
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExtractionRun(models.Model):
    evidence = models.ForeignKey("evidence.Evidence", on_delete=models.PROTECT, related_name="extraction_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    priority = models.PositiveSmallIntegerField(default=5)
    priority_reason = models.CharField(max_length=200, blank=True)
    # One run may be spread over several tasks, each walking a share of every file system.
    shards = models.PositiveSmallIntegerField(default=1)
    shards_finished = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.QUEUED)
    tools = models.JSONField(default=dict, blank=True, help_text="Tool name → version")
    traces = models.PositiveIntegerField(default=0)
    files = models.PositiveIntegerField(default=0)
    bytes_processed = models.BigIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Traces that carry a tool error")
    failure = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    first_trace_at = models.DateTimeField(null=True, blank=True)
    # The lease of a running run (issue #17): its workers renew it as they go (search.services.RunLease);
    # a run whose lease ran out has lost its worker or its database and is failed by the reaper.
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker that last renewed")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"extraction {self.pk} of {self.evidence_id} ({self.state})"

    @property
    def rate_bytes_per_second(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        seconds = max((end - self.started_at).total_seconds(), 0.001)
        return self.bytes_processed / seconds

    @property
    def seconds_left(self) -> float | None:
        rate = self.rate_bytes_per_second
        size = self.evidence.size or 0
        if self.state != RunState.RUNNING or not rate or not size:
            return None
        return max(size - self.bytes_processed, 0) / rate


def _extension_expression():
    """``jpg`` of ``Photo.JPG``, as Elasticsearch's documents say (``extension_of``), in SQL both databases run.

    ``rtrim(name, <name without dots>)`` strips every character after the last dot, so its length is
    the length of the stem and the dot; there is an extension when the stem is not empty and the rest
    is 1 to 16 characters with no space.
    """
    stem_and_dot = Length(Func(F("name"), Replace(F("name"), Value("."), Value("")), function="RTRIM"))
    extension = Substr(F("name"), stem_and_dot + 1)
    extension_length = Length(F("name")) - stem_and_dot
    return Case(
        When(
            GreaterThan(stem_and_dot, 1)
            & GreaterThanOrEqual(extension_length, 1)
            & LessThanOrEqual(extension_length, 16)
            & Exact(StrIndex(extension, Value(" ")), 0),
            then=Lower(extension),
        ),
        default=Value(""),
        output_field=models.CharField(),
    )


class _PropertyExpression(Func):
    """An expression over one property of the trace (``key``), for a column the database keeps."""

    def __init__(self, key: str, **extra):
        self.key = key
        super().__init__(F("properties"), **extra)

    def deconstruct(self):
        path, _, kwargs = super().deconstruct()
        return path, (self.key,), kwargs


class JsonNumber(_PropertyExpression):
    """A property's value when it is a JSON number, else NULL: a cast that never fails on a trace whose
    tool wrote something else, so the trace is still stored (and found by its other properties)."""

    output_field = models.FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.key}"'
        sql = f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') THEN json_extract({column}, %s) END"
        return sql, [*params, path, *params, path]

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' THEN ({column} ->> %s)::double precision END"
        return sql, [*params, self.key, *params, self.key]


# Properties that searches compare, sort and draw timelines by most, kept by the database in indexed
# columns: ``file.size>100000000`` reads an index instead of every trace's JSON. Dates keep their first
# 19 characters (to the second, in UTC), as every date comparison does.
INDEXED_NUMBERS = {"file.size": "file_size"}
INDEXED_DATES = {"file.modifiedOn": "modified_on", "email.sentOn": "sent_on"}
DATE_COLUMN_WIDTH = 19


class IsoDatePrefix(_PropertyExpression):
    """The first ``DATE_COLUMN_WIDTH`` characters of a property that begins with an ISO date
    (``2019-03-07…``), else NULL: a number or a word a tool wrote has no place among dates."""

    output_field = models.CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        value = f"json_extract({column}, %s)"
        sql = (
            f"CASE WHEN json_type({column}, %s) = 'text' AND {value} GLOB %s "
            f"THEN substr({value}, 1, {DATE_COLUMN_WIDTH}) END"
        )
        path = f'$."{self.key}"'
        return sql, [*params, path, *params, path, _ISO_DATE_GLOB, *params, path]

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        value = f"({column} ->> %s)"
        sql = f"CASE WHEN {value} ~ %s THEN substr({value}, 1, {DATE_COLUMN_WIDTH}) END"
        return sql, [*params, self.key, _ISO_DATE_REGEX, *params, self.key]


_ISO_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_ISO_DATE_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _date_column(key: str) -> models.GeneratedField:
    return models.GeneratedField(
        expression=IsoDatePrefix(key),
        output_field=models.CharField(max_length=DATE_COLUMN_WIDTH, null=True),
        db_persist=True,
    )


# The columns of a trace a search's hits table holds (search/backends/sql/planner.py), included in the
# indexes a search's conditions look up, so that PostgreSQL finds them there without reading the trace.
HIT_COLUMNS = ["id", "evidence", "types", "extension", "mime_type", "deleted"]


def hit_columns_but(key: str) -> list[str]:
    """:data:`HIT_COLUMNS` but the index's own key column."""
    return [column for column in HIT_COLUMNS if column != key]


class Trace(models.Model):
    uid = models.CharField(max_length=400, unique=True)
    parent_uid = models.CharField(max_length=400, blank=True, db_index=True)
    evidence = models.ForeignKey("evidence.Evidence", on_delete=models.PROTECT, related_name="traces")
    # No index of its own: every (case, …) index below begins with it.
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="traces", db_index=False)
    run = models.ForeignKey(ExtractionRun, on_delete=models.PROTECT, related_name="+")
    ordinal = models.PositiveIntegerField(help_text="Position in the walk's stable order")
    name = models.CharField(max_length=1000)
    path = models.TextField()
    types = models.JSONField(default=list)
    properties = models.JSONField(default=dict)
    streams = models.JSONField(default=list)
    tools = models.JSONField(default=dict)
    errors = models.JSONField(default=list)
    deleted = models.BooleanField(default=False)
    has_errors = models.BooleanField(default=False)
    text = models.TextField(blank=True, help_text="Bounded full text, for search")
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    extracted_at = models.DateTimeField(default=timezone.now)
    # Kept by the database from the columns above, for facets that group millions of traces by an index.
    extension = models.GeneratedField(
        expression=_extension_expression(), output_field=models.CharField(max_length=16), db_persist=True
    )
    mime_type = models.GeneratedField(
        expression=Coalesce(
            KeyTextTransform("file.mimeType", "properties"), Value(""), output_field=models.CharField()
        ),
        output_field=models.CharField(max_length=200),
        db_persist=True,
    )
    file_size = models.GeneratedField(
        expression=JsonNumber("file.size"), output_field=models.FloatField(null=True), db_persist=True
    )
    modified_on = _date_column("file.modifiedOn")
    sent_on = _date_column("email.sentOn")

    class Meta:
        ordering = ["evidence", "ordinal"]
        indexes = [
            models.Index(fields=["case", "evidence", "ordinal"]),
            models.Index(fields=["case", "extension"]),
            models.Index(fields=["case", "mime_type"]),
            # The indexes of types, deleted, sizes and dates also hold (PostgreSQL: INCLUDE) the columns a
            # search's hits table takes (search/backends/sql/planner.py): PostgreSQL then fills it from the
            # index alone, where reading ten thousand trace rows meant one page of the table each (100 times
            # as long at a million traces, docs/benchmarks.md, branch pg1m). SQLite ignores INCLUDE.
            models.Index(
                fields=["case", "deleted"], include=hit_columns_but("deleted"), name="search_trace_deleted_hits"
            ),
            # Narrow entries to scan for type: without reading whole trace rows.
            models.Index(fields=["case", "types"], include=hit_columns_but("types"), name="search_trace_types_hits"),
            models.Index(fields=["case", "file_size"], include=HIT_COLUMNS, name="search_trace_file_size_hits"),
            models.Index(fields=["case", "modified_on"], include=HIT_COLUMNS, name="search_trace_modified_on_hits"),
            # Only e-mails have one: a partial index holds a tenth of the traces, and its size tells
            # SQLite's planner (which keeps no histograms) that ``email.sentOn>=… type:email`` is better
            # answered here than by reading every e-mail. A comparison on the column implies NOT NULL.
            models.Index(
                fields=["case", "sent_on"],
                condition=Q(sent_on__isnull=False),
                include=HIT_COLUMNS,
                name="search_trace_sent_on_hits",
            ),
        ]

    def __str__(self) -> str:
        return self.uid


PROPERTY_NAME_MAX_LENGTH = 200


class CasePropertyName(models.Model):
    """A property name some trace of the case carries, recorded as extraction commits the trace: the
    search box completes names from here rather than reading the properties of millions of traces."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=PROPERTY_NAME_MAX_LENGTH)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["case", "name"], name="search_casepropertyname_unique")]

    def __str__(self) -> str:
        return self.name


# Collaboration (DESIGN.md §4): tags and notes on traces, saved searches per case, all visible to the case team.

TAG_MAX_LENGTH = 64


class TraceTag(models.Model):
    """One tag on one trace. Names are lower-case, so ``tag:Relevant`` and ``tag:relevant`` are the same."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="tags")
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=TAG_MAX_LENGTH)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["trace", "name"], name="search_tracetag_unique_name")]
        indexes = [models.Index(fields=["case", "name"])]

    def __str__(self) -> str:
        return f"{self.name} on {self.trace_id}"


class TraceNote(models.Model):
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="notes")
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(max_length=10_000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note {self.pk} on {self.trace_id}"


class SavedSearch(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="saved_searches")
    name = models.CharField(max_length=100)
    query = models.TextField(max_length=4096)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["case", "name"], name="search_savedsearch_unique_name")]

    def __str__(self) -> str:
        return self.name


class TraceHashMatch(models.Model):
    """A trace whose content a hash set of its organisation holds (issue #20 item 6): written as extraction
    publishes the trace, or by the task that marks the traces already extracted when a set is imported.
    ``kind`` is the set's (known-good or known-bad), kept here so ``knownGood:true`` reads one table."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="hash_matches")
    hash_set = models.ForeignKey("hashsets.HashSet", on_delete=models.CASCADE, related_name="+", db_index=False)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "hash_set"], name="search_tracehashmatch_unique"),
        ]
        indexes = [
            models.Index(fields=["case", "kind"], name="search_hashmatch_case_kind"),
            models.Index(fields=["hash_set", "case"], name="search_hashmatch_set_case"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id} in hash set {self.hash_set_id}"
