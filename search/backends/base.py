"""The search backend interface: one parsed query in, one page of a case's traces with facets out.

Backends are chosen in settings (``CUSTODIA_SEARCH_BACKEND``, a dotted class path), like the evidence
and key stores: the SQL backend (SQLite FTS5 or PostgreSQL tsvector, the embedded default) or the
Elasticsearch backend. Every backend answers the same queries with the same traces (the shared suite in
tests/search/test_search_backends.py); selectors turn a page into the API's hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils.module_loading import import_string

from search.models import Trace
from search.query.ast import Node

# The sorts a search may ask for, as field lists every backend understands ("-" first: descending).
# "id" is the order extraction stored the traces in: the walk's order within a run, run after run. Every
# list ends in it, so equal values keep a stable, repeatable order. (Not the evidence and the walk's
# position: every index of the trace table holds the id, so the first hits in id order are found
# without reading and sorting all of them.)
SORTS: dict[str, tuple[str, ...]] = {
    "": ("id",),
    "name": ("name", "id"),
    "-name": ("-name", "id"),
    "path": ("path", "id"),
    "-path": ("-path", "id"),
    "size": ("file.size", "id"),
    "-size": ("-file.size", "id"),
    "modifiedOn": ("file.modifiedOn", "id"),
    "-modifiedOn": ("-file.modifiedOn", "id"),
    # The e-mail and picture columns of the search page (issue #20 item 9).
    **{
        f"{sign}{key}": (f"{sign}{name}", "id")
        for key, name in {
            "from": "email.from",
            "to": "email.to",
            "subject": "email.subject",
            "sentOn": "email.sentOn",
            "width": "picture.width",
            "height": "picture.height",
            "takenOn": "picture.takenOn",
        }.items()
        for sign in ("", "-")
    },
}
# Every facet a search may ask for; "date" is the histogram of a date property (two queries, so asked by name).
FACETS = ("type", "mimeType", "extension", "tag", "hashset", "evidence", "deleted", "date")
DATE_INTERVALS = ("year", "month", "day", "hour")
DEFAULT_DATE_PROPERTY = "file.modifiedOn"
# The automatic interval is the finest one that keeps the timeline within this many bars.
MAX_DATE_BUCKETS = 120


@dataclass
class SearchPage:
    """One page of hits. ``exact`` False: at least ``total`` traces match (a search with a count limit
    stopped counting there). ``sampled``: the facets count only the first ``total`` hits in the sort order."""

    total: int
    traces: list[Trace]
    facets: dict[str, list[dict]] = field(default_factory=dict)
    date_interval: str | None = None
    exact: bool = True
    sampled: bool = False


class SearchBackend:
    """What a search backend does. ``node`` None means every trace of the case.

    ``count_limit`` None counts every hit. A number lets the backend stop counting after that many hits
    (or after the requested page, if it ends later), as a first page of a common word needs no more.
    """

    name = "base"
    # True when the backend keeps its own index, which writers must tell of changes (traces_changed).
    indexes_separately = False
    # True when ``search`` takes ``dedupe=True``: one hit per content hash (issue #20 item 7).
    deduplicates = False

    def search(
        self,
        *,
        case_id: int,
        node: Node | None,
        facets: list[str],
        sort: tuple[str, ...],
        offset: int,
        limit: int,
        date_property: str = DEFAULT_DATE_PROPERTY,
        date_interval: str = "auto",
        count_limit: int | None = None,
        dedupe: bool = False,
    ) -> SearchPage:
        raise NotImplementedError

    def matching(self, *, case_id: int, node: Node | None) -> QuerySet[Trace]:
        """Every matching trace as a queryset (bulk tagging, CSV export)."""
        raise NotImplementedError

    def traces_changed(self, *, trace_ids: list[int]) -> None:
        """Traces (or their tags) were written: backends with their own index bring it up to date."""


def count_bound(*, count_limit: int | None, offset: int, limit: int) -> int | None:
    """How many hits a search counts: all (None) without a limit, else the limit or the end of the page
    asked for, whichever is further (a page past the limit is still found exactly)."""
    return None if count_limit is None else max(count_limit, offset + limit)


def auto_date_interval(first: str | None, last: str | None) -> str:
    """The finest interval that shows ``first`` to ``last`` (ISO strings) in at most MAX_DATE_BUCKETS bars."""
    if not first or not last:
        return "month"
    try:
        start = datetime.fromisoformat(first[:19].replace("Z", ""))
        end = datetime.fromisoformat(last[:19].replace("Z", ""))
    except ValueError:
        return "year"
    hours = max((end - start).total_seconds() / 3600, 0)
    if hours <= MAX_DATE_BUCKETS:
        return "hour"
    if hours / 24 <= MAX_DATE_BUCKETS:
        return "day"
    if hours / (24 * 30.4) <= MAX_DATE_BUCKETS:
        return "month"
    return "year"


@lru_cache(maxsize=4)
def _backend(path: str) -> SearchBackend:
    return import_string(path)()


def get_search_backend() -> SearchBackend:
    return _backend(settings.CUSTODIA_SEARCH_BACKEND)


def traces_changed_on_commit(*, trace_ids: list[int]) -> None:
    """Tell the search backend about written traces once the transaction commits.

    A backend that cannot be reached then does not undo the (committed, audited) change: the error is
    logged and ``manage.py search_reindex`` brings its index up to date.
    """
    if not trace_ids:
        return
    ids = list(trace_ids)
    transaction.on_commit(lambda: get_search_backend().traces_changed(trace_ids=ids), robust=True)
