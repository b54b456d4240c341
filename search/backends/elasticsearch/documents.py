"""The Elasticsearch index of traces: one document per trace (:func:`trace_document`), laid out by
:func:`trace_index_mapping`:

* ``uid``, ``parent_uid``, ``case``, ``evidence``, ``types``, ``tags``, ``extension``: keywords; ``hashsets``
  and ``known``: the names and kinds of the hash sets that hold the trace's content;
* ``name`` and ``path``: analysed text, with the exact string in ``.keyword``;
* ``text``: the bounded text stream; ``metadata``: every string property copied in, for full text;
* ``properties.data.<stream>.…``: the data streams' hashes, size, MIME type and entropy;
* ``properties.<type>.<property>``: typed by dynamic templates: ``…On`` is a date, whole numbers
  long, decimals double, strings a keyword (exact, sortable, facetable) with the words in ``.text``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from search.query.streams import stream_properties

# Longest names and paths still indexed whole; a keyword term has a hard limit of 32 KiB.
_KEYWORD_LIMIT = 4096


def trace_index_mapping() -> dict[str, Any]:
    """The ``mappings`` of a trace index: ``client.indices.create(index=…, mappings=trace_index_mapping())``."""
    keyword = {"type": "keyword"}
    return {
        # Fields outside this mapping and ``properties`` are kept in _source but not indexed, so a
        # stray key cannot grow the mapping; properties themselves are dynamic by design.
        "dynamic": False,
        # Only the ``…On`` naming rule makes a date: a string property that happens to look like a
        # date (a file name, a subject) must stay a string.
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [
            {
                "property_dates": {
                    "path_match": "properties.*On",
                    # Strings only, so an object whose name happens to end in On stays an object.
                    "match_mapping_type": "string",
                    "mapping": {"type": "date", "ignore_malformed": True},
                }
            },
            {
                "property_integers": {
                    "path_match": "properties.*",
                    "match_mapping_type": "long",
                    "mapping": {"type": "long"},
                }
            },
            {
                "property_decimals": {
                    "path_match": "properties.*",
                    "match_mapping_type": "double",
                    "mapping": {"type": "double"},
                }
            },
            {
                "property_strings": {
                    "path_match": "properties.*",
                    "match_mapping_type": "string",
                    "mapping": {
                        "type": "keyword",
                        "ignore_above": _KEYWORD_LIMIT,
                        "copy_to": "metadata",
                        "fields": {"text": {"type": "text"}},
                    },
                }
            },
        ],
        "properties": {
            "uid": keyword,
            "parent_uid": keyword,
            "case": keyword,
            "evidence": keyword,
            "types": keyword,
            "tags": keyword,
            # The hash sets holding the trace's content, and their kinds (known-good, known-bad).
            "hashsets": keyword,
            "known": keyword,
            "extension": keyword,
            "deleted": {"type": "boolean"},
            "has_errors": {"type": "boolean"},
            # The position in the walk, and the database id: the order traces are listed in by default.
            "ordinal": {"type": "long"},
            "sequence": {"type": "long"},
            "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": _KEYWORD_LIMIT}}},
            "path": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": _KEYWORD_LIMIT}}},
            "text": {"type": "text"},
            "metadata": {"type": "text"},
            "properties": {"type": "object", "dynamic": True},
        },
    }


def trace_document(
    *,
    uid: str,
    case_id: object,
    evidence_id: object,
    name: str,
    path: str,
    types: Iterable[str],
    properties: Mapping[str, Any],
    text: str = "",
    deleted: bool = False,
    has_errors: bool = False,
    tags: Iterable[str] = (),
    hash_sets: Collection[tuple[str, str]] = (),
    ordinal: int = 0,
    sequence: int = 0,
    streams: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The index document of one trace, in the layout :func:`trace_index_mapping` describes. Its data
    streams' values are properties too (``data.raw.hash.md5`` …, search.query.streams): the hashes are
    keywords copied into ``metadata``, so a bare hash finds the trace."""
    # <evidence-uuid>:0-3-1-7 has the parent <evidence-uuid>:0-3-1; the root :0 has none.
    evidence_part, _, trace_path = uid.rpartition(":")
    segments = trace_path.split("-")
    # Only a trace a hash set holds carries the hash set fields (a missing field matches no term).
    known = (
        {"hashsets": sorted({name for name, _ in hash_sets}), "known": sorted({kind for _, kind in hash_sets})}
        if hash_sets
        else {}
    )
    return {
        **known,
        "uid": uid,
        "parent_uid": f"{evidence_part}:{'-'.join(segments[:-1])}" if len(segments) > 1 else "",
        "case": str(case_id),
        "evidence": str(evidence_id),
        "name": name,
        "path": path,
        "extension": extension_of(name),
        "types": sorted(types),
        "tags": sorted(tags),
        "deleted": deleted,
        # Only when true (has:errors looks for true; a trace without it has none).
        **({"has_errors": True} if has_errors else {}),
        "ordinal": ordinal,
        "sequence": sequence,
        "text": text,
        # A None property (a tool that looked and found nothing) carries no value to search for.
        "properties": {
            **{key: value for key, value in properties.items() if value is not None},
            **stream_properties(streams),
        },
    }


def extension_of(name: str) -> str:
    """``JPG`` of ``Photo.JPG`` as ``jpg``; empty for names without one (or dot files like ``.bashrc``)."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not extension or len(extension) > 16 or " " in extension:
        return ""
    return extension.lower()
