"""Marking traces with the hash sets that hold their content (issue #20 item 6).

Two writers, one look-up: the publisher marks each batch of traces as extraction commits it
(:meth:`HashSetMarker.mark_batch`, one query per algorithm for the whole batch, nothing when the
organisation has no set), and :func:`traces_mark_for_hash_set` marks the traces already extracted when a
set is imported (a Celery task, ``search.tasks.mark_traces_for_hash_set``), reading them in batches of
``MARK_BATCH`` by id. A trace is matched by its ``raw`` stream's md5, sha1 and sha256: its content.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.db import transaction

from hashsets.models import HashAlgorithm, HashSet, HashSetState
from hashsets.selectors import hash_sets_holding, ready_hash_sets
from search.backends.base import get_search_backend, traces_changed_on_commit
from search.models import Trace, TraceHashMatch

MARK_BATCH = 5_000
# What a trace is known by while it is matched: its uid (a batch not yet read back) or its id.
Key = TypeVar("Key", str, int)
_STREAM_ALGORITHMS = (("md5", HashAlgorithm.MD5), ("sha1", HashAlgorithm.SHA1), ("sha256", HashAlgorithm.SHA256))


def raw_digests(streams: Iterable[dict]) -> list[tuple[int, bytes]]:
    """The (algorithm, digest) pairs of a trace's ``raw`` stream, as its row or its database column holds it."""
    for stream in streams:
        if stream.get("name") != "raw":
            continue
        digests = []
        for key, algorithm in _STREAM_ALGORITHMS:
            value = stream.get(key)
            if value:
                try:
                    digests.append((int(algorithm), bytes.fromhex(value)))
                except ValueError:
                    continue
        return digests
    return []


class HashSetMarker:
    """Marks traces of one organisation with the sets (``hash_set_ids``: id → kind) that hold them."""

    def __init__(self, *, hash_sets: Iterable[HashSet]):
        hash_sets = list(hash_sets)
        self.hash_set_ids = {hash_set.pk: hash_set.kind for hash_set in hash_sets}
        # Only the algorithms the sets hold are looked up (NSRL RDSv3 has all three, a list often one).
        self.algorithms = {int(algorithm) for hash_set in hash_sets for algorithm in hash_set.algorithms}

    @classmethod
    def for_organization(cls, *, organization_id: int) -> HashSetMarker:
        """With every imported set of the organisation (read once: a set imported during a run marks the
        run's traces through its own task)."""
        return cls(hash_sets=ready_hash_sets(organization_id=organization_id))

    def matches(self, traces: Iterable[tuple[Key, int, list]]) -> list[tuple[Key, int, int]]:
        """``(key, case_id, streams)`` of traces → ``(key, case_id, hash_set_id)`` of each set holding one."""
        if not self.hash_set_ids:
            return []
        wanted = [(key, case_id, raw_digests(streams)) for key, case_id, streams in traces]
        held = hash_sets_holding(
            hash_set_ids=self.hash_set_ids,
            digests=(digest for _, _, digests in wanted for digest in digests),
            algorithms=self.algorithms,
        )
        if not held:
            return []
        found: list[tuple[Key, int, int]] = []
        for key, case_id, digests in wanted:
            sets = set().union(*(held.get(digest, ()) for digest in digests)) if digests else set()
            found.extend((key, case_id, hash_set_id) for hash_set_id in sorted(sets))
        return found

    def write(self, matched: Iterable[tuple[int, int, int]]) -> list[int]:
        """Record ``(trace_id, case_id, hash_set_id)`` marks; the ids of the traces newly marked (a mark
        already there stays as it is)."""
        wanted = list(matched)
        present = set(
            TraceHashMatch.objects.filter(trace_id__in={trace_id for trace_id, _, _ in wanted}).values_list(
                "trace_id", "hash_set_id"
            )
        )
        marks = [
            TraceHashMatch(trace_id=trace_id, case_id=case_id, hash_set_id=set_id, kind=self.hash_set_ids[set_id])
            for trace_id, case_id, set_id in wanted
            if (trace_id, set_id) not in present
        ]
        TraceHashMatch.objects.bulk_create(marks, ignore_conflicts=True)
        return sorted({mark.trace_id for mark in marks})

    def mark_batch(self, *, case_id: int, rows: Iterable[tuple[str, list]]) -> list[int]:
        """Mark a batch the publisher has just written (``(uid, streams)`` each), in its transaction: one
        look-up for the batch, then one query for the ids of the few traces matched. The trace ids marked."""
        matched = self.matches((uid, case_id, streams) for uid, streams in rows)
        if not matched:
            return []
        ids = dict(Trace.objects.filter(uid__in={uid for uid, _, _ in matched}).values_list("uid", "pk"))
        return self.write((ids[uid], case_id, set_id) for uid, case_id, set_id in matched if uid in ids)


def traces_mark_for_hash_set(*, hash_set_id: int) -> int:
    """Mark the traces of the set's organisation that it holds, extracted before it was imported; the
    number of traces marked. Repeating it marks nothing twice."""
    hash_set = HashSet.objects.filter(pk=hash_set_id, state=HashSetState.READY).first()
    if hash_set is None:
        return 0  # deleted since, or not imported after all
    marker = HashSetMarker(hash_sets=[hash_set])
    traces = Trace.objects.filter(case__organization_id=hash_set.organization_id).exclude(sha256="").order_by("pk")
    marked, after = 0, 0
    while True:
        batch = list(traces.filter(pk__gt=after).values_list("pk", "case_id", "streams")[:MARK_BATCH])
        if not batch:
            return marked
        after = batch[-1][0]
        matched = marker.matches(batch)
        if matched:
            with transaction.atomic():
                trace_ids = marker.write(matched)
                if get_search_backend().indexes_separately:
                    traces_changed_on_commit(trace_ids=trace_ids)
            marked += len(trace_ids)


def query_hiding_known_files(query: str) -> str:
    """``query`` without the traces a known-good set holds: the search page's "hide known files" switch.
    A query that does not parse is returned as it is, for the search to report its mistake."""
    from search.query.ast import Field, Not, narrowed
    from search.query.parser import QuerySyntaxError, parse_query

    try:
        node = parse_query(query) if query.strip() else None
    except QuerySyntaxError:
        return query
    return narrowed(node, Not(Field("knownGood", True)))
