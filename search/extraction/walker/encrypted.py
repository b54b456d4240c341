"""Encrypted volumes (BitLocker, LUKS): a trace describing the volume, unlocked with the evidence's
escrowed secrets through ``search.extraction.unlock`` (LUKS1 volumes libluksde refuses: through the
pure-Python ``luks`` layer; LUKS2, which libluksde cannot read: through ``luks2``), then its decrypted
bytes walked like any other volume's.

What the libraries say when they fail is written for their developers ("unable to close volume …
missing file IO handle"): it never reaches a trace. ``clear_message`` says what happened in an
examiner's words."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import luks, luks2, source, unlock
from search.extraction.traces import DataStream, ToolRef, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_DFVFS
from search.extraction.walker.volumes import parent_then_children

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

TOOL_LUKS1 = ToolRef("custodia-luks1", "1 (cryptography)")
TOOL_LUKS2 = ToolRef("custodia-luks2", "1 (cryptography, argon2-cffi)")

# dfVFS type indicators of the encrypted volumes the walk unlocks → their names in traces.
ENCRYPTION_NAMES = {
    dfvfs_definitions.TYPE_INDICATOR_BDE: "bitlocker",
    dfvfs_definitions.TYPE_INDICATOR_LUKSDE: "luks",
}


def encrypted_volume(
    *, walk: Walk, spec, type_indicator: str, parent: TraceRecord, ordinal: int, depth: int
) -> Iterator[TraceRecord]:
    """The encrypted volume in ``spec``'s bytes and, once a secret unlocks it, what its decrypted bytes hold."""
    kind = ENCRYPTION_NAMES[type_indicator]
    trace = TraceRecord(
        uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
        parent_uid=parent.uid,
        name=kind,
        path=f"{parent.path}/{kind}",
        types=["encryptedVolume"],
        properties={"encryptedVolume.type": kind, "encryptedVolume.unlocked": False},
        tools={"encryptedVolume": TOOL_DFVFS},
    )
    try:
        encrypted_bytes = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=walk.context)
        trace.streams.append(
            DataStream(name="raw", size=encrypted_bytes.get_size(), data_path=source.serialise_path_spec(spec))
        )
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_LUKSDE and luks2.is_luks2(encrypted_bytes):
            type_indicator = luks2.TYPE_INDICATOR_LUKS2  # libluksde reads LUKS1 only
            trace.tools["encryptedVolume"] = TOOL_LUKS2
        trace.properties.update(_describe(type_indicator, encrypted_bytes))
    except Exception as error:
        trace.errors.append(TraceError(tool=trace.tools["encryptedVolume"].name, message=clear_message(kind, error)))
        trace.properties["encryptedVolume.hint"] = _locked_hint(walk=walk, kind=kind, trace=trace)
        yield trace
        return

    unlocked = _unlock(walk=walk, spec=spec, type_indicator=type_indicator, trace=trace)
    if unlocked is None:
        trace.properties["encryptedVolume.hint"] = _locked_hint(walk=walk, kind=kind, trace=trace)
        yield trace
        return
    encrypted_spec, credential = unlocked
    walk.credentials.remember(encrypted_spec=encrypted_spec, credential=credential)
    trace.properties["encryptedVolume.unlocked"] = True
    trace.properties["encryptedVolume.unlockedWith"] = credential.name
    try:
        decrypted = dfvfs_resolver.Resolver.OpenFileObject(encrypted_spec, resolver_context=walk.context)
        stream = DataStream(
            name="decrypted", size=decrypted.get_size(), data_path=source.serialise_path_spec(encrypted_spec)
        )
        trace.streams.append(stream)
        if walk.options.hash_decrypted_volumes:
            walk.reader.hash_dfvfs_stream(trace=trace, stream=stream, path_spec=encrypted_spec)
    except Exception as error:
        trace.errors.append(
            TraceError(tool=kind, message=f"cannot read the decrypted volume: {clear_message(kind, error)}")
        )
        yield trace
        return
    yield from parent_then_children(trace, walk.explore(spec=encrypted_spec, parent=trace, depth=depth + 1))


