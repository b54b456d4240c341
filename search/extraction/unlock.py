"""Unlocking encrypted volumes: the one way the extraction walker and the data service do it.

Both hold an evidence's escrowed secrets and a volume (BitLocker, LUKS) to open. This module owns:

- how a caller may spell each credential (``CREDENTIAL_SPELLINGS``) and which credentials each
  encryption accepts (``CREDENTIALS_BY_ENCRYPTION``). Which escrowed secret is which credential is the
  evidence app's one table, ``evidence.reading.SECRET_KIND_CREDENTIALS``: extraction receives its
  secrets already named as credentials;
- trying the candidates against the volume itself, with libbde/libluksde (or, for the LUKS1 volumes
  libluksde refuses, the pure-Python recovery in ``luks``; for LUKS2, which libluksde cannot read, the
  one in ``luks2``), so that a wrong secret is told from a right one (dfVFS opens a BitLocker or LUKS
  volume even when no credential unlocks it);
- setting the one that unlocks in dfVFS's key chain, and forgetting it afterwards. The key chain is
  process-wide: ``KEY_CHAIN_LOCK`` serialises every change to it, and a secret never goes into a path
  spec (path specs are serialised into traces' data paths).

A BitLocker startup key (.BEK) is read by libbde only from a path: it is written to a private (0600)
file in a temporary folder that lives as long as the credentials that name it.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import luks, luks2

# The spellings of each credential a caller may use (the walker also runs outside a case: scripts, the
# benchmarks, tests), as dfVFS/libbde/libluksde name it. A LUKS passphrase is libluksde's password.
CREDENTIAL_SPELLINGS = {
    "password": "password",
    "passphrase": "password",
    "recovery_password": "recovery_password",
    "recoveryPassword": "recovery_password",
    "recovery-password": "recovery_password",
    "startup_key": "startup_key",
    "startupKey": "startup_key",
    "startup-key": "startup_key",
}
# The credentials each encrypted layer accepts, in dfVFS type indicators (LUKS1: the pure-Python layer).
CREDENTIALS_BY_ENCRYPTION = {
    dfvfs_definitions.TYPE_INDICATOR_BDE: ("password", "recovery_password", "startup_key"),
    dfvfs_definitions.TYPE_INDICATOR_LUKSDE: ("password",),
    luks.TYPE_INDICATOR_LUKS1: ("password",),
    luks2.TYPE_INDICATOR_LUKS2: ("password",),
}
# dfVFS's key chain is process-wide: every change to it, and a read that sets, uses and removes its
# credentials, holds this lock. Re-entrant, so that such a read can set credentials while holding it.
KEY_CHAIN_LOCK = threading.RLock()

# What a refused candidate raises. libbde and libluksde raise anything; the LUKS1 recovery only these.
_REFUSALS: dict[str, type[Exception] | tuple[type[Exception], ...]] = {
    luks.TYPE_INDICATOR_LUKS1: (OSError, ValueError),
    luks2.TYPE_INDICATOR_LUKS2: (OSError, ValueError),
}


@dataclass
class Secret:
    """One escrowed secret: the credential it is (``password``, …), its value and its kind as given."""

    credential: str
    value: Any
    kind: str


@dataclass(frozen=True)
class Credential:
    """A secret as dfVFS's key chain takes it: a startup key's value is the path of its key file."""

    secret: Secret
    value: str

    @property
    def name(self) -> str:
        return self.secret.credential


def normalise_secrets(secrets) -> list[Secret]:
    """Accept the key store's ``[{kind, value}, …]``, or ``{kind: value | [values]}``; keep the order given."""
    if not secrets:
        return []
    pairs: list[tuple[str, Any]] = []
    if isinstance(secrets, Mapping) and "kind" not in secrets:
        for kind, value in secrets.items():
            values = value if isinstance(value, list | tuple) else [value]
            pairs.extend((kind, single) for single in values)
    else:
        items = [secrets] if isinstance(secrets, Mapping) else list(secrets)
        pairs.extend((item["kind"], item["value"]) for item in items)
    normalised = []
    for kind, value in pairs:
        credential = CREDENTIAL_SPELLINGS.get(kind)
        if credential is not None and value not in (None, ""):
            normalised.append(Secret(credential=credential, value=value, kind=kind))
    return normalised


def encrypted_layers(path_spec) -> list:
    """The encrypted layers of a path spec's chain, outermost first (inner ones need the outer ones open)."""
    chain = []
    while path_spec is not None:
        if path_spec.type_indicator in CREDENTIALS_BY_ENCRYPTION:
            chain.append(path_spec)
        path_spec = getattr(path_spec, "parent", None)
    return list(reversed(chain))


