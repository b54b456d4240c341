"""The query language's parser: a tokenizer and a recursive-descent parser over it (docs/query.md).

Precedence, loosest first: OR, then AND (also implied between terms), then NOT / ``-``. Every error is
a :class:`QuerySyntaxError` with the 1-based column of the character at fault, so the search box and
the API can point at it; nothing else escapes :func:`parse_query`, whatever the input.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from search.query.ast import (
    FIELD_NAME,
    KNOWN_FIELDS,
    MATCH_OPERATORS,
    SPECIAL_FIELDS,
    STRING_FIELDS,
    TOP_LEVEL_FIELDS,
    WILDCARD_CHARACTERS,
    And,
    Bound,
    Field,
    Node,
    Not,
    Or,
    Range,
    Text,
    ValueTypeError,
    canonical_uuid,
    property_name_error,
    typed_value,
)

# Both limits keep a hostile or pasted query from costing the parser (and the backend) much: 4 KiB
# is far beyond what a detective types, and 32 levels far beyond what anyone nests by hand.
MAX_QUERY_BYTES = 4096
MAX_DEPTH = 32

_FIELD_START_RE = re.compile(rf"({FIELD_NAME})(<=|>=|<|>|:|=)")
_WORD_OPERATORS = frozenset({"AND", "OR", "NOT"})
_TERM_STARTS = frozenset({"TERM", "(", "NOT", "-"})
_RANGE_CLOSERS = "]}"


class QuerySyntaxError(ValueError):
    """A query that does not parse.

    ``column`` is 1-based; ``str(error)`` reads "<message> at column N" and then, when there is one,
    "; <hint>" with what to write instead.
    """

    def __init__(self, message: str, column: int, *, hint: str = "") -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column
        self.hint = hint

    def __str__(self) -> str:
        located = f"{self.message} at column {self.column}"
        return f"{located}; {self.hint}" if self.hint else located


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "TERM", "(", ")", "AND", "OR", "NOT", "-" or "END"
    column: int
    node: Node | None = None


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    end: int
    escaped: bool  # any backslash escape: the word is then never typed nor an operator
    wildcard: bool  # an unescaped * or ?


def parse_query(query: str) -> Node:
    """Parse ``query`` into an AST; raise :class:`QuerySyntaxError` when it is not a valid query."""
    if not isinstance(query, str):
        raise TypeError("a query is a string")
    _check_length(query)
    tokens = _Tokenizer(query).tokens()
    return _Parser(tokens).parse()


def _check_length(query: str) -> None:
    total = 0
    for index, character in enumerate(query):
        # surrogatepass: a lone surrogate (possible in a str, not in UTF-8) must not raise here.
        total += len(character.encode("utf-8", "surrogatepass"))
        if total > MAX_QUERY_BYTES:
            raise QuerySyntaxError(f"the query is too long (the limit is {MAX_QUERY_BYTES} bytes)", index + 1)


class _Tokenizer:
    def __init__(self, query: str) -> None:
        self.query = query
        self.length = len(query)

    def tokens(self) -> list[_Token]:
        query, tokens, position = self.query, [], 0
        while position < self.length:
            character = query[position]
            column = position + 1
            if character.isspace():
                position += 1
            elif character in "()":
                tokens.append(_Token(character, column))
                position += 1
            elif character == "-":
                following = query[position + 1] if position + 1 < self.length else ""
                if not following or following.isspace() or following == ")":
                    raise QuerySyntaxError("expected something to exclude after '-'", column + 1)
                tokens.append(_Token("-", column))
                position += 1
            elif character == '"':
                text, position = self._quoted(position)
                tokens.append(_Token("TERM", column, Text(text, phrase=True)))
            elif character in "[{":
                closing = "]" if character == "[" else "}"
                raise QuerySyntaxError(
                    "a range needs a property before it", column, hint=f"like file.size:{character}100 TO 2000{closing}"
                )
            elif match := _FIELD_START_RE.match(query, position):
                node, position = self._field(match)
                tokens.append(_Token("TERM", column, node))
            else:
                word = self._word(position)
                position = word.end
                if not word.escaped and word.text in _WORD_OPERATORS:
                    tokens.append(_Token(word.text, column))
                else:
                    tokens.append(_Token("TERM", column, _build(Text, column, word.text, wildcard=word.wildcard)))
        tokens.append(_Token("END", self.length + 1))
        return tokens

    def _quoted(self, position: int) -> tuple[str, int]:
        """The text between the quote at ``position`` and its closing quote, and the position after it."""
        query, characters, cursor = self.query, [], position + 1
        while cursor < self.length:
            character = query[cursor]
            if character == "\\" and cursor + 1 < self.length:
                characters.append(query[cursor + 1])
                cursor += 2
            elif character == '"':
                if not characters:
                    raise QuerySyntaxError(
                        "empty quotes", position + 1, hint='put the words to search for between them, like "hello"'
                    )
                return "".join(characters), cursor + 1
            else:
                characters.append(character)
                cursor += 1
        raise QuerySyntaxError("this quote is never closed", position + 1)

    def _word(self, position: int) -> _Word:
        """A bare word: up to whitespace, a parenthesis or a quote; ``\\`` makes the next character plain."""
        query, characters, cursor = self.query, [], position
        escaped = wildcard = False
        escaped_wildcard_column = None
        while cursor < self.length:
            character = query[cursor]
            if character.isspace() or character in '()"':
                break
            if character == "\\":
                if cursor + 1 >= self.length:
                    raise QuerySyntaxError("a '\\' at the end of the query has nothing to escape", cursor + 1)
                escaped = True
                if query[cursor + 1] in WILDCARD_CHARACTERS:
                    escaped_wildcard_column = cursor + 1
                characters.append(query[cursor + 1])
                cursor += 2
                continue
            if character in WILDCARD_CHARACTERS:
                wildcard = True
            characters.append(character)
            cursor += 1
        if wildcard and escaped_wildcard_column is not None:
            # The AST keeps a wildcard pattern as plain text, where a literal * has no spelling; ? matches it.
            raise QuerySyntaxError(
                "a word with wildcards cannot also contain an escaped '*' or '?'",
                escaped_wildcard_column,
                hint="use ? to match that character",
            )
        return _Word("".join(characters), cursor, escaped, wildcard)

    def _field(self, match: re.Match[str]) -> tuple[Node, int]:
        name, op = match.group(1), match.group(2)
        name_column, value_position = match.start() + 1, match.end()
        value_column = value_position + 1
        if "." not in name and name not in TOP_LEVEL_FIELDS:
            raise _unknown_field(name, op, name_column)
        if name_error := property_name_error(name):
            raise QuerySyntaxError(name_error, name_column, hint="properties are written type.property, like file.name")
        following = self.query[value_position] if value_position < self.length else ""
        if not following or following.isspace() or following == ")":
            raise QuerySyntaxError(f"expected a value after '{name}{op}'", value_column)
        if following == "(":
            raise QuerySyntaxError(
                "a value cannot be a group",
                value_column,
                hint=f"repeat the field inside it, like ({name}{op}a OR {name}{op}b)",
            )
        if following in "[{":
            if op != ":" or name in SPECIAL_FIELDS or name == "text":
                what = f"'{name}{op}'" if op != ":" else f"{name}:"
                raise QuerySyntaxError(
                    f"{what} cannot take a range", value_column, hint="ranges look like file.size:[100 TO 2000]"
                )
            return self._range(name, name_column, value_position)
        if following == '"':
            text, end = self._quoted(value_position)
            return _special_or_field(name, text, op=op, phrase=True, column=value_column), end
        word = self._word(value_position)
        if word.wildcard and op not in MATCH_OPERATORS:
            raise QuerySyntaxError(
                f"'{op}' cannot take wildcards", value_column, hint="it compares numbers, dates and words"
            )
        value = word.text
        if not (word.escaped or word.wildcard or name in STRING_FIELDS):
            value = _typed(word.text, value_column)
        return _special_or_field(name, value, op=op, wildcard=word.wildcard, column=value_column), word.end

    def _range(self, name: str, name_column: int, position: int) -> tuple[Node, int]:
        query = self.query
        opening_column = position + 1
        include_low = query[position] == "["
        cursor = self._skip_space(position + 1)
        low, cursor = self._bound(cursor, which="lower")
        after_low = cursor
        cursor = self._skip_space(cursor)
        if not (
            cursor > after_low
            and query.startswith("TO", cursor)
            and (cursor + 2 == self.length or query[cursor + 2].isspace())
        ):
            raise QuerySyntaxError(
                "expected TO between the two ends of the range", cursor + 1, hint="like [100 TO 2000]"
            )
        cursor = self._skip_space(cursor + 2)
        high_column = cursor + 1
        high, cursor = self._bound(cursor, which="upper")
        cursor = self._skip_space(cursor)
        if cursor >= self.length or query[cursor] not in _RANGE_CLOSERS:
            raise QuerySyntaxError(
                f"expected ']' or '}}' to close the range opened at column {opening_column}", cursor + 1
            )
        include_high = query[cursor] == "]"
        if low is not None and high is not None and _bound_kind(low) != _bound_kind(high):
            raise QuerySyntaxError(
                f"the two ends of the range must be alike (both numbers, both dates or both words), "
                f"not a {_bound_kind(low)} and a {_bound_kind(high)}",
                high_column,
            )
        node = _build(Range, name_column, name, low, high, include_low=include_low, include_high=include_high)
        return node, cursor + 1

    def _bound(self, position: int, *, which: str) -> tuple[Bound, int]:
        if position >= self.length or self.query[position] in _RANGE_CLOSERS:
            raise QuerySyntaxError(f"expected the {which} end of the range (a value, or * for none)", position + 1)
        if self.query[position] == '"':
            return self._quoted(position)
        cursor = position
        while cursor < self.length and not (self.query[cursor].isspace() or self.query[cursor] in '"]}'):
            cursor += 1
        text = self.query[position:cursor]
        if not text:
            raise QuerySyntaxError(f"expected the {which} end of the range (a value, or * for none)", position + 1)
        if text == "*":
            return None, cursor
        return _typed(text, position + 1), cursor

    def _skip_space(self, position: int) -> int:
        while position < self.length and self.query[position].isspace():
            position += 1
        return position


def _typed(text: str, column: int):
    try:
        return typed_value(text)
    except ValueTypeError as error:
        raise QuerySyntaxError(error.message, column, hint=error.hint) from None


def _bound_kind(bound: Bound) -> str:
    if isinstance(bound, int | float):
        return "number"
    if isinstance(bound, str):
        return "word"
    return "date"


def _unknown_field(name: str, op: str, column: int) -> QuerySyntaxError:
    suggestion = next((known for known in TOP_LEVEL_FIELDS if known.lower() == name.lower()), None)
    suggestion = suggestion or next(iter(difflib.get_close_matches(name, sorted(TOP_LEVEL_FIELDS), n=1)), None)
    if suggestion:
        return QuerySyntaxError(f"unknown field '{name}'", column, hint=f"did you mean '{suggestion}{op}'?")
    return QuerySyntaxError(
        f"unknown field '{name}'",
        column,
        hint=f"properties are written type.property, like file.name{op}; to search for text containing '{op}', "
        "put it in quotes",
    )


def _special_or_field(name: str, value, *, op: str, column: int, phrase: bool = False, wildcard: bool = False) -> Node:
    """A Field, with the special fields' values checked and brought to their one spelling."""
    if name in SPECIAL_FIELDS and op not in MATCH_OPERATORS:
        raise QuerySyntaxError(f"{name}: cannot be compared with '{op}'", column - len(op), hint=f"use {name}:value")
    if name == "text" and op not in MATCH_OPERATORS:
        raise QuerySyntaxError(f"text cannot be compared with '{op}'", column - len(op), hint="use text:word")
    if name == "evidence":
        # Quotes change nothing about an id, so the AST keeps one spelling of it.
        if wildcard:
            raise QuerySyntaxError("evidence: takes a whole evidence id (a UUID), without wildcards", column)
        try:
            return Field(name, canonical_uuid(str(value)), op=op)
        except ValueError:
            raise QuerySyntaxError(
                "evidence: takes an evidence id", column, hint="a UUID like 1b4e28ba-2fa1-11d2-883f-0016d3cca427"
            ) from None
    if name == "deleted" or name in KNOWN_FIELDS:
        flag = {"true": True, "false": False}.get(value) if isinstance(value, str) else value
        if not isinstance(flag, bool):
            raise QuerySyntaxError(f"{name}: takes true or false", column)
        return Field(name, flag, op=op)
    return _build(Field, column, name, value, op=op, phrase=phrase, wildcard=wildcard)


