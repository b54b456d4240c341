"""The trace query language (DESIGN.md §7, docs/query.md): one parser and one AST; each backend compiles the AST
itself (search/backends/sql/compiler.py, search/backends/elasticsearch/compiler.py)."""

from search.query.ast import And, Field, Node, Not, Or, Range, Text, to_query_string
from search.query.parser import MAX_DEPTH, MAX_QUERY_BYTES, QuerySyntaxError, parse_query

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_BYTES",
    "And",
    "Field",
    "Node",
    "Not",
    "Or",
    "QuerySyntaxError",
    "Range",
    "Text",
    "parse_query",
    "to_query_string",
]