def new_crypto_volume(type_indicator: str):
    """A fresh libbde or libluksde volume, to describe or unlock an encrypted volume with."""
    if type_indicator == dfvfs_definitions.TYPE_INDICATOR_BDE:
        import pybde

        return pybde.volume()
    import pyluksde

    return pyluksde.volume()


def _key_chain_entries() -> dict:
    # dfVFS's KeyChain sets and gets credentials but cannot remove one path spec's (only Empty(), which
    # would also drop those another walk in this process still reads with): remove them from its table.
    return dfvfs_resolver.Resolver.key_chain._credentials_per_path_spec


class KeyChainCredentials:
    """The credentials one walk or one read sets in dfVFS's key chain, and their startup-key files.

    ``forget()`` (or leaving the ``with`` block) puts back what the key chain held for those path specs
    before, and deletes the key files: no secret of the evidence stays behind.
    """

    def __init__(self):
        self._previous: dict[Any, dict | None] = {}  # comparable → the key chain's entry before ours
        self._remembered = 0
        self._key_directory: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> KeyChainCredentials:
        return self

    def __exit__(self, *exc_info) -> None:
        self.forget()

    def first_unlocking(
        self,
        *,
        type_indicator: str,
        spec,
        context,
        secrets: list[Secret],
        rejected: Callable[[Secret, Exception], None] | None = None,
    ) -> Credential | None:
        """The first of ``secrets`` that unlocks the ``type_indicator`` volume in the bytes ``spec`` names.

        Secrets the encryption does not accept are skipped; ``rejected(secret, error)`` hears of each
        candidate that failed with an error rather than simply being wrong."""
        accepted = CREDENTIALS_BY_ENCRYPTION[type_indicator]
        refusals = _REFUSALS.get(type_indicator, Exception)
        for secret in secrets:
            if secret.credential not in accepted:
                continue
            try:
                encrypted_bytes = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=context)
                credential = self.credential_of(secret)
                if _unlocks(type_indicator=type_indicator, encrypted_bytes=encrypted_bytes, credential=credential):
                    return credential
            except refusals as error:
                if rejected is not None:
                    rejected(secret, error)
        return None

    def remember(self, *, encrypted_spec, credential: Credential) -> None:
        """Set ``credential`` in the key chain for ``encrypted_spec`` (in place of any it held) until forget()."""
        with KEY_CHAIN_LOCK:
            entries = _key_chain_entries()
            previous = entries.pop(encrypted_spec.comparable, None)
            self._previous.setdefault(encrypted_spec.comparable, previous)
            dfvfs_resolver.Resolver.key_chain.SetCredential(encrypted_spec, credential.name, credential.value)
            self._remembered += 1

    def forget(self) -> None:
        """Put the key chain back as it was for the path specs remembered, and delete the key files."""
        with KEY_CHAIN_LOCK:
            entries = _key_chain_entries()
            for comparable, previous in self._previous.items():
                if previous is None:
                    entries.pop(comparable, None)
                else:
                    entries[comparable] = previous
            self._previous = {}
        if self._key_directory is not None:
            self._key_directory.cleanup()
            self._key_directory = None

    def credential_of(self, secret: Secret) -> Credential:
        """``secret`` as the key chain takes it; a startup key is written to a private (0600) key file."""
        if secret.credential != "startup_key":
            return Credential(secret=secret, value=str(secret.value))
        # libbde reads a startup key (.BEK) only from a path: keep it in a private folder meanwhile.
        data = secret.value
        if isinstance(data, str):
            data = base64.b64decode(data)
        if self._key_directory is None:
            self._key_directory = tempfile.TemporaryDirectory(prefix="custodia-keys-")
        # Named by the credentials set so far: a remembered key file is never overwritten by a later try.
        key_path = os.path.join(self._key_directory.name, f"startup-{self._remembered}.bek")
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as key_file:
            key_file.write(data)
        return Credential(secret=secret, value=key_path)


def _unlocks(*, type_indicator: str, encrypted_bytes, credential: Credential) -> bool:
    if type_indicator == luks.TYPE_INDICATOR_LUKS1:
        return luks.recover_master_key(file_object=encrypted_bytes, passphrase=credential.value) is not None
    if type_indicator == luks2.TYPE_INDICATOR_LUKS2:
        return luks2.recover_volume_key(file_object=encrypted_bytes, passphrase=credential.value) is not None
    volume = new_crypto_volume(type_indicator)
    if credential.name == "password":
        volume.set_password(credential.value)
    elif credential.name == "recovery_password":
        volume.set_recovery_password(credential.value)
    else:
        volume.read_startup_key(credential.value)
    try:
        volume.open_file_object(encrypted_bytes)
        return not volume.is_locked()
    except OSError:
        return False
    finally:
        volume.close()
