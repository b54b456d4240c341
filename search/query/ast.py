"""The query language's syntax tree (DESIGN.md §7): one AST that every search backend compiles.

Nodes are frozen dataclasses, so two parses of the same query compare equal and can be cached or
hashed. Each node checks its own invariants on construction; a node that exists can always be printed
by :func:`to_query_string`, and the printed string parses back to an equal node.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from search.query.wildcard import wildcard_limit_error

# A property value as the query spells it: bare numbers, ISO dates and true/false are typed, the rest
# (and anything in quotes) is a string.
Value = str | int | float | bool | date | datetime
Bound = int | float | date | datetime | str | None

# Fields that are not properties: they address the trace itself rather than ``trace.properties``.
# hashset, knownGood and knownBad: the organisation's hash sets that hold the trace's content (issue #20).
KNOWN_FIELDS = frozenset({"knownGood", "knownBad"})
SPECIAL_FIELDS = frozenset({"type", "tag", "evidence", "deleted", "hashset"}) | KNOWN_FIELDS
# has:errors, the traces a tool failed on (issue #20, ui-search); a field of its own line, for merging.
SPECIAL_FIELDS = SPECIAL_FIELDS | frozenset({"has"})
HAS_VALUES = frozenset({"errors"})
TRACE_FIELDS = frozenset({"name", "path", "uid", "text"})
TOP_LEVEL_FIELDS = SPECIAL_FIELDS | TRACE_FIELDS
# Fields whose values are always words: ``name:2020`` looks for a name, not the number 2020.
STRING_FIELDS = frozenset({"type", "tag", "name", "path", "uid", "text", "hashset"})

MATCH_OPERATORS = (":", "=")
COMPARISON_OPERATORS = ("<", "<=", ">", ">=")
OPERATORS = MATCH_OPERATORS + COMPARISON_OPERATORS

# Properties are ``<type>.<property>`` in camelCase, possibly deeper (``picture.exif.Make``).
FIELD_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
FIELD_NAME_RE = re.compile(FIELD_NAME)
# A property's own name: a type and at least one dotted part (``file.modifiedOn``), as the search page
# and the API accept for a date histogram or a column.
PROPERTY_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+")
WILDCARD_CHARACTERS = frozenset("*?")

# Longs are what Elasticsearch and SQL store; a longer run of digits (a hash, an account number) is
# more useful kept as the string the detective typed.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_INTEGER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)


class ValueTypeError(ValueError):
    """A bare value has the shape of a date but is not one (``2020-13-01``)."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(f"{message}; {hint}")
        self.message = message
        self.hint = hint


def typed_value(text: str) -> Value:
    """The value a bare (unquoted, unescaped) word stands for: int, float, date, datetime, bool or str.

    Raises :class:`ValueTypeError` for words shaped like a date or time that name none, because a
    detective who typed ``2020-02-30`` meant a date and should hear it is wrong rather than search
    for the string.
    """
    if text in ("true", "false"):
        return text == "true"
    if _INTEGER_RE.fullmatch(text):
        number = int(text)
        return number if INT64_MIN <= number <= INT64_MAX else text
    if _DECIMAL_RE.fullmatch(text):
        decimal = float(text)
        return decimal if math.isfinite(decimal) else text
    if _DATE_RE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueTypeError(f"'{text}' is not a valid date", hint="write dates as YYYY-MM-DD") from None
    if _DATETIME_RE.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueTypeError(
                f"'{text}' is not a valid date and time", hint="write YYYY-MM-DDThh:mm:ss, optionally with Z or +hh:mm"
            ) from None
    return text


