"""The replacement model applied to an audit row before it is hashed into the chain (docs/privacy.md).

``audit_record`` hands the row's confidential fields here: the actor (a secondary identity: the username,
keyed per organisation), the client address, and every ``Tagged`` value in the details. Each is replaced
by the bare result of its tag's transformation (under PR the value is stored exactly as before), so the
stored row — and therefore the hash chain, the export and the offline verifier — holds only what the policy
allows. Untagged details are stored as they are: tagging is the caller's decision of what is confidential.

A row whose replacements are anything but PR carries a ``privacy`` entry in its details saying, for each
replaced field, its tag and transformation, the row's message id (the key of its MR look-up entries) and,
when a value is session-scoped, the session encrypted under the system-wide key (NR). That is what
re-identification needs later, when the policy may have changed; it is part of the hashed row, and holds no
clear value. A row with only PR replacements gets no such entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from audit.privacy import (
    DerivedKeys,
    Message,
    PrivacyLookupTable,
    ReIdentificationError,
    Replacer,
    Tagged,
    current_session,
    re_identify,
    replacer_from_settings,
)

# The details key of a row's replacement record (see the module docstring).
PRIVACY_DETAILS_KEY = "privacy"
# The tag whose transformation the policy gives actors (secondary identities) and client addresses.
ACTOR_TAG = "actor"
CLIENT_ADDRESS_TAG = "client_address"
# The tag under which a row's session is kept, encrypted (NR), for re-identifying its SR values.
SESSION_TAG = "privacy.session"
# Names in the row that are not a transformed value: the actor "system" and an empty address.
SYSTEM_ACTOR = "system"


def secondary_identity_tag(organization_id: int | None) -> str:
    """The tag an actor's pseudonym is made under: bound to the organisation, so the same person is one
    stable pseudonym within an organisation's trail and an unrelated one in another's (issue #19 item 3)."""
    return f"{ACTOR_TAG}.org{organization_id}" if organization_id is not None else ACTOR_TAG


@dataclass
class ReplacedRow:
    actor: str
    client_address: str
    details: dict[str, Any]
    # field path → (tag, transformation) of every value replaced other than by PR.
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)


