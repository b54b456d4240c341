"""Browser history: Chrome/Chromium ``History``, Firefox ``places.sqlite``, Safari ``History.db``.

The SQLite file is read from the stream into memory (bounded) and opened with
``sqlite3.connect(':memory:').deserialize(...)``: nothing is written to disk and the evidence is never
opened by path. A database left in WAL mode is read as its main file (the ``-wal`` file is another
trace); the header is patched in memory only, because SQLite refuses to deserialize WAL databases.

Visits become ``browserHistory`` traces, downloads ``download``, bookmarks ``bookmark``; ordered by
the table's row id, so uids are stable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from search.extraction.tools.base import (
    Budget,
    ChildTrace,
    LimitExceeded,
    Limits,
    Tool,
    ToolResult,
    clean_text,
    enter_container,
    iso8601,
    read_bounded,
)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WEBKIT_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COCOA_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)


def _since(
    epoch: datetime, *, microseconds: float | int | None = None, seconds: float | int | None = None
) -> str | None:
    try:
        if microseconds:
            return iso8601(epoch + timedelta(microseconds=int(microseconds)))
        if seconds:
            return iso8601(epoch + timedelta(microseconds=round(float(seconds) * 1_000_000)))
    except (OverflowError, ValueError, TypeError):
        return None
    return None


def webkit_time(value: Any) -> str | None:
    """Chrome: microseconds since 1601-01-01 UTC; 0 means never."""
    return _since(_WEBKIT_EPOCH, microseconds=value) if isinstance(value, int) and value > 0 else None


def unix_microseconds(value: Any) -> str | None:
    """Firefox PRTime: microseconds since 1970-01-01 UTC."""
    return _since(_UNIX_EPOCH, microseconds=value) if isinstance(value, int) and value > 0 else None


def cocoa_time(value: Any) -> str | None:
    """Safari: seconds (real) since 2001-01-01 UTC."""
    return _since(_COCOA_EPOCH, seconds=value) if isinstance(value, int | float) and value > 0 else None


def open_sqlite_in_memory(data: bytes, *, budget: Budget) -> sqlite3.Connection:
    if not data.startswith(_SQLITE_MAGIC):
        raise ValueError("not a SQLite 3 database")
    if len(data) >= 20 and (data[18] == 2 or data[19] == 2):
        patched = bytearray(data)
        patched[18] = patched[19] = 1  # WAL → rollback journal, in memory only
        data = bytes(patched)
    connection = sqlite3.connect(":memory:")
    connection.deserialize(data)
    connection.execute("PRAGMA query_only = ON")

    def over_time() -> int:
        try:
            budget.check_time()
        except LimitExceeded:
            return 1  # non-zero aborts the running statement
        return 0

    connection.set_progress_handler(over_time, 10_000)
    return connection


def _tables(connection: sqlite3.Connection) -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns = {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}
        tables[table] = columns
    return tables


def _rows(connection: sqlite3.Connection, query: str, *, budget: Budget) -> Iterator[sqlite3.Row]:
    connection.row_factory = sqlite3.Row
    for row in connection.execute(query):
        budget.count_member()
        yield row


def _trace(*, kind: str, key: tuple, label: str, properties: dict[str, Any]) -> ChildTrace:
    properties = {name: value for name, value in properties.items() if value not in (None, "")}
    return ChildTrace(name=label, path_hint=f"/{label}", types=[kind], properties=properties, ordinal_key=key)


class BrowserHistoryTool(Tool):
    name = "browser-history"
    version = f"sqlite-{sqlite3.sqlite_version}"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return head.startswith(_SQLITE_MAGIC)

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="SQLite")
        budget = Budget(limits)
        data = read_bounded(stream, max_bytes=limits.max_output_bytes, what="SQLite database")
        connection = open_sqlite_in_memory(data, budget=budget)
        try:
            tables = _tables(connection)
            properties: dict[str, Any] = {"database.type": "sqlite", "database.tables": sorted(tables)}
            if {"urls", "visits"} <= tables.keys():
                application, children = "chrome", self._chrome(connection, tables=tables, budget=budget)
            elif {"moz_places", "moz_historyvisits"} <= tables.keys():
                application, children = "firefox", self._firefox(connection, tables=tables, budget=budget)
            elif {"history_items", "history_visits"} <= tables.keys():
                application, children = "safari", self._safari(connection, budget=budget)
            else:
                return ToolResult(properties=properties, types=["database"])
        finally:
            connection.close()
        properties["browser.application"] = application
        for kind in ("browserHistory", "download", "bookmark"):
            properties[f"browser.{kind}Count"] = sum(1 for child in children if kind in child.types)
        return ToolResult(properties=properties, children=children, types=["database", "browser"])

    @staticmethod
    def _chrome(connection, *, tables: dict[str, set[str]], budget: Budget) -> list[ChildTrace]:
        children = []
        for row in _rows(
            connection,
            "SELECT visits.id AS id, urls.url AS url, urls.title AS title, visits.visit_time AS visit_time,"
            " urls.visit_count AS visit_count, urls.typed_count AS typed_count, visits.transition AS transition"
            " FROM visits LEFT JOIN urls ON urls.id = visits.url ORDER BY visits.id",
            budget=budget,
        ):
            children.append(
                _trace(
                    kind="browserHistory",
                    key=(0, row["id"]),
                    label=f"visit-{row['id']}",
                    properties={
                        "browserHistory.application": "chrome",
                        "browserHistory.url": row["url"],
                        "browserHistory.title": clean_text(row["title"]),
                        "browserHistory.accessedOn": webkit_time(row["visit_time"]),
                        "browserHistory.visitCount": row["visit_count"],
                        "browserHistory.typedCount": row["typed_count"],
                        # The low byte is the core transition type (link, typed, bookmark…).
                        "browserHistory.transition": row["transition"] & 0xFF
                        if row["transition"] is not None
                        else None,
                    },
                )
            )
        downloads = tables.get("downloads", set())
        if "full_path" in downloads:  # before Chrome 26: path and url in the row, times in Unix seconds
            query = (
                "SELECT id, full_path AS path, url, start_time, NULL AS end_time, received_bytes, total_bytes, state"
                " FROM downloads ORDER BY id"
            )
            to_time = _unix_seconds
        elif "target_path" in downloads:
            has_chains = "downloads_url_chains" in tables
            url = (
                "(SELECT url FROM downloads_url_chains c WHERE c.id = downloads.id ORDER BY chain_index DESC LIMIT 1)"
                if has_chains
                else "NULL"
            )
            # `url` is one of two constant SQL fragments above: nothing from the input is in the query.
            columns = f"id, target_path AS path, {url} AS url, start_time, end_time, received_bytes, total_bytes, state"
            query = f"SELECT {columns} FROM downloads ORDER BY id"  # noqa: S608
            to_time = webkit_time
        else:
            return children
        for row in _rows(connection, query, budget=budget):
            children.append(
                _trace(
                    kind="download",
                    key=(1, row["id"]),
                    label=f"download-{row['id']}",
                    properties={
                        "download.application": "chrome",
                        "download.path": row["path"],
                        "download.url": row["url"],
                        "download.startedOn": to_time(row["start_time"]),
                        "download.finishedOn": to_time(row["end_time"]),
                        "download.receivedBytes": row["received_bytes"],
                        "download.totalBytes": row["total_bytes"],
                        "download.state": row["state"],
                    },
                )
            )
        return children

    @staticmethod
    def _firefox(connection, *, tables: dict[str, set[str]], budget: Budget) -> list[ChildTrace]:
        children = []
        for row in _rows(
            connection,
            "SELECT v.id AS id, p.url AS url, p.title AS title, v.visit_date AS visit_date,"
            " p.visit_count AS visit_count, v.visit_type AS visit_type"
            " FROM moz_historyvisits v LEFT JOIN moz_places p ON p.id = v.place_id ORDER BY v.id",
            budget=budget,
        ):
            children.append(
                _trace(
                    kind="browserHistory",
                    key=(0, row["id"]),
                    label=f"visit-{row['id']}",
                    properties={
                        "browserHistory.application": "firefox",
                        "browserHistory.url": row["url"],
                        "browserHistory.title": clean_text(row["title"]),
                        "browserHistory.accessedOn": unix_microseconds(row["visit_date"]),
                        "browserHistory.visitCount": row["visit_count"],
                        "browserHistory.transition": row["visit_type"],
                    },
                )
            )
        if "moz_downloads" in tables:  # Firefox 3-20 kept downloads in places.sqlite for some builds
            for row in _rows(
                connection,
                "SELECT id, target AS path, source AS url, startTime, endTime, currBytes, maxBytes, state"
                " FROM moz_downloads ORDER BY id",
                budget=budget,
            ):
                children.append(
                    _trace(
                        kind="download",
                        key=(1, row["id"]),
                        label=f"download-{row['id']}",
                        properties={
                            "download.application": "firefox",
                            "download.path": row["path"],
                            "download.url": row["url"],
                            "download.startedOn": unix_microseconds(row["startTime"]),
                            "download.finishedOn": unix_microseconds(row["endTime"]),
                            "download.receivedBytes": row["currBytes"],
                            "download.totalBytes": row["maxBytes"],
                            "download.state": row["state"],
                        },
                    )
                )
        if "moz_bookmarks" in tables:
            for row in _rows(
                connection,
                "SELECT b.id AS id, b.title AS title, p.url AS url, b.dateAdded AS added,"
                " b.lastModified AS modified, parent.title AS folder"
                " FROM moz_bookmarks b JOIN moz_places p ON p.id = b.fk"
                " LEFT JOIN moz_bookmarks parent ON parent.id = b.parent WHERE b.type = 1 ORDER BY b.id",
                budget=budget,
            ):
                children.append(
                    _trace(
                        kind="bookmark",
                        key=(2, row["id"]),
                        label=f"bookmark-{row['id']}",
                        properties={
                            "bookmark.application": "firefox",
                            "bookmark.url": row["url"],
                            "bookmark.title": clean_text(row["title"]),
                            "bookmark.folder": clean_text(row["folder"]),
                            "bookmark.createdOn": unix_microseconds(row["added"]),
                            "bookmark.modifiedOn": unix_microseconds(row["modified"]),
                        },
                    )
                )
        return children

    @staticmethod
    def _safari(connection, *, budget: Budget) -> list[ChildTrace]:
        return [
            _trace(
                kind="browserHistory",
                key=(0, row["id"]),
                label=f"visit-{row['id']}",
                properties={
                    "browserHistory.application": "safari",
                    "browserHistory.url": row["url"],
                    "browserHistory.title": clean_text(row["title"]),
                    "browserHistory.accessedOn": cocoa_time(row["visit_time"]),
                    "browserHistory.visitCount": row["visit_count"],
                },
            )
            for row in _rows(
                connection,
                "SELECT v.id AS id, i.url AS url, v.title AS title, v.visit_time AS visit_time,"
                " i.visit_count AS visit_count"
                " FROM history_visits v LEFT JOIN history_items i ON i.id = v.history_item ORDER BY v.id",
                budget=budget,
            )
        ]


def _unix_seconds(value: Any) -> str | None:
    return _since(_UNIX_EPOCH, seconds=value) if isinstance(value, int | float) and value > 0 else None
