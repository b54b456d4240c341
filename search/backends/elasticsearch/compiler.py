"""The query AST compiled to Elasticsearch 8/9 through ``elasticsearch.dsl`` (DESIGN.md §7), over the
index that documents.py lays out: the query (:func:`compile_query`), the request with its sort, facets and
highlights (:func:`search_body`), and the facets read back (:func:`read_facets`).

Semantics the other backends share (docs/query.md): ``:`` on words matches words in any case, ``=``
matches the exact value, a bare date means the whole day, and wildcards on ``:`` ignore case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, cast

from elasticsearch.dsl import Q, Search
from elasticsearch.dsl.query import Query

from search.backends.base import FACETS
from search.query.ast import (
    COMPARISON_OPERATORS,
    MATCH_OPERATORS,
    And,
    Field,
    Node,
    Not,
    Or,
    Range,
    Text,
    Value,
    format_value,
)
from search.query.streams import stream_property

# Full text looks at what a detective would call "the trace": its name first, then path, string
# properties and the text stream.
FULL_TEXT_FIELDS = ("name^2", "path", "metadata", "text")
# A wildcard pattern is matched against whole names and paths as well as against the words of the
# analysed fields, so *.jpg finds photo.jpg and pass* finds "password" inside a document.
WILDCARD_FIELDS = ("name.keyword", "path.keyword", "metadata", "text")
HIGHLIGHT_FIELDS = ("name", "path", "text")

_TERMS_FACET_FIELDS = {
    "type": "types",
    "mimeType": "properties.file.mimeType",
    "extension": "extension",
    "tag": "tags",
    "evidence": "evidence",
    "deleted": "deleted",
    "hashset": "hashsets",
}
DATE_INTERVALS = ("year", "quarter", "month", "week", "day", "hour")
MAX_PAGE_SIZE = 1000

_COMPARISON_KEYS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_KEYWORD_FIELDS = {
    "type": "types",
    "tag": "tags",
    "evidence": "evidence",
    "deleted": "deleted",
    "uid": "uid",
    "hashset": "hashsets",
}
# knownGood:true and knownBad:true: the kinds of the hash sets holding the trace (documents.py, "known").
_KNOWN_KINDS = {"knownGood": "known-good", "knownBad": "known-bad"}


# -- the query --------------------------------------------------------------------------------------


def compile_query(node: Node) -> Query:
    """The Elasticsearch query for ``node``, as an ``elasticsearch.dsl`` object (``.to_dict()`` for JSON)."""
    if isinstance(node, Text):
        return _text(node)
    if isinstance(node, Field):
        return _field(node)
    if isinstance(node, Range):
        return _range(node)
    if isinstance(node, Not):
        return Q("bool", must_not=[compile_query(node.item)])
    if isinstance(node, And):
        # NOTs inside an AND become its must_not, the way Elasticsearch itself writes "a -b".
        must = [compile_query(item) for item in node.items if not isinstance(item, Not)]
        must_not = [compile_query(item.item) for item in node.items if isinstance(item, Not)]
        clauses: dict[str, Any] = {}
        if must:
            clauses["must"] = must
        if must_not:
            clauses["must_not"] = must_not
        return Q("bool", **clauses)
    if isinstance(node, Or):
        return Q("bool", should=[compile_query(item) for item in node.items], minimum_should_match=1)
    raise TypeError(f"not a query node: {node!r}")


def _text(node: Text) -> Query:
    if node.wildcard:
        return Q(
            "bool",
            should=[_wildcard(field, node.term, case_insensitive=True) for field in WILDCARD_FIELDS],
            minimum_should_match=1,
        )
    if node.phrase:
        return Q("multi_match", query=node.term, fields=list(FULL_TEXT_FIELDS), type="phrase")
    return Q("multi_match", query=node.term, fields=list(FULL_TEXT_FIELDS), operator="and")


def _field(node: Field) -> Query:
    name, value, op = node.name, node.value, node.op
    if name in ("type", "tag", "hashset"):
        field = _KEYWORD_FIELDS[name]
        # Hash set names are matched in any case, whatever the operator (as in SQL).
        case_insensitive = op == ":" or name == "hashset"
        if node.wildcard:
            return _wildcard(field, _wildcard_pattern(node), case_insensitive=case_insensitive)
        return _term(field, value, case_insensitive=case_insensitive)
    if name in _KNOWN_KINDS:
        known = _term("known", _KNOWN_KINDS[name])
        return known if value else Q("bool", must_not=[known])
    if name in ("evidence", "deleted"):
        return _term(_KEYWORD_FIELDS[name], value)
    if name == "has":  # has:errors (the one value the AST lets through)
        return _term("has_errors", True)
    if name == "uid":
        if op in COMPARISON_OPERATORS:
            return Q("range", uid={_COMPARISON_KEYS[op]: value})
        return _wildcard("uid", _wildcard_pattern(node)) if node.wildcard else _term("uid", value)
    if name in ("name", "path", "text"):
        return _text_field(node, analysed=name, exact=f"{name}.keyword" if name != "text" else "text")
    return _property(node)


def _text_field(node: Field, *, analysed: str, exact: str) -> Query:
    """``name``, ``path`` and ``text``: words in the analysed field, exact values in the keyword."""
    value, op = node.value, node.op
    if op in COMPARISON_OPERATORS:
        return Q("range", **{exact: {_COMPARISON_KEYS[op]: value}})
    if exact == analysed:
        # The text stream has no exact form (it is too long to keep whole): = is the phrase, and
        # wildcards meet its lower-cased words, so case cannot matter.
        if node.wildcard:
            return _wildcard(analysed, _wildcard_pattern(node), case_insensitive=True)
        if op == "=" or node.phrase:
            return Q("match_phrase", **{analysed: value})
    if node.wildcard:
        return _wildcard(exact, _wildcard_pattern(node), case_insensitive=op == ":")
    if op == "=":
        return _term(exact, value)
    if node.phrase:
        return Q("match_phrase", **{analysed: value})
    return Q("match", **{analysed: {"query": value, "operator": "and"}})


def _property(node: Field) -> Query:
    field = property_field(node.name)
    value, op = node.value, node.op
    stream = stream_property(node.name)
    if stream is not None and stream.is_hash and op in MATCH_OPERATORS:
        # A hash is one keyword, indexed lower-case: ":" and "=" both mean the whole hash, in any case.
        if node.wildcard:
            return _wildcard(field, str(value), case_insensitive=True)
        return _term(field, str(value).lower())
    if op in COMPARISON_OPERATORS:
        return Q("range", **{field: {_COMPARISON_KEYS[op]: _bound_json(value)}})
    if isinstance(value, str):
        if node.wildcard:
            return _wildcard(field, value, case_insensitive=op == ":")
        if op == "=":
            return _term(field, value)
        if node.phrase:
            return Q("match_phrase", **{f"{field}.text": value})
        return Q("match", **{f"{field}.text": {"query": value, "operator": "and"}})
    if isinstance(value, date) and not isinstance(value, datetime):
        # A day is a span: file.modifiedOn:2020-01-01 is any time on that day.
        day = f"{value.isoformat()}||/d"
        return Q("range", **{field: {"gte": day, "lte": day}})
    if isinstance(value, bool) or op == "=":
        return _term(field, _json(value))
    if isinstance(value, int | float):
        # The property may be a number or a string holding one (a subject "2020"): try both.
        return Q(
            "bool",
            should=[_term(field, value), Q("match", **{f"{field}.text": {"query": format_value(value)}})],
            minimum_should_match=1,
        )
    return _term(field, _json(value))


def _range(node: Range) -> Query:
    field = _range_field(node.name)
    if node.low is None and node.high is None:
        return Q("exists", field=field)
    bounds: dict[str, Any] = {}
    if node.low is not None:
        op = ">=" if node.include_low else ">"
        bounds[_COMPARISON_KEYS[op]] = _bound_json(node.low)
    if node.high is not None:
        op = "<=" if node.include_high else "<"
        bounds[_COMPARISON_KEYS[op]] = _bound_json(node.high)
    return Q("range", **{field: bounds})


def property_field(name: str) -> str:
    """Where a property lives in the index: ``file.size`` → ``properties.file.size``."""
    return f"properties.{name}"


def _range_field(name: str) -> str:
    if name in ("name", "path"):
        return f"{name}.keyword"
    if name == "uid":
        return "uid"
    return property_field(name)


def _bound_json(value: Value) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        # Date math rounding makes a bare date mean its whole day on every side: Elasticsearch rounds
        # "||/d" up for gt and lte and down for gte and lt, so > 2020-01-01 starts the next day and
        # <= 2020-01-01 ends at its last millisecond.
        return f"{value.isoformat()}||/d"
    return _json(value)


def _json(value: Value) -> Any:
    if isinstance(value, date):  # and datetime: naive times are read as UTC by Elasticsearch
        return value.isoformat()
    return value


def _term(field: str, value: Any, *, case_insensitive: bool = False) -> Query:
    if case_insensitive:
        return Q("term", **{field: {"value": value, "case_insensitive": True}})
    return Q("term", **{field: value})


def _wildcard_pattern(node: Field) -> str:
    """The pattern of a wildcard ``node``: a string, as ``Field`` allows wildcards on strings only."""
    return cast(str, node.value)  # Field.__post_init__ refuses a wildcard whose value is not a string


def _wildcard(field: str, pattern: str, *, case_insensitive: bool = False) -> Query:
    body: dict[str, Any] = {"value": pattern}
    if case_insensitive:
        body["case_insensitive"] = True
    return Q("wildcard", **{field: body})


# -- the request ------------------------------------------------------------------------------------


def search_body(
    node: Node | None,
    *,
    case_id: object,
    facets: Sequence[str] = (),
    sort: Sequence[str] = (),
    size: int = 50,
    search_after: Sequence[Any] | None = None,
    offset: int = 0,
    date_property: str = "file.modifiedOn",
    date_interval: str = "month",
    facet_size: int = 20,
    highlight: bool = True,
    track_total_hits: int | bool = True,
) -> dict[str, Any]:
    """The ``_search`` body for one page of a case's hits, with the requested facets.

    ``track_total_hits`` True counts every hit; a number stops counting there (the total's relation is
    then ``gte``). Aggregations count every hit either way.

    ``node`` None searches everything in the case. ``sort`` names fields, ``-`` first for descending
    (``["-file.modifiedOn", "name"]``); the uid always breaks ties so ``search_after`` (the last hit's
    ``sort`` values) pages without gaps or repeats. The case filter is a filter, so it never changes
    the ranking and Elasticsearch can cache it.
    """
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"size must be between 0 and {MAX_PAGE_SIZE}")
    query = compile_query(node) if node is not None else Q("match_all")
    search = Search().query(Q("bool", must=[query], filter=[Q("term", case=str(case_id))]))
    search = search.sort(*sort_clauses(sort))
    extra: dict[str, Any] = {"size": size, "track_total_hits": track_total_hits}
    if search_after:
        extra["search_after"] = list(search_after)
    elif offset:
        extra["from"] = offset
    search = search.extra(**extra)
    for facet in facets:
        _add_facet(search, facet, date_property=date_property, date_interval=date_interval, facet_size=facet_size)
    if highlight:
        search = search.highlight(*HIGHLIGHT_FIELDS, fragment_size=150, number_of_fragments=3)
    return search.to_dict()


def sort_clauses(sort: Sequence[str]) -> list[dict[str, Any]]:
    """``["-file.size", "name"]`` as Elasticsearch sort clauses, ended by the uid as the tie breaker."""
    clauses: list[dict[str, Any]] = []
    for spec in sort or ("_score",):
        descending = spec.startswith("-")
        name = spec.removeprefix("-")
        if name == "_score":
            # Relevance is best first unless asked otherwise.
            clauses.append({"_score": {"order": "asc" if descending else "desc"}})
            continue
        clauses.append({_sort_field(name): _sort_options(name, descending=descending)})
    if not any("uid" in clause for clause in clauses):
        clauses.append({"uid": {"order": "asc"}})
    return clauses


def _sort_field(name: str) -> str:
    if name == "ordinal":
        return "ordinal"
    if name == "id":
        return "sequence"  # the trace's database id
    if name in ("name", "path"):
        return f"{name}.keyword"
    if name in _KEYWORD_FIELDS:
        return _KEYWORD_FIELDS[name]
    if name == "text" or "." not in name:
        raise ValueError(f"cannot sort by {name!r}")
    return property_field(name)


def _sort_options(name: str, *, descending: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"order": "desc" if descending else "asc"}
    if "." in name:
        # A property no trace has yet is unmapped; without a stand-in type the whole search fails.
        options["unmapped_type"] = "keyword"
    return options


def _add_facet(search: Search, facet: str, *, date_property: str, date_interval: str, facet_size: int) -> None:
    if facet in _TERMS_FACET_FIELDS:
        search.aggs.bucket(facet, "terms", field=_TERMS_FACET_FIELDS[facet], size=facet_size)
    elif facet == "date":
        if "." not in date_property:
            raise ValueError(f"the date histogram needs a date property such as file.modifiedOn, not {date_property!r}")
        if date_interval not in DATE_INTERVALS:
            raise ValueError(f"date_interval must be one of {', '.join(DATE_INTERVALS)}")
        search.aggs.bucket(
            "date",
            "date_histogram",
            field=property_field(date_property),
            calendar_interval=date_interval,
            min_doc_count=1,
        )
    else:
        raise ValueError(f"unknown facet {facet!r}; facets are {', '.join(FACETS)}")


def read_facets(aggregations: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A response's ``aggregations`` as ``{facet: [{"value": …, "count": …}, …]}``.

    Date buckets carry the interval's start as an ISO date (``key_as_string``) rather than epoch ms.
    """
    facets: dict[str, list[dict[str, Any]]] = {}
    for facet, result in aggregations.items():
        facets[facet] = [
            {"value": bucket.get("key_as_string", bucket["key"]), "count": bucket["doc_count"]}
            for bucket in result.get("buckets", [])
        ]
    return facets
