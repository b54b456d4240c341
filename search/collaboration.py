"""Collaboration on traces (DESIGN.md §4, issue #5): tags, notes, bulk tagging, saved searches, CSV export.

Every service checks the caller's permission through the one access policy (``case_get`` / ``trace_get``:
``annotate_traces`` for writes, ``search_traces`` for reads) and writes exactly one audit row in its own
transaction. Tags are lower-case names (letters, digits, ``.``, ``_``, ``-``), so ``tag:`` matches any case.
"""

from __future__ import annotations

import csv
import io
import re

from django.db import transaction

from audit.privacy import Tagged
from audit.services import audit_record
from audit.text import visible_text
from cases import permissions as perms
from cases.models import User
from cases.selectors import case_get
from custodia.errors import NotFound, ServiceError
from search import selectors
from search.backends.base import traces_changed_on_commit
from search.backends.budget import search_time_budget
from search.models import TAG_MAX_LENGTH, SavedSearch, Trace, TraceNote, TraceTag

BULK_TAG_LIMIT = 10_000
EXPORT_LIMIT = 10_000
NOTE_MAX_LENGTH = 10_000
SAVED_SEARCH_NAME_MAX = 100
QUERY_MAX_LENGTH = 4096
# "evidence" is the item's label (issue #20: evidence by its name; the uid holds its id).
EXPORT_COLUMNS = ("uid", "name", "path", "types", "size", "modifiedOn", "sha256", "evidence")

_TAG_RE = re.compile(rf"^[a-z0-9][a-z0-9._-]{{0,{TAG_MAX_LENGTH - 1}}}$")


def tag_normalize(name: str) -> str:
    """The stored form of a tag name, or ServiceError saying what a tag may contain."""
    tag = (name or "").strip().lower()
    if not _TAG_RE.match(tag):
        raise ServiceError(
            f"A tag is 1 to {TAG_MAX_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit.",
            code="invalid_tag",
        )
    return tag


def _trace_for_write(*, actor: User, case_id: int, uid: str) -> Trace:
    case_get(user=actor, case_id=case_id, permission=perms.ANNOTATE_TRACES)
    return selectors.trace_get(user=actor, case_id=case_id, uid=uid)


@transaction.atomic
def tag_add(*, actor: User, case_id: int, uid: str, tag: str) -> TraceTag:
    """Tag one trace; tagging it again changes nothing (but is still recorded)."""
    trace = _trace_for_write(actor=actor, case_id=case_id, uid=uid)
    name = tag_normalize(tag)
    found, created = TraceTag.objects.get_or_create(
        trace=trace, name=name, defaults={"case_id": trace.case_id, "created_by": actor}
    )
    traces_changed_on_commit(trace_ids=[trace.pk])
    audit_record(
        action="trace.tag.add",
        actor=actor,
        target_type="trace",
        target_id=trace.uid,
        case_id=trace.case_id,
        details={"tag": Tagged("keyword", name), "created": created},
    )
    return found


@transaction.atomic
def tag_remove(*, actor: User, case_id: int, uid: str, tag: str) -> bool:
    """Remove a tag from one trace; True if it carried it."""
    trace = _trace_for_write(actor=actor, case_id=case_id, uid=uid)
    name = tag_normalize(tag)
    removed, _ = TraceTag.objects.filter(trace=trace, name=name).delete()
    traces_changed_on_commit(trace_ids=[trace.pk])
    audit_record(
        action="trace.tag.remove",
        actor=actor,
        target_type="trace",
        target_id=trace.uid,
        case_id=trace.case_id,
        details={"tag": Tagged("keyword", name), "removed": bool(removed)},
    )
    return bool(removed)


@transaction.atomic
def tags_bulk_add(
    *, actor: User, case_id: int, tag: str, query: str | None = None, uids: list[str] | None = None
) -> dict:
    """Tag every hit of ``query`` (or the traces named by ``uids``): ``{tagged, added}``.

    ``tagged`` counts the traces that carry the tag now, ``added`` those that did not before. More than
    ``BULK_TAG_LIMIT`` traces is refused as a whole: narrow the query first.
    """
    case = case_get(user=actor, case_id=case_id, permission=perms.ANNOTATE_TRACES)
    name = tag_normalize(tag)
    if (query is None) == (uids is None):
        raise ServiceError("Give either a query or a list of trace uids to tag.")
    if uids is not None:
        if len(uids) > BULK_TAG_LIMIT:
            raise ServiceError(f"At most {BULK_TAG_LIMIT} traces can be tagged at once.", code="too_many_traces")
        traces = Trace.objects.filter(case=case, uid__in=set(uids))
    else:
        if query is None:  # cannot be: the check above leaves a query whenever there are no uids
            raise ServiceError("Give either a query or a list of trace uids to tag.")
        if len(query) > QUERY_MAX_LENGTH:
            raise ServiceError(f"A query is at most {QUERY_MAX_LENGTH} characters.")
        traces = selectors.traces_matching(case=case, query=query)
    with search_time_budget():  # a user's query: bounded like a search
        ids = list(traces.order_by().values_list("pk", flat=True)[: BULK_TAG_LIMIT + 1])
    if len(ids) > BULK_TAG_LIMIT:
        raise ServiceError(
            f"The query matches more than {BULK_TAG_LIMIT} traces; narrow it to tag its hits.",
            code="too_many_traces",
        )
    if uids is not None and len(ids) != len(set(uids)):
        raise NotFound("Some of these traces are not in this case.")
    already = set(TraceTag.objects.filter(trace_id__in=ids, name=name).values_list("trace_id", flat=True))
    new = [TraceTag(trace_id=pk, case=case, name=name, created_by=actor) for pk in ids if pk not in already]
    TraceTag.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    traces_changed_on_commit(trace_ids=[tag.trace_id for tag in new])
    details = {"tag": name, "tagged": len(ids), "added": len(new)}
    if query is not None:
        details["query"] = query[:2000]
    elif uids is not None:  # always, without a query (the check above)
        details["uids"] = sorted(set(uids))[:100]
    audit_record(
        action="trace.tag.bulk_add",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details=details,
    )
    return {"tagged": len(ids), "added": len(new)}


