"""Encrypted volumes (BitLocker, LUKS): a trace describing the volume, unlocked with the evidence's
escrowed secrets through ``search.extraction.unlock`` (LUKS1 volumes libluksde refuses: through the
pure-Python ``luks`` layer), then its decrypted bytes walked like any other volume's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import luks, source, unlock
from search.extraction.traces import DataStream, ToolRef, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_DFVFS

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

TOOL_LUKS1 = ToolRef("custodia-luks1", "1 (cryptography)")

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
        trace.properties.update(_describe(type_indicator, encrypted_bytes))
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot read the encrypted volume: {error}"))
        yield trace
        return

    unlocked = _unlock(walk=walk, spec=spec, type_indicator=type_indicator, trace=trace)
    if unlocked is None:
        trace.properties["encryptedVolume.hint"] = _locked_hint(walk=walk, type_indicator=type_indicator)
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
        trace.errors.append(TraceError(tool=kind, message=f"cannot read the decrypted volume: {error}"))
        yield trace
        return
    yield trace
    yield from walk.explore(spec=encrypted_spec, parent=trace, depth=depth + 1)


def _unlock(*, walk: Walk, spec, type_indicator: str, trace: TraceRecord) -> tuple[Any, unlock.Credential] | None:
    """(the decrypted layer's path spec, the credential that opens it), or None: no secret unlocks it."""

    def rejected_by(tool: str):
        def rejected(secret: unlock.Secret, error: Exception) -> None:
            trace.errors.append(TraceError(tool=tool, message=f"{secret.kind} rejected: {error}"))

        return rejected

    credential = walk.credentials.first_unlocking(
        type_indicator=type_indicator,
        spec=spec,
        context=walk.context,
        secrets=walk.secrets,
        rejected=rejected_by(ENCRYPTION_NAMES[type_indicator]),
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


def _locked_hint(*, walk: Walk, type_indicator: str) -> str:
    kind = ENCRYPTION_NAMES[type_indicator]
    accepted = ", ".join(unlock.CREDENTIALS_BY_ENCRYPTION[type_indicator]).replace("_", " ")
    if not walk.secrets:
        return f"This {kind} volume is locked: add its {accepted} to the evidence's secrets and extract again."
    return f"None of the evidence's secrets unlocks this {kind} volume; add its {accepted} and extract again."


def _describe(type_indicator: str, encrypted_bytes) -> dict[str, Any]:
    """What libbde/libluksde tell of a volume without its key: identifier, method, key protectors."""
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
