"""The query language's parser and printer (DESIGN.md §7, docs/query.md): examples, errors, properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from search.query import (
    MAX_DEPTH,
    MAX_QUERY_BYTES,
    And,
    Field,
    Not,
    Or,
    QuerySyntaxError,
    Range,
    Text,
    parse_query,
    to_query_string,
)
from search.query.ast import INT64_MAX, INT64_MIN, depth

EVIDENCE_ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def word(term: str) -> Text:
    return Text(term)


# -- examples ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("peter", Text("peter")),
        ('"peter de vries"', Text("peter de vries", phrase=True)),
        ("pet*", Text("pet*", wildcard=True)),
        ("p?ter", Text("p?ter", wildcard=True)),
        ('"pet*"', Text("pet*", phrase=True)),
        (r"pet\*", Text("pet*")),
        (r"foo\:bar", Text("foo:bar")),
        (r"\AND", Text("AND")),
        ("and", Text("and")),
        ("1:30", Text("1:30")),
        ("2020", Text("2020")),
        ("e-mail", Text("e-mail")),
        ("type:email", Field("type", "email")),
        ("tag:important", Field("tag", "important")),
        ('tag:"very important"', Field("tag", "very important", phrase=True)),
        ("type:e*", Field("type", "e*", wildcard=True)),
        (f"evidence:{EVIDENCE_ID}", Field("evidence", EVIDENCE_ID)),
        (f'evidence:"{EVIDENCE_ID.upper()}"', Field("evidence", EVIDENCE_ID)),
        ("deleted:true", Field("deleted", True)),
        ("deleted:false", Field("deleted", False)),
        ("name:2020", Field("name", "2020")),
        ("path:*/Users/*", Field("path", "*/Users/*", wildcard=True)),
        ("text:password", Field("text", "password")),
        ("file.name:*.jpg", Field("file.name", "*.jpg", wildcard=True)),
        ("file.name=report.pdf", Field("file.name", "report.pdf", op="=")),
        ('email.from:"a@example.org"', Field("email.from", "a@example.org", phrase=True)),
        ("email.from:a@example.org", Field("email.from", "a@example.org")),
        ("picture.exif.Make:Canon", Field("picture.exif.Make", "Canon")),
        ("file.size>1000", Field("file.size", 1000, op=">")),
        ("file.size>=1000", Field("file.size", 1000, op=">=")),
        ("file.size<1000", Field("file.size", 1000, op="<")),
        ("file.size<=1000", Field("file.size", 1000, op="<=")),
        ("data.raw.size>1048576", Field("data.raw.size", 1048576, op=">")),
        ("gps.latitude>-12.5", Field("gps.latitude", -12.5, op=">")),
        ("data.raw.entropy:7.9", Field("data.raw.entropy", 7.9)),
        ("file.modifiedOn>=2020-01-01", Field("file.modifiedOn", date(2020, 1, 1), op=">=")),
        (
            "file.modifiedOn<2020-01-01T10:30:00",
            Field("file.modifiedOn", datetime(2020, 1, 1, 10, 30), op="<"),
        ),
        (
            "email.sentOn:2020-01-01T10:30Z",
            Field("email.sentOn", datetime(2020, 1, 1, 10, 30, tzinfo=UTC)),
        ),
        (
            "email.sentOn>2020-01-01T10:30:00+02:00",
            Field("email.sentOn", datetime(2020, 1, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))), op=">"),
        ),
        ("encryptedVolume.unlocked:true", Field("encryptedVolume.unlocked", True)),
        ('encryptedVolume.unlocked:"true"', Field("encryptedVolume.unlocked", "true", phrase=True)),
        # Leading zeros and numbers beyond 64 bits are identifiers (hashes, accounts): kept as typed.
        ("data.raw.hash.md5:0123", Field("data.raw.hash.md5", "0123")),
        ("account.number:123456789012345678901234", Field("account.number", "123456789012345678901234")),
        (r"file.name:\2020", Field("file.name", "2020")),
        (
            "browserHistory.url:https://example.org/a?b=c",
            Field("browserHistory.url", "https://example.org/a?b=c", wildcard=True),
        ),
        ("file.size:[100 TO 2000]", Range("file.size", 100, 2000)),
        ("file.size:{100 TO 2000}", Range("file.size", 100, 2000, include_low=False, include_high=False)),
        ("file.size:[100 TO 2000}", Range("file.size", 100, 2000, include_high=False)),
        ("file.size:[100 TO *]", Range("file.size", 100, None)),
        ("file.size:[* TO 2.5]", Range("file.size", None, 2.5)),
        ("file.size:[  100   TO   2000  ]", Range("file.size", 100, 2000)),
        (
            "file.modifiedOn:[2010-01-01 TO 2010-12-31]",
            Range("file.modifiedOn", date(2010, 1, 1), date(2010, 12, 31)),
        ),
        ('name:["a" TO "m m"]', Range("name", "a", "m m")),
        ("name:[a TO m]", Range("name", "a", "m")),
    ],
)
def test_parses_terms(query, expected):
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a b", And((word("a"), word("b")))),
        ("a AND b", And((word("a"), word("b")))),
        ("a b c", And((word("a"), word("b"), word("c")))),
        ("a OR b", Or((word("a"), word("b")))),
        ("a OR b OR c", Or((word("a"), word("b"), word("c")))),
        # AND binds tighter than OR, implicit AND too.
        ("a OR b c", Or((word("a"), And((word("b"), word("c")))))),
        ("a b OR c", Or((And((word("a"), word("b"))), word("c")))),
        ("a AND b OR c AND d", Or((And((word("a"), word("b"))), And((word("c"), word("d")))))),
        # NOT binds tighter than AND.
        ("NOT a b", And((Not(word("a")), word("b")))),
        ("-a b", And((Not(word("a")), word("b")))),
        ("a NOT b", And((word("a"), Not(word("b"))))),
        ("a AND NOT b OR c", Or((And((word("a"), Not(word("b")))), word("c")))),
        ("NOT NOT a", Not(Not(word("a")))),
        ("--a", Not(Not(word("a")))),
        ("-(a OR b)", Not(Or((word("a"), word("b"))))),
        ("(a OR b) c", And((Or((word("a"), word("b"))), word("c")))),
        ("(a OR b) AND c", And((Or((word("a"), word("b"))), word("c")))),
        ("a (b c)", And((word("a"), And((word("b"), word("c")))))),
        ("((a))", word("a")),
        ('"a"b', And((Text("a", phrase=True), word("b")))),
        ("(a)(b)", And((word("a"), word("b")))),
        ("a -b", And((word("a"), Not(word("b"))))),
        (
            "tag:relevant  -type:folder  (a OR b) AND c",
            And(
                (
                    Field("tag", "relevant"),
                    Not(Field("type", "folder")),
                    Or((word("a"), word("b"))),
                    word("c"),
                )
            ),
        ),
        (
            'type:email email.from:"a@example.org" file.size>10',
            And(
                (
                    Field("type", "email"),
                    Field("email.from", "a@example.org", phrase=True),
                    Field("file.size", 10, op=">"),
                )
            ),
        ),
        (
            "(type:email OR type:chat) -deleted:true",
            And((Or((Field("type", "email"), Field("type", "chat"))), Not(Field("deleted", True)))),
        ),
    ],
)
def test_parses_boolean_structure_with_precedence(query, expected):
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("a AND b", "a b"),
        ("NOT a", "-a"),
        ("a   OR  b", "a OR b"),
        ("(a b) c", "(a b) c"),
        ("((a OR b))", "a OR b"),
        ("a OR (b OR c)", "a OR (b OR c)"),
        ("a OR (b c)", "a OR b c"),
        ("NOT (a OR b)", "-(a OR b)"),
        (f"evidence:{EVIDENCE_ID.upper()}", f"evidence:{EVIDENCE_ID}"),
        ("file.size:[100 TO *}", "file.size:[100 TO *}"),
        ('file.name:"x"', 'file.name:"x"'),
        ("file.modifiedOn>2020-01-01T10:30Z", "file.modifiedOn>2020-01-01T10:30:00+00:00"),
        ("data.raw.entropy>1.5e1", "data.raw.entropy>15.0"),
        (r"file.name:\2020", r"file.name:\2020"),
        ("name:2020", "name:2020"),
        ("AND\\ OR", r"AND\ OR"),
    ],
)
def test_prints_canonical_query_strings(query, canonical):
    assert to_query_string(parse_query(query)) == canonical
    assert parse_query(canonical) == parse_query(query)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "column", "fragment"),
    [
        ("file.size>", 11, "expected a value after 'file.size>'"),
        ("file.size> 10", 11, "expected a value after 'file.size>'"),
        ("(file.size:)", 12, "expected a value after 'file.size:'"),
        ("", 1, "the query is empty"),
        ("   ", 1, "the query is empty"),
        ("a OR", 5, "expected a search term after 'OR'"),
        ("a OR OR b", 6, "expected a search term after 'OR'"),
        ("a AND", 6, "expected a search term after 'AND'"),
        ("a AND OR b", 7, "expected a search term after 'AND'"),
        ("OR a", 1, "expected a search term before 'OR'"),
        ("AND a", 1, "expected a search term before 'AND'"),
        ("NOT", 4, "expected a search term after 'NOT'"),
        ("a NOT", 6, "expected a search term after 'NOT'"),
        ("(a NOT)", 7, "expected a search term after 'NOT'"),
        ("- a", 2, "expected something to exclude after '-'"),
        ("a -", 4, "expected something to exclude after '-'"),
        ("(a", 1, "this '(' is never closed"),
        ("a (b (c)", 3, "this '(' is never closed"),
        ("a)", 2, "this ')' closes nothing"),
        (")", 1, "this ')' closes nothing"),
        ("()", 1, "empty parentheses"),
        ('"abc', 1, "this quote is never closed"),
        ('a "b\\"', 3, "this quote is never closed"),
        ('""', 1, "empty quotes"),
        ('email.subject:"', 15, "this quote is never closed"),
        ("a\\", 2, "nothing to escape"),
        ("tpye:email", 1, "unknown field 'tpye'"),
        ("Type:email", 1, "did you mean 'type:'?"),
        ("http://example.org", 1, "unknown field 'http'"),
        ("[1 TO 2]", 1, "a range needs a property before it"),
        ("file.size:[1 TO", 16, "expected the upper end of the range"),
        ("file.size:[1 TO 2", 18, "expected ']' or '}' to close the range opened at column 11"),
        ("file.size:[1 2]", 14, "expected TO between the two ends of the range"),
        ("file.size:[1TO 2]", 16, "expected TO between the two ends of the range"),
        ("file.size:[]", 12, "expected the lower end of the range"),
        ("file.size:[1 TO 2020-01-01]", 17, "both numbers, both dates or both words"),
        ("file.size>[1 TO 2]", 11, "'file.size>' cannot take a range"),
        ("type:[a TO b]", 6, "type: cannot take a range"),
        ("file.modifiedOn:2020-13-01", 17, "'2020-13-01' is not a valid date"),
        ("file.modifiedOn>2020-02-30T10:00", 17, "is not a valid date and time"),
        ("file.modifiedOn:[2020-01-01 TO 2020-02-31]", 32, "'2020-02-31' is not a valid date"),
        ("file.size>1*", 11, "'>' cannot take wildcards"),
        ("type>email", 5, "type: cannot be compared with '>'"),
        ("text<=a", 5, "text cannot be compared with '<='"),
        ("deleted:maybe", 9, "deleted: takes true or false"),
        ("evidence:12", 10, "evidence: takes an evidence id"),
        ("evidence:1b4e*", 10, "without wildcards"),
        ("type:(email OR chat)", 6, "a value cannot be a group"),
        (r"a*\*", 3, "cannot also contain an escaped '*'"),
    ],
)
def test_errors_name_the_column(query, column, fragment):
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    error = caught.value
    assert error.column == column, str(error)
    assert fragment in str(error)
    assert f"at column {column}" in str(error)


def test_error_message_reads_like_the_example_in_the_issue():
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("file.size>")
    assert str(caught.value) == "expected a value after 'file.size>' at column 11"
    assert (caught.value.message, caught.value.column) == ("expected a value after 'file.size>'", 11)


def test_error_hints_say_what_to_write_instead():
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("a http://example.org")
    assert caught.value.column == 3
    assert "put it in quotes" in caught.value.hint
    assert parse_query('a "http://example.org"') == And((word("a"), Text("http://example.org", phrase=True)))


def test_limits_the_query_length_in_bytes():
    longest = "a " * (MAX_QUERY_BYTES // 2)
    assert len(longest.encode()) == MAX_QUERY_BYTES
    parse_query(longest)
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(longest + "b")
    assert caught.value.column == MAX_QUERY_BYTES + 1
    # Multi-byte characters count as the bytes they take: é is two.
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("é" * (MAX_QUERY_BYTES // 2 + 1))
    assert caught.value.column == MAX_QUERY_BYTES // 2 + 1


def test_limits_nesting_depth():
    parse_query("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    parse_query("-" * MAX_DEPTH + "a")
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert caught.value.column == MAX_DEPTH + 1
    assert "nests too deeply" in str(caught.value)
    with pytest.raises(QuerySyntaxError, match="nests too deeply"):
        parse_query("NOT " * (MAX_DEPTH + 1) + "a")
    # Deep enough to break Python's own recursion limit, were the limit not there.
    with pytest.raises(QuerySyntaxError, match="nests too deeply"):
        parse_query("(" * 2000)


def test_ast_refuses_nodes_it_could_not_print():
    for build in (
        lambda: Text(""),
        lambda: Text("abc", wildcard=True),
        lambda: Text("a*", phrase=True, wildcard=True),
        lambda: Field("size", 1),
        lambda: Field("file.size", 1, op="~"),
        lambda: Field("file.size", float("nan")),
        lambda: Field("file.size", 2**63),
        lambda: Field("file.size", 1, wildcard=True),
        lambda: Field("file.name", "a*", op=">", wildcard=True),
        lambda: Field("type", "email", op=">"),
        lambda: Field("evidence", EVIDENCE_ID.upper()),
        lambda: Field("deleted", "true"),
        lambda: Field("name", 2020),
        lambda: Range("file.size", 1, date(2020, 1, 1)),
        lambda: Range("type", "a", "b"),
        lambda: And((word("a"),)),
        lambda: Or([word("a"), word("b")]),
    ):
        with pytest.raises(ValueError):
            build()


def test_nodes_are_immutable_and_hashable():
    node = parse_query("type:email (a OR b)")
    assert hash(node) == hash(parse_query("type:email (a OR b)"))
    with pytest.raises(AttributeError):
        node.items = ()


# -- properties -------------------------------------------------------------------------------------

# Characters that matter to the syntax, mixed with ordinary and non-ASCII ones, so generated words
# hit every escaping rule.
_SYNTAX_CHARACTERS = [*'abzAZ09 .-_:*?"\\()[]{}<>=+@/\t\né', "AND", "OR", "NOT", "TO"]
_characters = st.one_of(st.sampled_from(_SYNTAX_CHARACTERS), st.characters(codec="utf-8"))
words = st.lists(_characters, min_size=1, max_size=8).map("".join)
wildcard_words = st.tuples(words, st.sampled_from("*?"), words).map(lambda parts: "".join(parts))
property_names = st.one_of(
    st.sampled_from(["file.name", "file.size", "file.modifiedOn", "email.subject", "picture.exif.Make"]),
    # Without "__": the parser refuses it on purpose (an ORM lookup in disguise; see property_name_error).
    st.from_regex(r"[a-z_][a-zA-Z0-9_]{0,5}(\.[a-zA-Z_][a-zA-Z0-9_]{0,5}){1,2}", fullmatch=True).filter(
        lambda name: "__" not in name
    ),
)
time_zones = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
datetimes = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=time_zones)
numbers = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.floats(allow_nan=False, allow_infinity=False))
dates = st.one_of(st.dates(), datetimes)
typed_values = st.one_of(numbers, dates, st.booleans())


def _string_fields(names, *, operators=(":", "=", "<", "<=", ">", ">=")) -> st.SearchStrategy[Field]:
    return st.one_of(
        st.builds(Field, names, words, st.sampled_from(operators)),
        st.builds(Field, names, words, st.sampled_from([":", "="]), phrase=st.just(True)),
        st.builds(Field, names, wildcard_words, st.sampled_from([":", "="]), wildcard=st.just(True)),
    )


def _ranges(names) -> st.SearchStrategy[Range]:
    def bounds(values):
        return st.tuples(st.none() | values, st.none() | values)

    return st.builds(
        lambda name, pair, include_low, include_high: Range(name, *pair, include_low, include_high),
        names,
        st.one_of(bounds(numbers), bounds(dates), bounds(words)),
        st.booleans(),
        st.booleans(),
    )


terms = st.one_of(
    st.builds(Text, words),
    st.builds(Text, words, phrase=st.just(True)),
    st.builds(Text, wildcard_words, wildcard=st.just(True)),
    st.builds(Field, property_names, typed_values, st.sampled_from([":", "=", "<", "<=", ">", ">="])),
    _string_fields(property_names),
    _string_fields(st.sampled_from(["name", "path", "uid"])),
    _string_fields(st.sampled_from(["type", "tag", "text"]), operators=(":", "=")),
    st.builds(Field, st.just("evidence"), st.uuids().map(str), st.sampled_from([":", "="])),
    st.builds(Field, st.just("deleted"), st.booleans(), st.sampled_from([":", "="])),
    _ranges(property_names),
    _ranges(st.sampled_from(["name", "path", "uid"])),
)


def _compound(children):
    groups = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(groups.map(And), groups.map(Or), children.map(Not))


queries = st.recursive(terms, _compound, max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_printing_then_parsing_gives_the_same_ast(node):
    assume(depth(node) <= MAX_DEPTH)
    text = to_query_string(node)
    assume(len(text.encode("utf-8")) <= MAX_QUERY_BYTES)
    assert parse_query(text) == node, text


def _assert_parses_or_names_a_column(text: str) -> None:
    try:
        node = parse_query(text)
    except QuerySyntaxError as error:
        assert 1 <= error.column <= len(text) + 1
        assert str(error)
        return
    # Whatever parses prints canonically and comes back the same.
    assert parse_query(to_query_string(node)) == node


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_random_strings_raise_only_query_syntax_errors(text):
    _assert_parses_or_names_a_column(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                " ",
                "a",
                "b*",
                "(",
                ")",
                '"',
                "\\",
                "-",
                "AND ",
                "OR ",
                "NOT ",
                "file.size",
                "type",
                ":",
                ">",
                ">=",
                "=",
                "[",
                "]",
                "{",
                "}",
                " TO ",
                "*",
                "100",
                "2020-01-01",
                "2020-13-01",
                "true",
                "x.y",
                "é",
            ]
        ),
        max_size=25,
    ).map("".join)
)
def test_syntax_soup_raises_only_query_syntax_errors(text):
    _assert_parses_or_names_a_column(text)
