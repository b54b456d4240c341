"""Wildcards of the query language (``*`` any characters, ``?`` exactly one), matched in linear time.

A wildcard is never turned into a regular expression: a backtracking engine takes exponential time on
patterns such as ``e*e*e*e*q?``, and on SQLite it would run in Python, holding the interpreter for every
other request. Instead the backends hand wildcards to what the database matches itself (SQL ``LIKE``,
:func:`like_pattern`; Elasticsearch's automaton-based ``wildcard`` query), and the few values matched in
Python (type names of a case) go through :func:`wildcard_match`, which never backtracks more than one
star. The parser bounds the pattern (:data:`MAX_WILDCARD_PATTERN_CHARS`, :data:`MAX_WILDCARDS`), so the
cost of one match is at most the text's length times a small constant.
"""

from __future__ import annotations

# A detective's wildcard is a word or a file name; these bounds are far beyond that and keep any
# pattern's cost per row small.
MAX_WILDCARD_PATTERN_CHARS = 256
MAX_WILDCARDS = 16

LIKE_ESCAPE = "\\"


def wildcard_limit_error(pattern: str) -> str | None:
    """Why ``pattern`` is refused as a wildcard (too long, too many wildcards), or None when it is fine."""
    if len(pattern) > MAX_WILDCARD_PATTERN_CHARS:
        return f"a wildcard pattern may be at most {MAX_WILDCARD_PATTERN_CHARS} characters long"
    wildcards = sum(1 for character in pattern if character in "*?")
    if wildcards > MAX_WILDCARDS:
        return f"a wildcard pattern may hold at most {MAX_WILDCARDS} '*' and '?'"
    return None


def like_pattern(pattern: str, *, anchored: bool) -> str:
    """``pattern`` as an SQL ``LIKE`` pattern with ``ESCAPE '\\'``: ``*`` → ``%``, ``?`` → ``_``, and the
    characters LIKE would read as its own (``%``, ``_``, ``\\``) escaped. Unanchored, it matches anywhere
    in the value (``%…%``). Runs of ``*`` collapse to one ``%``: the same matches, less work."""
    out: list[str] = []
    for character in pattern:
        if character == "*":
            if not out or out[-1] != "%":
                out.append("%")
        elif character == "?":
            out.append("_")
        elif character in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + character)
        else:
            out.append(character)
    if not anchored:
        # Each element of ``out`` is one character or one escaped pair, so "%" is always the wildcard.
        if not out or out[0] != "%":
            out.insert(0, "%")
        if out[-1] != "%":
            out.append("%")
    return "".join(out)


def glob_pattern(pattern: str) -> str:
    """``pattern`` as an SQLite ``GLOB`` pattern, which matches case as written (``=`` with wildcards):
    ``*`` and ``?`` are GLOB's own, and a ``[`` (GLOB's character class) is written as the class ``[[]``."""
    return "".join("[[]" if character == "[" else character for character in pattern)


def wildcard_match(pattern: str, text: str) -> bool:
    """Whether ``text`` is matched whole by ``pattern`` (``*`` any characters, ``?`` one), case as given.

    The classic two-pointer match: on a mismatch it returns only to the last ``*`` seen, never further,
    so the cost is at most ``len(pattern) * len(text)`` steps, whatever the pattern.
    """
    p = t = 0
    star = -1
    star_text = 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, star_text = p, t
            p += 1
        elif star >= 0:
            star_text += 1
            p, t = star + 1, star_text
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