class _RowReplacer:
    def __init__(self, replacer: Replacer, session: str | None) -> None:
        self.replacer = replacer
        self.session = session
        self.message = Message()
        self.fields: dict[str, tuple[str, str]] = {}
        self.uses_session = False

    def value(self, path: str, *, policy_tag: str, bound_tag: str, value: str) -> str:
        code = self.replacer.policy.transformation(policy_tag)
        if code in ("SR", "SI") and self.session is None:
            code = "NR" if code == "SR" else "NI"  # as Replacer.apply narrows it: recorded as applied
        replaced = self.replacer.apply(code, bound_tag, value, session=self.session, message=self.message)
        if code != "PR":
            self.fields[path] = (bound_tag, code)
            self.uses_session = self.uses_session or code in ("SR", "SI")
        return replaced

    def details(self, path: str, value: Any) -> Any:
        if isinstance(value, Tagged):
            tag = value.tag.lower()
            return self.value(path, policy_tag=tag, bound_tag=tag, value=str(value.value))
        if isinstance(value, dict):
            return {key: self.details(f"{path}.{key}", item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.details(f"{path}.{index}", item) for index, item in enumerate(value)]
        if isinstance(value, set | frozenset):
            # Stored as a sorted list (audit.chain.json_safe): replaced in that order, so paths name the items.
            return [self.details(f"{path}.{index}", item) for index, item in enumerate(sorted(value, key=str))]
        return value


def replace_row(
    *, actor: str, organization_id: int | None, client_address: str, details: dict[str, Any]
) -> ReplacedRow:
    """The row's actor, client address and details as the configured policy says (in the current
    ``privacy_session``). MR values go to the configured look-up table in the caller's transaction."""
    rows = _RowReplacer(replacer_from_settings(), current_session())
    if actor and actor != SYSTEM_ACTOR:
        actor = rows.value(
            "actor", policy_tag=ACTOR_TAG, bound_tag=secondary_identity_tag(organization_id), value=actor
        )
    if client_address:
        client_address = rows.value(
            "client_address", policy_tag=CLIENT_ADDRESS_TAG, bound_tag=CLIENT_ADDRESS_TAG, value=client_address
        )
    replaced_details = rows.details("details", details)
    if rows.fields:
        record: dict[str, Any] = {
            "message": rows.message.id,
            "fields": {path: list(entry) for path, entry in rows.fields.items()},
        }
        if rows.uses_session and rows.session is not None:
            record["session"] = rows.replacer.apply("NR", SESSION_TAG, rows.session)
        replaced_details[PRIVACY_DETAILS_KEY] = record
    return ReplacedRow(actor=actor, client_address=client_address, details=replaced_details, fields=rows.fields)


def stored_value(*, actor: str, client_address: str, details: dict[str, Any], path: str) -> str:
    """The stored (replaced) value at a field path of a row: ``actor``, ``client_address`` or
    ``details.<key>[.<key or index>…]``. KeyError when the row has no such field."""
    if path == "actor":
        return actor
    if path == "client_address":
        return client_address
    head, _, rest = path.partition(".")
    if head != "details" or not rest:
        raise KeyError(path)
    node: Any = details
    for part in rest.split("."):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise KeyError(path) from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    if not isinstance(node, str):
        raise KeyError(path)
    return node


def replaced_fields(details: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Field path → (tag, transformation) of a stored row's replaced values (none for an all-PR row)."""
    record = details.get(PRIVACY_DETAILS_KEY) if isinstance(details, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        return {}
    return {
        str(path): (str(entry[0]), str(entry[1]))
        for path, entry in record["fields"].items()
        if isinstance(entry, list) and len(entry) == 2
    }


def re_identify_field(
    *,
    actor: str,
    client_address: str,
    details: dict[str, Any],
    path: str,
    keys: DerivedKeys,
    lookup: PrivacyLookupTable | None,
) -> str:
    """The clear value behind one replaced field of a stored row. ReIdentificationError when the field was
    not replaced reversibly, or the key or look-up entry is not the one it was made with."""
    fields = replaced_fields(details)
    if path not in fields:
        raise ReIdentificationError("this field holds no replaced value")
    tag, code = fields[path]
    try:
        value = stored_value(actor=actor, client_address=client_address, details=details, path=path)
    except KeyError:
        raise ReIdentificationError("this field holds no replaced value") from None
    record = details[PRIVACY_DETAILS_KEY]
    session = None
    if code == "SR":
        encrypted = record.get("session")
        if not isinstance(encrypted, str):
            raise ReIdentificationError("the row does not keep the session this value was written in")
        session = re_identify(Tagged(SESSION_TAG, encrypted), transformation="NR", keys=keys)
    return re_identify(
        Tagged(tag, value),
        transformation=code,
        keys=keys,
        session=session,
        message_id=str(record.get("message", "")),
        lookup=lookup,
    )


def policy_digest(mapping: dict[str, str], default: str) -> str:
    """SHA-256 of a policy (its tags and codes, normalised, and its default): what the trail records when the
    configured policy changes, so a reader can tell which rows were written under which policy."""
    normalised = {str(tag).lower(): str(code).upper() for tag, code in mapping.items()}
    body = json.dumps({"mapping": normalised, "default": default}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


__all__ = [
    "ACTOR_TAG",
    "CLIENT_ADDRESS_TAG",
    "PRIVACY_DETAILS_KEY",
    "ReplacedRow",
    "policy_digest",
    "re_identify_field",
    "replace_row",
    "replaced_fields",
    "secondary_identity_tag",
    "stored_value",
]