def _unlock(*, walk: Walk, spec, type_indicator: str, trace: TraceRecord) -> tuple[Any, unlock.Credential] | None:
    """(the decrypted layer's path spec, the credential that opens it), or None: no secret unlocks it."""
    kind = ENCRYPTION_NAMES.get(type_indicator, "luks")

    def rejected_by(tool: str):
        def rejected(secret: unlock.Secret, error: Exception) -> None:
            trace.errors.append(TraceError(tool=tool, message=f"{secret.kind} rejected: {clear_message(kind, error)}"))

        return rejected

    credential = walk.credentials.first_unlocking(
        type_indicator=type_indicator,
        spec=spec,
        context=walk.context,
        secrets=walk.secrets,
        rejected=rejected_by("custodia-luks2" if type_indicator == luks2.TYPE_INDICATOR_LUKS2 else kind),
    )
    if credential is not None:
        return path_spec_factory.Factory.NewPathSpec(type_indicator, parent=spec), credential
    if type_indicator != dfvfs_definitions.TYPE_INDICATOR_LUKSDE:
        return None
    # libluksde refuses some LUKS1 volumes (128-bit keys): recover their master key as cryptsetup does.
    credential = walk.credentials.first_unlocking(
        type_indicator=luks.TYPE_INDICATOR_LUKS1,
        spec=spec,
        context=walk.context,
        secrets=walk.secrets,
        rejected=rejected_by("custodia-luks1"),
    )
    if credential is None:
        return None
    trace.tools["encryptedVolume"] = TOOL_LUKS1
    return path_spec_factory.Factory.NewPathSpec(luks.TYPE_INDICATOR_LUKS1, parent=spec), credential


_ACCEPTED_SECRETS = {"bitlocker": "password, recovery password or startup key", "luks": "passphrase"}
# libyal's and our own failures, as an examiner should read them (first match wins).
_CLEAR_MESSAGES = (
    ("unsupported", "its format or cipher is not supported"),
    ("not supported", "its format or cipher is not supported"),
    ("checksum", "its header is damaged"),
    ("locked", "no escrowed secret opens it"),
    ("signature", "its header is not where the format puts it"),
)


def clear_message(kind: str, error: Exception) -> str:
    """``error`` in an examiner's words: our LUKS2 reader's own text, else a fixed text, never a library's."""
    if isinstance(error, luks2.Luks2Error):
        return str(error)
    text = str(error).lower()
    reason = next((clear for pattern, clear in _CLEAR_MESSAGES if pattern in text), "its header could not be read")
    return f"the {kind} volume cannot be opened: {reason}"


def _locked_hint(*, walk: Walk, kind: str, trace: TraceRecord) -> str:
    accepted = _ACCEPTED_SECRETS.get(kind, "password")
    identifier = trace.properties.get("encryptedVolume.identifier")
    volume = f"This {kind} volume ({identifier})" if identifier else f"This {kind} volume"
    if not walk.secrets:
        return f"{volume} is locked: escrow its {accepted} for the evidence and extract again."
    return f"{volume} stays locked: none of the evidence's secrets opens it; escrow its {accepted} and extract again."


def _describe(type_indicator: str, encrypted_bytes) -> dict[str, Any]:
    """What libbde/libluksde tell of a volume without its key: identifier, method, key protectors."""
    if type_indicator == luks2.TYPE_INDICATOR_LUKS2:
        return luks2.describe(encrypted_bytes)
    properties: dict[str, Any] = {}
    volume = unlock.new_crypto_volume(type_indicator)
    try:
        volume.open_file_object(encrypted_bytes)
        identifier = getattr(volume, "identifier", None) or getattr(volume, "volume_identifier", None)
        if identifier:
            properties["encryptedVolume.identifier"] = str(identifier)
        method = getattr(volume, "encryption_method", None)
        if method is not None:
            properties["encryptedVolume.encryptionMethod"] = int(method)
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_BDE:
            properties["encryptedVolume.keyProtectors"] = volume.number_of_key_protectors
    finally:
        volume.close()
    return properties
