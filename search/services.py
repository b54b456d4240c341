"""Writes of the search app: extraction runs and the traces they publish.

An extraction reads sealed evidence only through the container's file object (no decrypted copy), walks it
with the storage-media walker, runs the content tools on the files they understand, and publishes traces in
small batches (every ``BATCH_TRACES`` traces or ``BATCH_SECONDS``), each batch its own transaction, so they
are searchable while the run goes on. Traces are upserted by uid: a retried or redelivered run rewrites the
same rows and never duplicates them.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import Conflict
from evidence.container.reader import open_container
from evidence.intake.formats import ImageFormat, slice_segments
from evidence.models import Evidence, EvidenceState
from evidence.selectors import evidence_get
from evidence.services.escrow import secret_values_for_extraction
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store
from search.backends.base import get_search_backend, traces_changed_on_commit
from search.backends.sql import fulltext
from search.extraction import source as media_source
from search.extraction.tools import HEAD_SIZE, TOOLS, accepting_tools, analyse, tool_versions
from search.extraction.tools.base import Limits
from search.extraction.traces import DataStream, TraceRecord, child_uid
from search.extraction.walker import StreamDigest, WalkOptions, walk_image
from search.models import PROPERTY_NAME_MAX_LENGTH, CasePropertyName, ExtractionRun, RunState, Trace
from search.priority import extraction_priority

logger = logging.getLogger(__name__)

# A commit costs about as much as writing a few hundred traces; BATCH_SECONDS still shows them promptly.
BATCH_TRACES = 2000
BATCH_SECONDS = 2.0
# Files larger than this are hashed and typed by the walker, but not opened by the content tools.
TOOL_MAX_BYTES = 256 * 1024 * 1024
TEXT_MAX_CHARS = 1_000_000

# Escrowed secret kinds (evidence.models.SecretKind) → the walker's credential names.
SECRET_CREDENTIALS = {
    "bitlocker_password": "password",
    "bitlocker_recovery_password": "recovery_password",
    "bitlocker_startup_key": "startup_key",
    "luks_passphrase": "passphrase",
}


def extraction_start(*, actor: User | None, evidence: Evidence) -> ExtractionRun:
    """Queue an extraction run (``actor`` None: the automatic run after sealing)."""
    from search.tasks import run_extraction

    with transaction.atomic():
        if actor is not None:
            evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.EXTRACT_EVIDENCE)
        evidence = Evidence.objects.select_for_update().select_related("case").get(pk=evidence.pk)
        if not evidence.is_sealed:
            raise Conflict("Only sealed evidence can be extracted.", code="not_sealed")
        if ExtractionRun.objects.filter(evidence=evidence, state__in=[RunState.QUEUED, RunState.RUNNING]).exists():
            raise Conflict("An extraction of this evidence is already queued or running.", code="already_running")
        priority, reason = extraction_priority(case=evidence.case, evidence=evidence, requested=actor is not None)
        shards = settings.CUSTODIA_EXTRACTION_SHARDS
        run = ExtractionRun.objects.create(
            evidence=evidence, started_by=actor, priority=priority, priority_reason=reason, shards=shards
        )
        audit_record(
            action="evidence.extract.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"run": run.pk, "priority": priority, "priority_reason": reason, "shards": shards},
        )

        def enqueue() -> None:
            for shard in range(shards):
                run_extraction.apply_async(args=[run.pk, shard], priority=priority)

        transaction.on_commit(enqueue)
    return run


def _secrets_for(evidence: Evidence) -> list[dict]:
    secrets = []
    for secret in secret_values_for_extraction(evidence=evidence):
        credential = SECRET_CREDENTIALS.get(secret["kind"])
        if credential:
            value = secret["value"]
            if credential != "startup_key":
                value = value.decode("utf-8", errors="replace")
            secrets.append({"kind": credential, "value": value})
    return secrets


def _walk_options(evidence: Evidence, reader, *, shard: tuple[int, int] | None = None) -> tuple[WalkOptions, dict]:
    """Name the evidence file as acquired (E01 segments, VMDK extents are found by name)."""
    names = [name.strip() for name in evidence.original_name.split(",") if name.strip()]
    segments = (evidence.format_details or {}).get("segments") or []
    if len(segments) > 1:
        slices = slice_segments(stream=reader, sizes=[s["size"] for s in segments], names=[s["name"] for s in segments])
        files = {s["name"]: piece for s, piece in zip(segments, slices, strict=True)}
        first = segments[0]["name"]
        related = {name: piece for name, piece in files.items() if name != first}
        return WalkOptions(file_name=first, related_files=related, shard=shard, keep_content=True), files
    name = names[0] if names else "image.raw"
    # A file acquired alone (intake found no storage media in it) is one file trace for the tools.
    alone = evidence.format in (ImageFormat.FILE, ImageFormat.ARCHIVE)
    return WalkOptions(file_name=name, shard=shard, keep_content=True, root_is_file=alone), {name: reader}


def _child_streams(data: bytes) -> list[dict]:
    """The stream of a trace a content tool found: hashed and measured as the walker does its files."""
    digest = StreamDigest(head_size=0)
    for start in range(0, len(data), 1 << 20):
        digest.update(data[start : start + (1 << 20)])
    stream = DataStream(name="raw", size=len(data), data_path="")
    digest.fill(stream)
    return [asdict(stream)]


def _tool_children(*, record: TraceRecord, analysed) -> Iterator[dict]:
    """Traces found inside a file by the content tools (archive members, e-mails, visits…)."""

    def walk(node, uid: str, path: str) -> Iterator[dict]:
        for ordinal, child in enumerate(node.children, start=1):
            uid_child = child_uid(parent_uid=uid, ordinal=ordinal)
            path_child = path.rstrip("/") + "/" + child.name
            data = child.read() if child.data is not None else None
            yield {
                "uid": uid_child,
                "parent_uid": uid,
                "name": child.name[:1000],
                "path": path_child,
                "types": list(child.types),
                "properties": child.properties,
                "streams": _child_streams(data) if data is not None else [],
                "tools": {k: [v.name, v.version] for k, v in child.tools.items()},
                "errors": [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in child.errors],
                "deleted": record.deleted,
                "text": (child.text or "")[:TEXT_MAX_CHARS],
            }
            yield from walk(child, uid_child, path_child)

    yield from walk(analysed, record.uid, record.path)


class _DfvfsFile(io.RawIOBase):
    """A dfVFS file object as a standard Python file: dfVFS's ``seek`` returns None and it has no
    ``tell``, while the content tools (zipfile, tarfile, sqlite) rely on both."""

    def __init__(self, inner) -> None:
        super().__init__()
        self._inner = inner
        # dfVFS hands out the file object it cached in the resolver context: a second opener (each tool
        # opens the stream afresh) would otherwise start where the previous reader stopped.
        inner.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._inner.seek(offset, whence)
        return self._inner.get_offset()

    def tell(self) -> int:
        return self._inner.get_offset()

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _analyse_file(*, record: TraceRecord, resolver_context) -> object | None:
    """The content tools on one file: on the bytes the walker read (``record.content``) when it kept them,
    else on the file opened again through its data path. Files no tool accepts (by MIME type, name or
    first bytes) are never opened."""
    raw = record.stream("raw")
    if raw is None or "file" not in record.types or not raw.size or raw.size > TOOL_MAX_BYTES:
        return None
    mime_type = raw.mime_type or ""
    content = record.content
    if content is not None:
        # The tools' head is HEAD_SIZE bytes; the walker's is its MIME sniff's (the same by default).
        # (A shorter sniff: the tools read their head themselves, and decide on it.)
        head = content.head[:HEAD_SIZE] if len(content.head) >= min(HEAD_SIZE, content.size) else None
        accepted = None
        if head is not None:
            accepted = accepting_tools(mime_type=mime_type, name=record.name, head=head)
            if accepted is not None and not accepted:
                return None  # no tool wants it: never opened
        return analyse(
            stream_opener=content.open,
            name=record.name,
            mime_type=mime_type,
            head=head,
            accepted_tools=accepted,
            limits=Limits(),
            path=record.path,
        )
    if not any(tool.accepts(mime_type=mime_type, name=record.name, head=b"") for tool in TOOLS):
        return None

    def opener():
        file_object = media_source.open_data_path(data_path=raw.data_path, resolver_context=resolver_context)
        return io.BufferedReader(_DfvfsFile(file_object), buffer_size=1 << 20)

    return analyse(stream_opener=opener, name=record.name, mime_type=mime_type, limits=Limits(), path=record.path)


def _stream_dict(stream: DataStream) -> dict:
    """``dataclasses.asdict(stream)`` (same keys, same order), without its deep copy of every value."""
    return {
        "name": stream.name,
        "size": stream.size,
        "data_path": stream.data_path,
        "md5": stream.md5,
        "sha1": stream.sha1,
        "sha256": stream.sha256,
        "entropy": stream.entropy,
        "mime_type": stream.mime_type,
    }


def _row(*, record: TraceRecord, analysed) -> dict:
    properties = dict(record.properties)
    types = list(record.types)
    tools = {k: [v.name, v.version] for k, v in record.tools.items()}
    errors = [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in record.errors]
    text = ""
    if analysed is not None:
        for key, value in analysed.properties.items():
            properties.setdefault(key, value)
        types += [t for t in analysed.types if t not in types]
        tools.update({k: [v.name, v.version] for k, v in analysed.tools.items()})
        errors += [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in analysed.errors]
        text = (analysed.text or "")[:TEXT_MAX_CHARS]
    return {
        "uid": record.uid,
        "parent_uid": record.parent_uid or "",
        "name": record.name[:1000],
        "path": record.path,
        "types": types,
        "properties": properties,
        "streams": [_stream_dict(stream) for stream in record.streams],
        "tools": tools,
        "errors": errors,
        "deleted": record.deleted,
        "text": text,
    }


class _Publisher:
    """Collects trace rows and commits them in small batches, keeping the run's counters current.

    A batch is one ``INSERT … ON CONFLICT (uid) DO UPDATE`` run with ``executemany``: the upsert
    ``bulk_create(update_conflicts=True)`` writes, without a model instance and a compiled statement per
    row. The first batch is committed as soon as it holds ``FIRST_BATCH_TRACES``: the run shows traces
    at once, and later batches are larger.
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

    @property
    def ordinal(self) -> int:
        # Interleaved by shard, so that every share of a run has its own, stable positions.
        return self.count * self.run.shards + self.shard

    def add(self, row: dict) -> None:
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
        if len(self.rows) >= self._batch_size or time.monotonic() - self.last_flush >= BATCH_SECONDS:
            self.flush()

    def _upsert_sql(self) -> str:
        if self._sql is None:
            quote = connection.ops.quote_name
            columns = [Trace._meta.get_field(name).column for name in self.INSERT_FIELDS]
            updates = [Trace._meta.get_field(name).column for name in self.UPDATE_FIELDS]
            # Only the model's own table and column names go into the statement; values are parameters.
            table = quote(Trace._meta.db_table)
            marks = ["%s"] * len(columns)
            if self._words_in_python:
                # The words computed here (fulltext.document_words); the trigger keeps the vector.
                columns, updates = [*columns, "search_vector"], [*updates, "search_vector"]
                marks.append("to_tsvector('simple', %s)")
            names, values = ", ".join(quote(c) for c in columns), ", ".join(marks)
            uid = quote(Trace._meta.get_field("uid").column)
            assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in updates)
            self._sql = (
                f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({uid}) DO UPDATE SET {assignments}"  # noqa: S608
            )
        return self._sql

    def _upsert_prepared(self) -> None:
        """PostgreSQL: the batch's upserts through one prepared statement. Django's cursor binds parameters
        on the client and its connection prepares nothing, so the server would parse, analyse and plan the
        whole statement again for every trace; psycopg's own cursor, allowed to prepare, does it once."""
        import psycopg

        raw = connection.connection
        threshold = raw.prepare_threshold
        raw.prepare_threshold = 0
        try:
            with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
                cursor.executemany(self._upsert_sql(), self._parameters())
                # Not one statement left per batch on the server. Django prepares nothing unless told to
                # (OPTIONS prepare_threshold); then psycopg forgets its own too and prepares them again.
                cursor.execute("DEALLOCATE ALL")
        finally:
            raw.prepare_threshold = threshold

    def _parameters(self) -> list[tuple]:
        adapt_json = connection.ops.adapt_json_value
        extracted_at = connection.ops.adapt_datetimefield_value(timezone.now())
        # The same for every row: the keys as their fields give them to the database (a UUID as text…).
        keys = tuple(
            Trace._meta.get_field(name).get_db_prep_save(value, connection)
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
        if self._words_in_python:
            document_words = fulltext.document_words
            rows = [
                (*values, document_words(name=row[6], path=row[7], text=row[15], properties=row[9]))
                for values, row in zip(rows, self.rows, strict=True)
            ]
        return rows

    def flush(self) -> None:
        if not self.rows:
            return
        with transaction.atomic():
            with connection.cursor() as cursor:
                # On SQLite the new rows' words go into the index in one statement, not a trigger a row.
                deferred = fulltext.defer_words(cursor)
                if connection.vendor == "postgresql":
                    self._upsert_prepared()
                else:
                    cursor.executemany(self._upsert_sql(), self._parameters())
                fulltext.index_deferred_words(cursor, after_id=deferred)
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


def property_names_rebuild(*, case_id: int) -> None:
    """Record every property name of the case's traces, reading them all: for traces written other than
    by extraction, and for those from before names were recorded."""
    if connection.vendor == "postgresql":
        sql = "SELECT DISTINCT key FROM search_trace, jsonb_object_keys(properties) AS key WHERE case_id = %s"
    else:
        sql = (
            "SELECT DISTINCT property.key FROM search_trace, json_each(search_trace.properties) AS property "
            "WHERE search_trace.case_id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [case_id])
        names = {row[0] for row in cursor.fetchall()}
    CasePropertyName.objects.filter(case_id=case_id).exclude(name__in=names).delete()
    property_names_record(case_id=case_id, names=names)


def extraction_execute(*, run_id: int, shard: int = 0) -> ExtractionRun:
    """The body of one extraction task: share ``shard`` of the run's walk (all of it when the run has one
    share). Safe to run again (redelivery): rows are upserted by uid and a share is counted finished once."""
    run = ExtractionRun.objects.select_related("evidence", "evidence__case").get(pk=run_id)
    if run.state in (RunState.DONE, RunState.FAILED):
        return run
    if not 0 <= shard < run.shards:
        raise ValueError(f"run {run.pk} has {run.shards} shares; there is no share {shard}")
    evidence = run.evidence
    ExtractionRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=timezone.now())
    ExtractionRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING)
    Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.EXTRACTING)
    run.refresh_from_db()
    publisher = _Publisher(run, shard=shard)
    try:
        with ExitStack() as stack:
            reader = stack.enter_context(
                open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store())
            )
            options, files = _walk_options(evidence, reader, shard=(shard, run.shards) if run.shards > 1 else None)
            resolver_context = media_source.EvidenceResolverContext(files=files)
            for record in walk_image(
                file_object=reader, evidence_id=str(evidence.pk), secrets=_secrets_for(evidence), options=options
            ):
                analysed = _analyse_file(record=record, resolver_context=resolver_context)
                publisher.add(_row(record=record, analysed=analysed))
                if analysed is not None:
                    for child in _tool_children(record=record, analysed=analysed):
                        publisher.add(child)
            publisher.flush()
    except Exception as exc:  # a run that cannot go on is recorded, audited and left; nothing is lost
        logger.exception("extraction run %s (share %s) failed", run.pk, shard)
        publisher.flush()
        with transaction.atomic():
            ExtractionRun.objects.filter(pk=run.pk).update(
                state=RunState.FAILED, failure=f"{exc.__class__.__name__}: {exc}"[:2000], finished_at=timezone.now()
            )
            Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.SEALED)
            audit_record(
                action="evidence.extract",
                outcome="failed",
                target_type="evidence",
                target_id=evidence.pk,
                case_id=evidence.case_id,
                details={"run": run.pk, "shard": shard, "error": exc.__class__.__name__, "traces": publisher.count},
            )
        run.refresh_from_db()
        return run
    if _finish_share(run=run, shard=shard):
        trace_statistics_refresh()
    run.refresh_from_db()
    return run


