from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from audit.actions import ACCESS_SUFFIX, CUSTODY_RELEVANT
from audit.models import AuditEvent, Outcome

# Reads of the same target by the same actor, with the same action and outcome, and no gap longer than
# this between one and the next, are shown as one line with a count (the rows all stay in the trail).
FOLD_WINDOW = timedelta(minutes=10)
# The most rows one page of folded lines reads: a page of a trail of any length costs at most this many
# rows (a page may then show fewer lines; the next page goes on from where it stopped).
FOLD_SCAN_LIMIT = 5000


def audit_events(
    *,
    case_ids: Iterable[int],
    actor: str = "",
    action: str = "",
    actions: Iterable[str] = (),
    outcome: str = "",
    target_type: str = "",
    target_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    custody_only: bool = False,
) -> QuerySet[AuditEvent]:
    """Events of the given cases, newest first. ``action`` matches a prefix (``case.`` finds all case actions);
    ``actions`` any of the names exactly; ``custody_only`` keeps what ``custody_relevant`` keeps."""
    events = AuditEvent.objects.filter(case_id__in=list(case_ids))
    return filter_events(
        events,
        actor=actor,
        action=action,
        actions=actions,
        outcome=outcome,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        custody_only=custody_only,
    ).order_by("-sequence")


def filter_events(
    events: QuerySet[AuditEvent],
    *,
    actor: str = "",
    action: str = "",
    actions: Iterable[str] = (),
    outcome: str = "",
    target_type: str = "",
    target_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    custody_only: bool = False,
) -> QuerySet[AuditEvent]:
    """The filters of the review pages and the audit API, on any query of events."""
    if actor:
        events = events.filter(actor=actor)
    if action:
        events = events.filter(action__startswith=action)
    names = sorted(set(actions))
    if names:
        events = events.filter(action__in=names)
    if outcome:
        events = events.filter(outcome=outcome)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    if custody_only:
        events = custody_relevant(events)
    return events


def custody_relevant(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """The events that make or change the chain of custody (``audit.actions.CUSTODY_RELEVANT``), and every
    refusal or failure of anything: what the review pages show unless asked for all events."""
    return events.filter(Q(action__in=sorted(CUSTODY_RELEVANT)) | ~Q(outcome=Outcome.OK))


def is_read(event: AuditEvent) -> bool:
    """A request's access row (a read, or a refused request): the kind of row that repeats and folds."""
    return event.action.endswith(ACCESS_SUFFIX)


@dataclass
class FoldedLine:
    """One line of a review page: an event, or ``count`` alike reads folded together (``event`` is the one
    the line is shown in order of: the newest on a newest-first page, the oldest on an oldest-first one)."""

    event: AuditEvent
    count: int = 1
    first_at: datetime | None = None
    last_at: datetime | None = None
    first_sequence: int = 0
    last_sequence: int = 0
    _edge_at: datetime | None = field(default=None, repr=False)

    def add(self, event: AuditEvent) -> None:
        self.count += 1
        self.first_at = min(self.first_at or event.occurred_at, event.occurred_at)
        self.last_at = max(self.last_at or event.occurred_at, event.occurred_at)
        self.first_sequence = min(self.first_sequence, event.sequence)
        self.last_sequence = max(self.last_sequence, event.sequence)
        self._edge_at = event.occurred_at

    @property
    def folded(self) -> bool:
        return self.count > 1


@dataclass
class FoldedPage:
    lines: list[FoldedLine]
    # Where the next page starts: the ``cursor`` to pass for it (a sequence number), None on the last page.
    next_cursor: int | None
    newest_first: bool


def _fold_key(event: AuditEvent) -> tuple:
    return (event.actor_id, event.actor, event.action, event.target_type, event.target_id, event.outcome)


def folded_page(
    events: QuerySet[AuditEvent],
    *,
    newest_first: bool,
    cursor: int | None = None,
    size: int = 50,
    window: timedelta = FOLD_WINDOW,
    scan_limit: int = FOLD_SCAN_LIMIT,
) -> FoldedPage:
    """One page of ``events`` with repeated reads folded, in one pass over at most ``scan_limit`` rows.

    Pages are keyset pages over the sequence number (``cursor``: the first sequence of the page, inclusive),
    so page 1000 of a trail of a million rows costs what page 1 does. A read joins the open line of the same
    actor, action, target and outcome when it lies within ``window`` of that line's last read; anything
    else opens a line. A run of reads that crosses a page boundary is shown on both pages."""
    ordered = events.order_by("-sequence" if newest_first else "sequence")
    if cursor is not None:
        ordered = ordered.filter(**{"sequence__lte" if newest_first else "sequence__gte": cursor})
    lines: list[FoldedLine] = []
    open_lines: dict[tuple, FoldedLine] = {}
    scanned = 0
    next_cursor: int | None = None
    for event in _bounded(ordered, scan_limit + 1):
        if scanned == scan_limit:
            next_cursor = event.sequence
            break
        if is_read(event):
            key = _fold_key(event)
            line = open_lines.get(key)
            if line is not None and line._edge_at is not None and abs(line._edge_at - event.occurred_at) <= window:
                line.add(event)
                scanned += 1
                continue
        if len(lines) == size:
            next_cursor = event.sequence
            break
        line = FoldedLine(
            event=event,
            first_at=event.occurred_at,
            last_at=event.occurred_at,
            first_sequence=event.sequence,
            last_sequence=event.sequence,
            _edge_at=event.occurred_at,
        )
        lines.append(line)
        if is_read(event):
            open_lines[_fold_key(event)] = line
        scanned += 1
    return FoldedPage(lines=lines, next_cursor=next_cursor, newest_first=newest_first)


def page_cursor(value: str) -> int | None:
    """The page a review page's link asks for (``?from=<sequence>``); anything else is the first page."""
    return int(value) if value.isdigit() and int(value) > 0 else None


def _bounded(events: QuerySet[AuditEvent], limit: int) -> Iterator[AuditEvent]:
    yield from events[:limit].iterator(chunk_size=500)