@transaction.atomic
def note_add(*, actor: User, case_id: int, uid: str, text: str) -> TraceNote:
    trace = _trace_for_write(actor=actor, case_id=case_id, uid=uid)
    text = (text or "").strip()
    if not text:
        raise ServiceError("A note needs some text.")
    if len(text) > NOTE_MAX_LENGTH:
        raise ServiceError(f"A note is at most {NOTE_MAX_LENGTH} characters.")
    note = TraceNote.objects.create(trace=trace, case_id=trace.case_id, author=actor, text=text)
    audit_record(
        action="trace.note.add",
        actor=actor,
        target_type="trace",
        target_id=trace.uid,
        case_id=trace.case_id,
        details={"note": note.pk, "chars": len(text)},
    )
    return note


@transaction.atomic
def saved_search_save(*, actor: User, case_id: int, name: str, query: str) -> SavedSearch:
    """Save a query under a name in the case; saving under an existing name replaces its query."""
    case = case_get(user=actor, case_id=case_id, permission=perms.ANNOTATE_TRACES)
    name = (name or "").strip()
    if not name or len(name) > SAVED_SEARCH_NAME_MAX:
        raise ServiceError(f"A saved search needs a name of 1 to {SAVED_SEARCH_NAME_MAX} characters.")
    if len(query) > QUERY_MAX_LENGTH:
        raise ServiceError(f"A query is at most {QUERY_MAX_LENGTH} characters.")
    selectors.query_parse(query)  # a query that does not parse is refused here
    saved, created = SavedSearch.objects.update_or_create(
        case=case, name=name, defaults={"query": query, "created_by": actor}
    )
    audit_record(
        action="search.saved.save",
        actor=actor,
        target_type="saved_search",
        target_id=saved.pk,
        case_id=case.pk,
        details={"name": Tagged("query", name), "query": Tagged("query", query[:2000]), "created": created},
    )
    return saved


@transaction.atomic
def saved_search_delete(*, actor: User, case_id: int, saved_search_id: int) -> None:
    case = case_get(user=actor, case_id=case_id, permission=perms.ANNOTATE_TRACES)
    saved = SavedSearch.objects.filter(case=case, pk=saved_search_id).first()
    if saved is None:
        raise NotFound("No such saved search.")
    audit_record(
        action="search.saved.delete",
        actor=actor,
        target_type="saved_search",
        target_id=saved.pk,
        case_id=case.pk,
        details={"name": Tagged("query", saved.name), "query": Tagged("query", saved.query[:2000])},
    )
    saved.delete()


def _cell(value: object) -> str:
    # Control and bidirectional formatting characters spelled out: a name cannot add a row or hide its end.
    text = visible_text(value)
    # A cell a spreadsheet would run as a formula is quoted (OWASP "CSV injection"); names come from evidence.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@transaction.atomic
def traces_export_csv(*, actor: User, case_id: int, query: str) -> str:
    """The hits of ``query`` as CSV (``EXPORT_COLUMNS``), at most ``EXPORT_LIMIT`` rows; audited."""
    case = case_get(user=actor, case_id=case_id, permission=perms.SEARCH_TRACES)
    if len(query) > QUERY_MAX_LENGTH:
        raise ServiceError(f"A query is at most {QUERY_MAX_LENGTH} characters.")
    # In the search page's default order (search.backends.base.SORTS[""]).
    traces = selectors.traces_matching(case=case, query=query).order_by("pk")
    with search_time_budget():  # a user's query: bounded like a search
        rows = list(
            traces.values_list("uid", "name", "path", "types", "properties", "sha256", "evidence__label")[
                : EXPORT_LIMIT + 1
            ]
        )
    if len(rows) > EXPORT_LIMIT:
        raise ServiceError(
            f"The query matches more than {EXPORT_LIMIT} traces; narrow it to export its hits.",
            code="too_many_traces",
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for uid, name, path, types, properties, sha256, evidence_label in rows:
        properties = properties or {}
        writer.writerow(
            [
                uid,
                _cell(name),
                _cell(path),
                ";".join(types or []),
                properties.get("file.size", ""),
                properties.get("file.modifiedOn", ""),
                sha256,
                _cell(evidence_label),
            ]
        )
    audit_record(
        action="trace.export.csv",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"query": Tagged("query", query[:2000]), "rows": len(rows)},
    )
    return out.getvalue()
