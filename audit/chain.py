"""The canonical form of an audit row and its hash. Shared by the writer, the verifier and the
offline verifier so that all three agree byte for byte."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor",
    "organization_id",
    "action",
    "target_type",
    "target_id",
    "case_id",
    "outcome",
    "request_id",
    "client_address",
    "details",
)


def canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(row: dict) -> bytes:
    body = {name: row[name] for name in HASHED_FIELDS}
    if isinstance(body["occurred_at"], datetime):
        body["occurred_at"] = canonical_time(body["occurred_at"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: str, canonical: bytes) -> str:
    """A chain link: SHA-256 of the previous hash, a newline and the canonical row. The global chain and
    each case chain link the same canonical row, each after its own previous hash."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def row_hash(row: dict, prev_hash: str) -> str:
    return link_hash(prev_hash, canonical_json(row))


def json_safe(value):
    """Details are stored as JSON and hashed as JSON: make them round-trip exactly (no floats whose
    text a database could change, no tuples, no datetimes)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_safe(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, datetime):
        return canonical_time(value)
    return str(value)
