"""The time budget of one search: a query that runs longer is stopped by the database and answered with a 4xx.

``CUSTODIA_SEARCH_TIME_BUDGET_MS`` (settings) bounds every search the SQL backend runs, so one search can
never hold a worker, the database or other users for longer than that:

* SQLite: a progress handler on the connection, called every few thousand virtual-machine steps, ends the
  statement when the budget is spent (SQLite then raises "interrupted");
* PostgreSQL: ``SET LOCAL statement_timeout`` in the search's transaction, so the server cancels it;
* Elasticsearch: the search's ``timeout``; a response that says ``timed_out`` is refused the same way.

Either way :func:`search_time_budget` raises :class:`SearchTimeBudgetExceeded`, a ServiceError (HTTP 422,
code ``search_time_budget``) whose message names the setting and its value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction

from custodia.errors import ServiceError

# SQLite calls the handler every this many virtual-machine instructions: often enough to stop within a
# millisecond or two, rarely enough to cost nothing measurable.
SQLITE_PROGRESS_STEPS = 10_000
# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout.
_QUERY_CANCELED = "57014"


_state = threading.local()


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Statements in the block are not stopped by the SQLite budget (they are checked again after it).

    SQLite, interrupting a statement that writes inside a transaction, rolls back the whole transaction,
    not just the statement: a search's writes to its temporary tables go in here whenever its caller holds
    a transaction (:func:`sqlite_caller_transaction`), after the reads that do the work were budgeted."""
    before = getattr(_state, "uninterrupted", False)
    _state.uninterrupted = True
    try:
        yield
    finally:
        _state.uninterrupted = before


def sqlite_caller_transaction() -> bool:
    """Whether this is SQLite inside a transaction, where a search must not let the budget stop a write."""
    if connection.vendor != "sqlite":
        return False
    connection.ensure_connection()
    return bool(connection.connection.in_transaction)


class SearchTimeBudgetExceeded(ServiceError):
    """A search ran out of its time budget (``CUSTODIA_SEARCH_TIME_BUDGET_MS``) and was stopped."""

    code = "search_time_budget"
    status_code = 422

    def __init__(self, budget_ms: int) -> None:
        super().__init__(
            f"This search took longer than the search time budget (CUSTODIA_SEARCH_TIME_BUDGET_MS = {budget_ms} ms) "
            "and was stopped. Narrow it: fewer wildcards, a word or a field to start from, or a type: or date range.",
            extra={"limit": "CUSTODIA_SEARCH_TIME_BUDGET_MS", "budget_ms": budget_ms},
        )
        self.budget_ms = budget_ms


def time_budget_ms() -> int:
    """The budget of one search in milliseconds (0: none)."""
    return int(settings.CUSTODIA_SEARCH_TIME_BUDGET_MS)


@contextmanager
def search_time_budget(budget_ms: int | None = None) -> Iterator[None]:
    """Run the block's queries under the search time budget; :class:`SearchTimeBudgetExceeded` when spent.

    On PostgreSQL the block runs in a transaction (a savepoint inside one), which the timeout aborts and
    leaving the block rolls back, so the connection stays usable.
    """
    budget = time_budget_ms() if budget_ms is None else budget_ms
    if budget <= 0:
        yield
        return
    if connection.vendor == "postgresql":
        try:
            outermost = not connection.in_atomic_block
            with transaction.atomic():
                with connection.cursor() as cursor:
                    # One round trip: the setting before, then the budget (evaluated left to right).
                    cursor.execute(
                        "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, true)",
                        [f"{budget}ms"],
                    )
                    before = cursor.fetchone()[0]
                yield
                if not outermost:
                    # A local setting lasts to the end of the whole transaction, which may be the request's;
                    # a transaction of the block's own ends here, and the setting with it.
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) == _QUERY_CANCELED:
                raise SearchTimeBudgetExceeded(budget) from None
            raise
        return
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + budget / 1000
    stopped = False

    def past_deadline() -> int:
        nonlocal stopped
        if getattr(_state, "uninterrupted", False):
            return 0
        stopped = time.monotonic() > deadline
        return 1 if stopped else 0

    raw.set_progress_handler(past_deadline, SQLITE_PROGRESS_STEPS)
    try:
        yield
    except OperationalError as error:
        if stopped and "interrupted" in str(error):
            raise SearchTimeBudgetExceeded(budget) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)