def _build(node_type, column: int, *args, **kwargs) -> Node:
    # The AST checks its own invariants; a query that breaks one is the detective's error, at a column.
    try:
        return node_type(*args, **kwargs)
    except ValueError as error:
        raise QuerySyntaxError(str(error), column) from None


class _Parser:
    """query = or ; or = and {"OR" and} ; and = unary {["AND"] unary} ; unary = ("NOT"|"-") unary | primary."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def advance(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise QuerySyntaxError("the query is empty", 1)
        node = self.parse_or(depth=0)
        token = self.peek()
        if token.kind == ")":
            raise QuerySyntaxError("this ')' closes nothing", token.column)
        if token.kind != "END":  # every other token starts or continues a term, so this is a bug
            raise QuerySyntaxError(f"unexpected '{token.kind}'", token.column)
        return node

    def parse_or(self, *, depth: int) -> Node:
        items = [self.parse_and(depth=depth)]
        while self.peek().kind == "OR":
            self._expect_term_after(self.advance())
            items.append(self.parse_and(depth=depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self, *, depth: int) -> Node:
        items = [self.parse_unary(depth=depth)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self._expect_term_after(self.advance())
            elif kind not in _TERM_STARTS:
                break
            items.append(self.parse_unary(depth=depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self, *, depth: int) -> Node:
        token = self.peek()
        if token.kind in ("NOT", "-"):
            self.advance()
            self._check_depth(depth + 1, token)
            self._expect_term_after(token)
            return Not(self.parse_unary(depth=depth + 1))
        return self.parse_primary(depth=depth)

    def parse_primary(self, *, depth: int) -> Node:
        token = self.advance()
        if token.kind == "TERM":
            return token.node
        if token.kind == "(":
            self._check_depth(depth + 1, token)
            if self.peek().kind == ")":
                raise QuerySyntaxError("empty parentheses", token.column, hint="put a search between them")
            inner = self.parse_or(depth=depth + 1)
            if self.peek().kind != ")":
                raise QuerySyntaxError("this '(' is never closed", token.column)
            self.advance()
            return inner
        if token.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"expected a search term before '{token.kind}'", token.column)
        if token.kind == ")":
            raise QuerySyntaxError("this ')' closes nothing", token.column)
        raise QuerySyntaxError("expected a search term", token.column)

    def _expect_term_after(self, operator: _Token) -> None:
        following = self.peek()
        if following.kind in _TERM_STARTS:
            return
        spelled = "-" if operator.kind == "-" else operator.kind
        if following.kind == "END":
            raise QuerySyntaxError(f"expected a search term after '{spelled}'", following.column)
        raise QuerySyntaxError(f"expected a search term after '{spelled}', not '{following.kind}'", following.column)

    def _check_depth(self, depth: int, token: _Token) -> None:
        if depth > MAX_DEPTH:
            raise QuerySyntaxError(f"the query nests too deeply (more than {MAX_DEPTH} levels)", token.column)
