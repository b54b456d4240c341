"""Searches that say what went wrong (issue #20 item 8), after the parser has read a query:

* :func:`type_errors` — a comparison that cannot mean anything: ``file.size>abc`` or ``file.size>>`` compares
  a property that holds numbers with a word, ``file.modifiedOn<soon`` a date property with a word. The
  parser reads such a value as a word (words compare alphabetically), so they are refused here, with the
  column of the value, as the parser refuses what does not parse.
* :func:`property_warnings` — property names no trace of the case has, with the name the detective
  probably meant (``picture.exif.Make`` for ``picture.exif.make``): not an error, since a trace written
  later may have it, but said rather than a silent "0 traces".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator

from search.query.ast import And, Field, Node, Not, Or, Range
from search.query.parser import QuerySyntaxError
from search.query.streams import NUMBER_KEYS, stream_property

# Properties that hold numbers wherever a tool writes them (the number index keeps the rest as it finds them).
NUMBER_PROPERTIES = frozenset(
    {"file.size", "picture.width", "picture.height", "gps.latitude", "gps.longitude", "document.pageCount"}
)
COMPARISONS = (">", ">=", "<", "<=")


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _nodes(item)
    elif isinstance(node, Not):
        yield from _nodes(node.item)


def is_number_property(name: str) -> bool:
    stream = stream_property(name)
    return name in NUMBER_PROPERTIES or (stream is not None and stream.key in NUMBER_KEYS)


def is_date_property(name: str) -> bool:
    """``…On`` properties hold times (``file.modifiedOn``, ``email.sentOn``), as Elasticsearch maps them."""
    return "." in name and name.endswith("On")


def _column_of(text: str, name: str, op: str, value: str) -> int:
    """Where ``value`` starts after ``name op`` in the query text (1-based; 1 when it cannot be found)."""
    match = re.search(re.escape(name) + r"\s*" + re.escape(op), text)
    return match.end() + 1 if match else 1


def type_errors(node: Node | None, *, text: str) -> None:
    """Raise :class:`QuerySyntaxError` for a number or date property compared with a word."""
    if node is None:
        return
    for item in _nodes(node):
        if isinstance(item, Field) and item.op in COMPARISONS and isinstance(item.value, str) and not item.phrase:
            what = _expected(item.name)
            if what:
                raise QuerySyntaxError(
                    f"{item.name} holds {what}s: {item.value!r} after '{item.name}{item.op}' is not a {what}",
                    _column_of(text, item.name, item.op, item.value),
                    hint=f"write a {what}, e.g. {item.name}{item.op}{_EXAMPLES[what]}",
                )
        if isinstance(item, Range):
            what = _expected(item.name)
            for bound in (item.low, item.high):
                if what and isinstance(bound, str):
                    raise QuerySyntaxError(
                        f"{item.name} holds {what}s: the range end {bound!r} is not a {what}",
                        _column_of(text, item.name, ":", ""),
                        hint=f"write {what}s, e.g. {item.name}:[{_EXAMPLES[what]} TO *]",
                    )


_EXAMPLES = {"number": "1000", "date": "2020-01-31"}


def _expected(name: str) -> str:
    if is_number_property(name):
        return "number"
    if is_date_property(name):
        return "date"
    return ""


def property_names(node: Node | None) -> list[str]:
    """The property names a query names (``type.property``), in order, once each."""
    if node is None:
        return []
    names = [item.name for item in _nodes(node) if isinstance(item, Field | Range) and "." in item.name]
    return list(dict.fromkeys(names))


def property_warnings(node: Node | None, *, known: Iterable[str]) -> list[dict]:
    """A warning for each property of the query that no trace of the case has (``known``: the case's
    names), with a suggestion: the same name in another case, else the closest name."""
    known_names = set(known)
    lowered = {name.lower(): name for name in known_names}
    warnings = []
    for name in property_names(node):
        if name in known_names or stream_property(name) is not None:
            continue
        suggestion = lowered.get(name.lower()) or next(
            iter(difflib.get_close_matches(name, sorted(known_names), n=1, cutoff=0.75)), None
        )
        message = f"No trace of this case has the property {name}."
        if suggestion:
            message += f" Did you mean {suggestion}? (Property names are case-sensitive.)"
        warnings.append({"property": name, "message": message, "suggestion": suggestion or ""})
    return warnings