def format_value(value: Value) -> str:
    """A typed value as a bare word (bool before int: ``True`` is an ``int`` too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, date):  # datetime is a date as well
        return value.isoformat()
    return value


def _check_typed_value(value: object, *, what: str) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{what}: {value} does not fit a 64-bit integer")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: {value} is not a finite number")
        return
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and offset % timedelta(minutes=1):
            raise ValueError(f"{what}: time zone offsets must be whole minutes")
        return
    if isinstance(value, date):
        return
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{what}: empty string")
        return
    raise ValueError(f"{what}: {type(value).__name__} is not a query value")


# Longest property name a query may use: the longest the case records for completion (search.models).
MAX_PROPERTY_NAME_CHARS = 200


def property_name_error(name: str) -> str | None:
    """Why ``name`` is not a property name a query or a request may use, or None when it is one.

    Beyond the grammar (``segment {"." segment}``): no ``__``, which the ORM would read as a lookup
    (``file__size`` or ``file.size__gt`` must never reach a query as anything but an unknown name), and no
    more than :data:`MAX_PROPERTY_NAME_CHARS` characters.
    """
    if not FIELD_NAME_RE.fullmatch(name):
        return f"'{name[:60]}' is not a property name"
    if "__" in name:
        return f"'{name[:60]}' is not a property name: it may not contain '__'"
    if len(name) > MAX_PROPERTY_NAME_CHARS:
        return f"a property name may be at most {MAX_PROPERTY_NAME_CHARS} characters long"
    return None


def _check_field_name(name: str) -> None:
    if error := property_name_error(name):
        raise ValueError(error)
    if "." not in name and name not in TOP_LEVEL_FIELDS:
        raise ValueError(f"{name!r} is neither a property (type.property) nor one of {sorted(TOP_LEVEL_FIELDS)}")


def _kind(value: Bound) -> str:
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):
        return "date"
    return "word"


@dataclass(frozen=True, slots=True)
class Text:
    """Full text over names, paths, properties and text streams: a word, a "phrase" or a wild*card."""

    term: str
    phrase: bool = False
    wildcard: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.term, str) or not self.term:
            raise ValueError("a text term is a non-empty string")
        if self.phrase and self.wildcard:
            raise ValueError("a phrase matches literally; it cannot also be a wildcard")
        if self.wildcard and not WILDCARD_CHARACTERS & set(self.term):
            raise ValueError("a wildcard term needs a * or ?")
        if self.wildcard and (limit := wildcard_limit_error(self.term)):
            raise ValueError(limit)


@dataclass(frozen=True, slots=True)
class Field:
    """``name op value``: ``type:email``, ``file.size>1000``, ``email.from:"a@example.org"``.

    ``:`` matches (words in text, any case), ``=`` is an exact match; the comparisons order numbers,
    dates and words. ``phrase`` means the value was quoted, ``wildcard`` that ``*``/``?`` in it match
    any characters.
    """

    name: str
    value: Value
    op: str = ":"
    phrase: bool = False
    wildcard: bool = False

    def __post_init__(self) -> None:
        _check_field_name(self.name)
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}")
        _check_typed_value(self.value, what=self.name)
        if (self.phrase or self.wildcard) and not isinstance(self.value, str):
            raise ValueError("only strings are phrases or wildcards")
        if self.phrase and self.wildcard:
            raise ValueError("a phrase matches literally; it cannot also be a wildcard")
        if self.wildcard:
            if self.op not in MATCH_OPERATORS:
                raise ValueError(f"wildcards cannot be compared with {self.op!r}")
            if not WILDCARD_CHARACTERS & set(self.value):
                raise ValueError("a wildcard value needs a * or ?")
            if limit := wildcard_limit_error(self.value):
                raise ValueError(limit)
        if self.name in SPECIAL_FIELDS and self.op not in MATCH_OPERATORS:
            raise ValueError(f"{self.name}: cannot be compared with {self.op!r}")
        if self.name == "text" and self.op not in MATCH_OPERATORS:
            raise ValueError("text: cannot be compared")
        if self.name in STRING_FIELDS and not isinstance(self.value, str):
            raise ValueError(f"{self.name}: takes a word")
        if self.name == "evidence" and (self.phrase or self.wildcard or not _is_canonical_uuid(self.value)):
            raise ValueError("evidence: takes a canonical (lower-case, hyphenated) UUID")
        if self.name == "deleted" and not isinstance(self.value, bool):
            raise ValueError("deleted: takes true or false")
        if self.name == "has" and (self.wildcard or self.value not in HAS_VALUES):
            raise ValueError(f"has: takes {', '.join(sorted(HAS_VALUES))}")
        if self.name in KNOWN_FIELDS and not isinstance(self.value, bool):
            raise ValueError(f"{self.name}: takes true or false")


@dataclass(frozen=True, slots=True)
class Range:
    """``name:[low TO high]`` (``[]`` include the bound, ``{}`` exclude it; ``*`` or None is open)."""

    name: str
    low: Bound
    high: Bound
    include_low: bool = True
    include_high: bool = True

    def __post_init__(self) -> None:
        _check_field_name(self.name)
        if self.name in SPECIAL_FIELDS or self.name == "text":
            raise ValueError(f"{self.name}: cannot take a range")
        kinds = set()
        for bound in (self.low, self.high):
            if bound is None:
                continue
            if isinstance(bound, bool):
                raise ValueError("true and false have no range")
            _check_typed_value(bound, what=self.name)
            kinds.add(_kind(bound))
        if len(kinds) > 1:
            raise ValueError("both bounds of a range must be numbers, both dates or both words")


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple) or len(self.items) < 2:
            raise ValueError("And joins a tuple of two or more nodes")


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple) or len(self.items) < 2:
            raise ValueError("Or joins a tuple of two or more nodes")


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Text | Field | Range | And | Or | Not


def canonical_uuid(text: str) -> str:
    """The lower-case hyphenated form of a UUID; ValueError when ``text`` is none."""
    return str(uuid.UUID(text))


def _is_canonical_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and value == canonical_uuid(value)
    except ValueError:
        return False


# -- printing -------------------------------------------------------------------------------------

# Characters that end or change a bare word wherever they appear; the printer escapes them.
_ALWAYS_ESCAPED = frozenset('\\()"')
# At the start of a term they would open a range, a negation or (after < or >) change the operator.
_ESCAPED_FIRST_IN_TEXT = frozenset("-[{")
_ESCAPED_FIRST_IN_VALUE = frozenset("[{=")
# In a full-text word these would turn ``name:...`` into a field.
_ESCAPED_IN_TEXT = frozenset(":<>=")
_WORD_OPERATORS = frozenset({"AND", "OR", "NOT"})
_BARE_BOUND_RE = re.compile(r'[^\s\[\]{}"\\]+')


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape_word(text: str, *, wildcard: bool, in_value: bool) -> str:
    escaped_first = _ESCAPED_FIRST_IN_VALUE if in_value else _ESCAPED_FIRST_IN_TEXT
    out = []
    for position, character in enumerate(text):
        needs_escape = (
            character in _ALWAYS_ESCAPED
            or character.isspace()
            or (character in WILDCARD_CHARACTERS and not wildcard)
            or (position == 0 and character in escaped_first)
            or (not in_value and character in _ESCAPED_IN_TEXT)
        )
        out.append("\\" + character if needs_escape else character)
    word = "".join(out)
    if not in_value and word in _WORD_OPERATORS:
        word = "\\" + word
    return word


def _looks_typed(text: str) -> bool:
    """Whether a bare word would be read as something other than this very string."""
    try:
        return not isinstance(typed_value(text), str)
    except ValueTypeError:
        return True


def _format_field_value(field: Field) -> str:
    if not isinstance(field.value, str):
        return format_value(field.value)
    if field.phrase:
        return quote(field.value)
    word = _escape_word(field.value, wildcard=field.wildcard, in_value=True)
    if not field.wildcard and field.name not in STRING_FIELDS and _looks_typed(field.value):
        # Escaping the first character keeps ``file.name:\2020`` the string it was.
        word = "\\" + word
    return word


def _format_bound(bound: Bound) -> str:
    if bound is None:
        return "*"
    if not isinstance(bound, str):
        return format_value(bound)
    if _BARE_BOUND_RE.fullmatch(bound) and bound not in ("TO", "*") and not _looks_typed(bound):
        return bound
    return quote(bound)


def to_query_string(node: Node) -> str:
    """The canonical query text for ``node``; ``parse_query(to_query_string(node)) == node``.

    Canonical means: implicit AND (a space), ``OR`` in capitals, ``-`` for NOT, parentheses only
    where the tree needs them, and nested groups of the same kind kept as the tree has them.
    """
    if isinstance(node, Text):
        if node.phrase:
            return quote(node.term)
        return _escape_word(node.term, wildcard=node.wildcard, in_value=False)
    if isinstance(node, Field):
        return f"{node.name}{node.op}{_format_field_value(node)}"
    if isinstance(node, Range):
        opening = "[" if node.include_low else "{"
        closing = "]" if node.include_high else "}"
        return f"{node.name}:{opening}{_format_bound(node.low)} TO {_format_bound(node.high)}{closing}"
    if isinstance(node, Not):
        inner = to_query_string(node.item)
        return "-" + (f"({inner})" if isinstance(node.item, And | Or) else inner)
    if isinstance(node, And):
        return " ".join(
            f"({to_query_string(item)})" if isinstance(item, And | Or) else to_query_string(item) for item in node.items
        )
    if isinstance(node, Or):
        return " OR ".join(
            f"({to_query_string(item)})" if isinstance(item, Or) else to_query_string(item) for item in node.items
        )
    raise TypeError(f"not a query node: {node!r}")


def narrowed(node: Node | None, clause: Node, *, replacing=None) -> str:
    """``node`` AND ``clause`` as query text (a facet click, a timeline zoom). Top-level items for which
    ``replacing(item)`` is true are dropped first, so a new date range takes the place of the old one."""
    items = node.items if isinstance(node, And) else ((node,) if node is not None else ())
    kept = tuple(item for item in items if not (replacing and replacing(item)))
    return to_query_string(And((*kept, clause)) if kept else clause)


# The fields a click on a facet narrows by (extension and MIME type are narrowed by their own clauses).
FACET_FIELDS = {"type": "type", "evidence": "evidence", "deleted": "deleted", "tag": "tag", "hashset": "hashset"}


def narrowed_to_facet(node: Node | None, *, facet: str, value: object) -> str:
    """The query narrowed to one facet value, as a click on the facet does; built as a query tree, so
    a value read from evidence (``foo)``, a quote) cannot break the query's syntax."""
    clause: Node
    if facet == "extension":
        clause = Field("name", f"*.{value}", wildcard=True)
    elif facet == "mimeType":
        # Exact, as the facet counts the exact value (":" would also match text/x-c++ for text/x-c).
        clause = Field("file.mimeType", str(value), op="=", phrase=True)
    else:
        clause = Field(FACET_FIELDS[facet], str(value) if facet == "evidence" else value)
    return narrowed(node, clause)


def depth(node: Node) -> int:
    """How deeply ``node`` nests: 1 for a term, plus one per NOT, AND and OR around it."""
    if isinstance(node, Not):
        return 1 + depth(node.item)
    if isinstance(node, And | Or):
        return 1 + max(depth(item) for item in node.items)
    return 1