def trace_statistics_refresh() -> None:
    """Tell the database's query planner how the trace table looks now, after a run added many traces.

    SQLite keeps no statistics unless asked: without them it checks a rare word's few hits by scanning
    a whole case's index instead of looking them up. It reads every index (about 3 s at a million traces,
    once a run): a sample (``analysis_limit``) sees too few rows to tell that one case holds them all, and
    the plans it leads to are worse than none. PostgreSQL samples by itself, and its autovacuum would get
    there too, later.
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_trace")


def _finish_share(*, run: ExtractionRun, shard: int) -> bool:
    """Count this share finished; the last share to finish closes the run (exactly once): True then."""
    with transaction.atomic():
        run = ExtractionRun.objects.select_for_update().select_related("evidence").get(pk=run.pk)
        if run.state != RunState.RUNNING:
            return False
        if shard not in run.shards_finished:
            run.shards_finished = sorted([*run.shards_finished, shard])
            run.save(update_fields=["shards_finished"])
        if len(run.shards_finished) < run.shards:
            return False
        evidence = run.evidence
        versions = {**tool_versions(), **_media_tool_versions()}
        traces = Trace.objects.filter(run=run)
        totals = {
            "traces": traces.count(),
            "traces_with_errors": traces.filter(has_errors=True).count(),
        }
        ExtractionRun.objects.filter(pk=run.pk).update(
            state=RunState.DONE,
            finished_at=timezone.now(),
            tools=versions,
            traces=totals["traces"],
            errors=totals["traces_with_errors"],
        )
        # Traces of an earlier run that this run no longer produced do not linger.
        Trace.objects.filter(evidence=evidence).exclude(run=run).delete()
        Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.EXTRACTED)
        run.refresh_from_db()
        audit_record(
            action="evidence.extract",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={
                "run": run.pk,
                "shards": run.shards,
                "traces": totals["traces"],
                "files": run.files,
                "bytes": run.bytes_processed,
                "traces_with_errors": totals["traces_with_errors"],
                "tools": versions,
            },
        )
    return True


def _media_tool_versions() -> dict[str, str]:
    import dfvfs
    import pytsk3

    return {"dfvfs": dfvfs.__version__, "pytsk3": pytsk3.TSK_VERSION_STR}


def extract_on_seal(*, evidence: Evidence) -> None:
    """Receiver of ``evidence_sealed``: start the automatic run when the setting asks for it."""
    if settings.CUSTODIA_EXTRACT_ON_SEAL:
        extraction_start(actor=None, evidence=evidence)
