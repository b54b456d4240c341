"""Stream properties: ``data.<stream>.<key>``, the values the trace page shows for each of its data streams.

A trace's streams (``raw``, ``text``, ``slack`` …) are kept beside its properties, one dict each
(search.extraction.pipeline.stream_dict: ``name``, ``size``, ``md5``, ``sha1``, ``sha256``, ``entropy``,
``mime_type``). The query language names them as Hansken does: ``data.raw.hash.md5``,
``data.raw.hash.sha1``, ``data.raw.hash.sha256``, ``data.raw.size``, ``data.raw.mimeType``,
``data.raw.entropy``. Every backend compiles them (the SQL compiler reads the stream dicts, the hashes
through the word index; Elasticsearch indexes them as properties, :func:`stream_properties`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The query's key → the stream dict's key.
STREAM_KEYS = {
    "hash.md5": "md5",
    "hash.sha1": "sha1",
    "hash.sha256": "sha256",
    "size": "size",
    "mimeType": "mime_type",
    "entropy": "entropy",
}
HASH_KEYS = frozenset({"md5", "sha1", "sha256"})
NUMBER_KEYS = frozenset({"size", "entropy"})

_STREAM_PROPERTY = re.compile(r"data\.([A-Za-z0-9_]+)\.(" + "|".join(re.escape(key) for key in STREAM_KEYS) + r")")


@dataclass(frozen=True, slots=True)
class StreamProperty:
    """``data.raw.hash.md5`` is stream ``raw``, key ``md5`` (the stream dict's key)."""

    stream: str
    key: str

    @property
    def is_hash(self) -> bool:
        return self.key in HASH_KEYS

    @property
    def is_number(self) -> bool:
        return self.key in NUMBER_KEYS


def stream_property(name: str) -> StreamProperty | None:
    """The stream and key ``name`` addresses, or None when it is not a stream property."""
    match = _STREAM_PROPERTY.fullmatch(name)
    if match is None:
        return None
    return StreamProperty(stream=match.group(1), key=STREAM_KEYS[match.group(2)])


def stream_properties(streams: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The stream properties of a trace's streams, as ``{"data.raw.hash.md5": …}`` (hashes lower-case),
    leaving out values a stream does not have."""
    found: dict[str, Any] = {}
    for stream in streams or ():
        if not isinstance(stream, Mapping) or not isinstance(stream.get("name"), str):
            continue
        for query_key, key in STREAM_KEYS.items():
            value = stream.get(key)
            if value is None or value == "":
                continue
            found[f"data.{stream['name']}.{query_key}"] = value.lower() if key in HASH_KEYS else value
    return found
