"""Facet counts of the SQL backend: grouped from the temporary hits table, or a whole case's traces by index.

Facets group by indexed columns the database keeps itself (``extension``, ``mime_type``), types by the
JSON list of each trace (few combinations: counted per combination, then per type), tags by the tag table,
hash sets by the traces' marks,
and the date histogram by a prefix of an ISO date property (days, rolled up into months or years).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.db.backends.utils import CursorWrapper

from search.backends.base import DATE_INTERVALS, auto_date_interval
from search.backends.sql.compiler import property_sql

# Facets counted by grouping one column of the matching traces.
_COLUMN_FACETS = {"mimeType": "mime_type", "extension": "extension", "evidence": "evidence_id", "deleted": "deleted"}
_EMPTY_VALUES = {"mimeType": "", "extension": ""}
# ISO-8601 prefixes: 2019 | 2019-03 | 2019-03-07 | 2019-03-07T10.
_DATE_PREFIX = {"year": 4, "month": 7, "day": 10, "hour": 13}
_DATE_KEY = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2})?)?)?$")


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# A column facet's values as the API gives them: evidence ids as UUIDs, deleted as booleans, others as strings.
_FACET_VALUE_TYPES: dict[str, Callable[[Any], object]] = {"deleted": bool, "evidence": _as_uuid}


def _bucket_start(prefix: str) -> str:
    """``2019`` → ``2019-01-01``, ``2019-03`` → ``2019-03-01``, ``2019-03-07T10`` → ``2019-03-07T10:00``."""
    if len(prefix) == 4:
        return f"{prefix}-01-01"
    if len(prefix) == 7:
        return f"{prefix}-01"
    if len(prefix) == 13:
        return f"{prefix}:00"
    return prefix


class FacetSource:
    """Facet counts over rows of one table: the temporary hits table, or a whole case's traces."""

    def __init__(self, *, cursor: CursorWrapper, table: str, where: str, params: list) -> None:
        self.cursor, self.table, self.params = cursor, table, params
        self.where = f"WHERE {where}" if where else ""

    def _and(self, condition: str) -> str:
        return f"{self.where} AND {condition}" if self.where else f"WHERE {condition}"

    def _rows(self, sql: str, params: list) -> list[tuple]:
        self.cursor.execute(sql, params)
        return self.cursor.fetchall()

    def facets(
        self, names: list[str], *, date_property: str, date_interval: str, from_properties: bool = False, top: int = 20
    ) -> tuple[dict[str, list[dict]], str | None]:
        facets: dict[str, list[dict]] = {}
        interval = None
        grouped = [name for name in names if name == "type" or name in _COLUMN_FACETS]
        if self.table != "search_trace" and len(grouped) > 1:
            # The hits table has no indexes: one grouping of all these columns reads it once, where one
            # grouping per facet would read and sort it once each.
            marks = (
                [name for name in names if name in ("tag", "hashset")] if self.cursor.db.vendor == "postgresql" else []
            )
            facets.update(self._grouped(grouped, marks=marks, top=top))
            names = [name for name in names if name not in grouped and name not in marks]
        for name in names:
            if name == "type":
                facets[name] = self._types(top=top)
            elif name == "tag":
                facets[name] = self._tags(top=top)
            elif name == "hashset":
                facets[name] = self._hash_sets(top=top)
            elif name == "date":
                expression, params = property_sql(date_property) if from_properties else ("_date", [])
                facets[name], interval = self._dates(expression, params, interval=date_interval)
            elif name in _COLUMN_FACETS:
                facets[name] = self._column(name, top=top)
        return facets, interval

    def _column(self, name: str, *, top: int) -> list[dict]:
        column = _COLUMN_FACETS[name]
        where = self._and(f"{column} <> ''") if name in _EMPTY_VALUES else self.where
        rows = self._rows(
            f"SELECT {column}, COUNT(*) FROM {self.table} {where} GROUP BY {column} "  # noqa: S608 (constants)
            f"ORDER BY COUNT(*) DESC, {column} LIMIT %s",
            [*self.params, top],
        )
        convert = _FACET_VALUE_TYPES.get(name, str)
        return [{"value": convert(value), "count": count} for value, count in rows if value is not None]

    def _grouped(self, names: list[str], *, marks: list[str], top: int) -> dict[str, list[dict]]:
        """The facets ``names`` from one grouping of the table; with ``marks`` (PostgreSQL: ``tag``,
        ``hashset``) those too, in the same statement: one round trip to the database, not three."""
        columns = ["types" if name == "type" else _COLUMN_FACETS[name] for name in names]
        listed = ", ".join(columns)
        # Rows: (the mark facet or NULL, its value, the grouping's columns, the count, the mark's rank).
        sql = f"SELECT NULL, NULL, {listed}, COUNT(*), NULL FROM {self.table} {self.where} GROUP BY {listed}"  # noqa: S608
        params = list(self.params)
        nulls = ", ".join(["NULL"] * len(columns))
        for mark in marks:
            counted, counted_params = self._tags_sql() if mark == "tag" else self._hash_sets_sql()
            name = "name" if mark == "tag" else "h.name"
            sql += (
                f" UNION ALL SELECT %s, marked.value, {nulls}, marked.count, marked.rank FROM ("  # noqa: S608 (constants)
                f"SELECT {name} AS value, COUNT(*) AS count, "
                f"row_number() OVER (ORDER BY COUNT(*) DESC, {name}) AS rank "
                f"{counted} GROUP BY {name} ORDER BY COUNT(*) DESC, {name} LIMIT %s) AS marked"
            )
            params += [mark, *counted_params, top]
        rows = self._rows(sql, params)
        facets: dict[str, list[dict]] = {}
        for mark in marks:
            ranked = sorted((row[-1], row[1], row[-2]) for row in rows if row[0] == mark)
            facets[mark] = [{"value": value, "count": count} for _, value, count in ranked]
        rows = [row[2:-1] for row in rows if row[0] is None]
        for position, name in enumerate(names):
            counts: dict = {}
            for row in rows:
                value, count = row[position], row[-1]
                if name == "type":
                    for type_name in set(json.loads(value) if isinstance(value, str) else value or []):
                        counts[type_name] = counts.get(type_name, 0) + count
                elif value is not None and not (name in _EMPTY_VALUES and value == _EMPTY_VALUES[name]):
                    counts[value] = counts.get(value, 0) + count
            convert = _FACET_VALUE_TYPES.get(name, str)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:top]
            facets[name] = [{"value": convert(value), "count": count} for value, count in ordered]
        return facets

    def _types(self, *, top: int) -> list[dict]:
        # Traces come in few combinations of types (["file"], ["file", "picture"], …): count each
        # combination by the (case, types) index, then each type over the combinations holding it.
        rows = self._rows(f"SELECT types, COUNT(*) FROM {self.table} {self.where} GROUP BY types", self.params)  # noqa: S608
        counts: dict[str, int] = {}
        for types, count in rows:
            listed = json.loads(types) if isinstance(types, str) else types
            for name in set(listed or []):
                counts[name] = counts.get(name, 0) + count
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        return [{"value": name, "count": count} for name, count in ordered]

    def _tags_sql(self) -> tuple[str, list]:
        """``FROM … WHERE …`` of the tags of the rows, each tag's rows having its ``name``."""
        if self.table == "search_trace":
            return "FROM search_tracetag WHERE case_id = %s", list(self.params)
        hits = f"SELECT id FROM {self.table}"  # noqa: S608 (our own table name)
        return f"FROM search_tracetag WHERE trace_id IN ({hits})", []

    def _tags(self, *, top: int) -> list[dict]:
        counted, params = self._tags_sql()
        rows = self._rows(
            f"SELECT name, COUNT(*) {counted} GROUP BY name ORDER BY COUNT(*) DESC, name LIMIT %s", [*params, top]
        )
        return [{"value": name, "count": count} for name, count in rows]

    def _hash_sets_sql(self) -> tuple[str, list]:
        """``FROM … WHERE …`` of the hash sets holding the rows' content, by their marks
        (search.hashset_marks: one row a trace and set), each set's rows having its ``name``."""
        marks = "search_tracehashmatch m JOIN hashsets_hashset h ON h.id = m.hash_set_id"
        if self.table == "search_trace":
            return f"FROM {marks} WHERE m.case_id = %s", list(self.params)
        hits = f"SELECT id FROM {self.table}"  # noqa: S608 (our own table name)
        return f"FROM {marks} WHERE m.trace_id IN ({hits})", []

    def _hash_sets(self, *, top: int) -> list[dict]:
        counted, params = self._hash_sets_sql()
        rows = self._rows(
            f"SELECT h.name, COUNT(*) {counted} GROUP BY h.name ORDER BY COUNT(*) DESC, h.name LIMIT %s", [*params, top]
        )
        return [{"value": name, "count": count} for name, count in rows]

    def _dates(self, expression: str, expression_params: list, *, interval: str) -> tuple[list[dict], str]:
        def buckets(width: int) -> list[tuple[str, int]]:
            rows = self._rows(
                f"SELECT substr({expression}, 1, {width}) AS d, COUNT(*) FROM {self.table} "  # noqa: S608 (constants)
                f"{self._and(f'{expression} IS NOT NULL')} GROUP BY d ORDER BY d",
                [*expression_params, *self.params, *expression_params],
            )
            # Values that are not ISO dates (a tool wrote something else) have no place on a timeline.
            return [(key, count) for key, count in rows if key and len(key) == width and _DATE_KEY.match(key)]

        by_day = buckets(10)
        if interval == "auto":
            interval = auto_date_interval(by_day[0][0], by_day[-1][0]) if by_day else "month"
        if interval not in DATE_INTERVALS:
            raise ValueError(f"date_interval must be auto or one of {', '.join(DATE_INTERVALS)}")
        if interval == "hour":
            counted = buckets(13)
        else:
            rolled: dict[str, int] = {}
            for key, count in by_day:
                rolled[key[: _DATE_PREFIX[interval]]] = rolled.get(key[: _DATE_PREFIX[interval]], 0) + count
            counted = sorted(rolled.items())
        return [{"value": _bucket_start(key), "count": count} for key, count in counted], interval
