"""Hansken's replacement model for confidential values in audit details and log lines (docs/privacy.md).

A confidential value is *tagged* where it is written: ``[user>harm]`` in a log line (``tag_value`` or
``Tagged`` as a logging argument), ``Tagged("user", "harm")`` in an audit row's details. A policy maps each
tag to one of ten transformations, a scope by a kind of replacement (R reversible, de-identified;
I irreversible, anonymised):

- Public: PR the value as it is; PI a one-way digest (SHA-256).
- Environment: ER AES-SIV under the system-wide key; EI a digest salted with the system identifier.
- Session: SR AES-SIV with the session key as its IV; SI a digest with the session key as salt.
- Message: MR a number per value, the value in an external look-up table; MI a number per distinct value.
- None: NR AES-GCM under a fresh random IV, a new result each time; NI the value removed.

An unmapped tag gets NI: what nobody decided about is removed. The mapping is the setting
``CUSTODIA_PRIVACY_POLICY`` (a dict, changed without code); ``DEFAULT_POLICY`` below is Custodia's.

``audit`` imports no app of ours, so the keys come through a small interface chosen by dotted path in
settings, as the checkpoint signer does: a ``PrivacyKeys`` (``CUSTODIA_PRIVACY_KEYS``). ``SettingsPrivacyKeys``
here reads the key from settings (the environment: ``CUSTODIA_PRIVACY_KEY``) for the tests and ``make run``;
the one backed by the key store belongs in ``evidence/`` beside ``evidence/checkpoints.py``. The external
look-up table of the message scope is a ``PrivacyLookupTable`` (``CUSTODIA_PRIVACY_LOOKUP``). The keys are
never stored beside the data: a transformed line or row holds ciphertext, digests and numbers only.

``re_identify`` turns a reversible value back into the clear one, given the key (and the session, or the
look-up table, where the scope needs them). Who may call it, with whose approval, is the caller's business.
"""

from __future__ import annotations

import abc
import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# The ten transformations, scope letter then R (reversible) or I (irreversible), in Table 2's order.
TRANSFORMATIONS = ("PR", "PI", "ER", "EI", "SR", "SI", "MR", "MI", "NR", "NI")
REVERSIBLE = frozenset({"PR", "ER", "SR", "MR", "NR"})
# The design principle: a tag nobody mapped is removed.
DEFAULT_TRANSFORMATION = "NI"

# Custodia's tags and what happens to them unless CUSTODIA_PRIVACY_POLICY says otherwise. Reversible where an
# auditor must be able to answer "who did this, on which case" (environment scope: the same person or case is
# the same pseudonym across the trail, so activity can be followed without knowing who); session scope for
# what someone searched (a workflow is visible within a session, not across them); message scope for names of
# files and paths (readable only through the look-up table, never correlated between lines).
DEFAULT_POLICY: dict[str, str] = {
    "user": "ER",
    "actor": "ER",
    "email": "ER",
    "organization": "PR",
    "case": "ER",
    "evidence_label": "ER",
    "evidence": "PR",  # an evidence item's number: no content, needed to follow custody
    "query": "SR",
    "keyword": "SI",
    "client_address": "ER",
    "link_recipient": "ER",
    "file_name": "MR",
    "path": "MR",
    "project": "MR",
    "host": "EI",
    "function": "PR",
}

# Hex characters kept of a digest (PI, EI, SI): 64 bits, so that two values of one scope practically never
# share a digest (the seed's example shows 8, which collide among a few tens of thousands of users).
DIGEST_HEX_CHARS = 16

# Bound into every ciphertext and digest, so that a value of one format or scope never opens in another.
_DOMAIN = b"custodia-privacy/1"

# A tag is a word (letters, digits, _ . -); a value is anything up to the first unescaped "]".
TAG_PATTERN = re.compile(r"\[([A-Za-z][\w.-]*)>((?:[^\]\\]|\\.)*)\]")
_ESCAPED = re.compile(r"\\(.)")

logger = logging.getLogger(__name__)


class PrivacyError(Exception):
    """A value could not be transformed or re-identified."""


class ReIdentificationError(PrivacyError):
    """A value could not be turned back into the clear one: irreversible, or the key, session or look-up
    entry given is not the one it was made with. Never says more than that (no key, no value)."""


# --- tagging ----------------------------------------------------------------------------------------


def escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("]", "\\]")


def unescape_value(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def tag_value(tag: str, value: object) -> str:
    """``[tag>value]``, the value escaped so that a "]" in it cannot end the tag early."""
    return f"[{tag}>{escape_value(str(value))}]"


@dataclass(frozen=True)
class Tagged:
    """A confidential value in audit details, or an argument of a log call (``logger.info("%s ran", Tagged(…))``
    renders as ``[user>harm]``, which the log filter then replaces)."""

    tag: str
    value: str

    def __str__(self) -> str:
        return tag_value(self.tag, self.value)


def parse_tagged(text: str) -> Tagged:
    """The one ``[tag>value]`` that ``text`` is, as a Tagged (values unescaped)."""
    match = TAG_PATTERN.fullmatch(text.strip())
    if match is None:
        raise PrivacyError("not a tagged value of the form [tag>value]")
    return Tagged(match.group(1).lower(), unescape_value(match.group(2)))


# --- the policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyPolicy:
    """Tag → transformation; any tag not in it gets ``default`` (NI)."""

    mapping: Mapping[str, str]
    default: str = DEFAULT_TRANSFORMATION

    def __post_init__(self) -> None:
        normalised = {str(tag).lower(): str(code).upper() for tag, code in self.mapping.items()}
        for tag, code in [*normalised.items(), ("(default)", self.default)]:
            if code not in TRANSFORMATIONS:
                raise ImproperlyConfigured(
                    f"CUSTODIA_PRIVACY_POLICY: {tag!r} maps to {code!r}, not one of {', '.join(TRANSFORMATIONS)}"
                )
        object.__setattr__(self, "mapping", normalised)

    def transformation(self, tag: str) -> str:
        return self.mapping.get(tag.lower(), self.default)


_policy_lock = threading.Lock()
_policy_cache: list[tuple[dict[str, str], PrivacyPolicy]] = []


def policy_from_settings() -> PrivacyPolicy:
    """The configured policy, rebuilt only when the setting changed (compared by value: cheap for a few tags)."""
    mapping = getattr(settings, "CUSTODIA_PRIVACY_POLICY", DEFAULT_POLICY)
    with _policy_lock:
        if _policy_cache and _policy_cache[0][0] == mapping:
            return _policy_cache[0][1]
        policy = PrivacyPolicy(mapping)
        _policy_cache[:] = [(dict(mapping), policy)]
        return policy


# --- the keys ---------------------------------------------------------------------------------------


class PrivacyKeys(abc.ABC):
    """The system-wide key of the replacement model and the system's identifier. The key store holds the key
    in production (its implementation lives in ``evidence/``, as ``evidence/checkpoints.py``'s signer does);
    whoever holds it can re-identify every reversible value of this environment."""

    @abc.abstractmethod
    def master_key(self) -> bytes:
        """32 secret bytes, the same for every process of this environment and for as long as its values must
        be re-identifiable."""

    @abc.abstractmethod
    def system_identifier(self) -> bytes:
        """Names this environment (one service implementation): the salt of EI, and bound into ER."""


class SettingsPrivacyKeys(PrivacyKeys):
    """The key from settings (``CUSTODIA_PRIVACY_KEY``: base64 of 32 bytes; or ``…_FILE``). In debug mode
    without one (``make run`` on a laptop) it is derived from ``SECRET_KEY`` so that the laptop works out of
    the box; anywhere else a missing key is a configuration error."""

    def __init__(self, *, key: str | None = None, system_id: str = "custodia") -> None:
        if key:
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ImproperlyConfigured("CUSTODIA_PRIVACY_KEY must be base64 of 32 bytes") from None
            if len(raw) != 32:
                raise ImproperlyConfigured("CUSTODIA_PRIVACY_KEY must be base64 of 32 bytes")
        elif settings.DEBUG:
            raw = _hkdf(settings.SECRET_KEY.encode(), info=b"debug privacy key", length=32)
        else:
            raise ImproperlyConfigured("CUSTODIA_PRIVACY_KEY must be set when DJANGO_DEBUG is off")
        if not system_id:
            raise ImproperlyConfigured("CUSTODIA_PRIVACY_SYSTEM_ID must not be empty")
        self._key = raw
        self._system_id = system_id.encode()

    def master_key(self) -> bytes:
        return self._key

    def system_identifier(self) -> bytes:
        return self._system_id

    def __repr__(self) -> str:  # never the key
        return f"SettingsPrivacyKeys(system_id={self._system_id.decode()!r})"


def _hkdf(secret: bytes, *, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=_DOMAIN + b"/" + info).derive(secret)


class DerivedKeys:
    """The working keys, each derived once from a PrivacyKeys (HKDF-SHA256, one purpose each)."""

    def __init__(self, keys: PrivacyKeys) -> None:
        master = keys.master_key()
        self.system_id = keys.system_identifier()
        # ER, SR and the look-up entries of MR: deterministic, nonce-misuse-resistant AES-SIV (512-bit key).
        self.siv = AESSIV(_hkdf(master, info=b"siv", length=64, salt=self.system_id))
        # NR: AES-256-GCM with a random 96-bit IV per value.
        self.gcm = AESGCM(_hkdf(master, info=b"gcm", length=32, salt=self.system_id))
        # EI: the digest's salt is the system identifier; keyed too, so that a list of likely names cannot be
        # digested by someone who merely knows the identifier.
        self.environment_salt = _hkdf(master, info=b"environment digest", length=32, salt=self.system_id)
        # The session key of a session is derived from its identifier (never the identifier itself, which
        # may be a credential such as a Django session key).
        self.session_seed = _hkdf(master, info=b"session", length=32, salt=self.system_id)

        # A session's key is asked for at every value of the session: remembered for the recent ones.
        self.session_key = functools.lru_cache(maxsize=4096)(self._session_key)

    def _session_key(self, session: str) -> bytes:
        return hmac.new(self.session_seed, session.encode(), hashlib.sha256).digest()


_keys_lock = threading.Lock()
_keys_cache: dict[tuple[str, str], DerivedKeys] = {}
# The last configuration asked for and its keys, to answer the next call without digesting the options.
_keys_last: list[tuple[str, dict[str, Any], DerivedKeys]] = []


def keys_from_settings() -> PrivacyKeys:
    options = getattr(settings, "CUSTODIA_PRIVACY_KEYS_OPTIONS", {})
    return import_string(settings.CUSTODIA_PRIVACY_KEYS)(**options)


def derived_keys_from_settings() -> DerivedKeys:
    """The derived keys for the configured PrivacyKeys, made once per process and configuration."""
    path = settings.CUSTODIA_PRIVACY_KEYS
    options = getattr(settings, "CUSTODIA_PRIVACY_KEYS_OPTIONS", {})
    with _keys_lock:
        if _keys_last and _keys_last[0][0] == path and _keys_last[0][1] == options:
            return _keys_last[0][2]
        # The cache key holds a digest of the options, never the key itself.
        cache_key = (path, hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest())
        derived = _keys_cache.get(cache_key)
        if derived is None:
            derived = _keys_cache[cache_key] = DerivedKeys(keys_from_settings())
        _keys_last[:] = [(path, dict(options), derived)]
        return derived


# --- the external look-up table of the message scope --------------------------------------------------


class PrivacyLookupTable(abc.ABC):
    """Where MR keeps each value (encrypted under the system-wide key) by message id and number. Apart from
    the data and from the key: neither alone reveals a value."""

    @abc.abstractmethod
    def put(self, *, message_id: str, number: int, ciphertext: str) -> None: ...

    @abc.abstractmethod
    def get(self, *, message_id: str, number: int) -> str:
        """The entry; ``KeyError`` when there is none."""


class MemoryLookupTable(PrivacyLookupTable):
    """In this process's memory: for tests and ``make run``. A durable one (a table of its own, or the evidence
    store) is what the audit trail needs once it is wired in."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def put(self, *, message_id: str, number: int, ciphertext: str) -> None:
        with self._lock:
            self._entries[(message_id, number)] = ciphertext

    def get(self, *, message_id: str, number: int) -> str:
        with self._lock:
            return self._entries[(message_id, number)]


_lookup_lock = threading.Lock()
_lookup_cache: dict[str, PrivacyLookupTable] = {}


def lookup_from_settings() -> PrivacyLookupTable:
    """The configured look-up table, one instance per process (the in-memory one must be shared)."""
    path = getattr(settings, "CUSTODIA_PRIVACY_LOOKUP", "audit.privacy.MemoryLookupTable")
    with _lookup_lock:
        table = _lookup_cache.get(path)
        if table is None:
            options = getattr(settings, "CUSTODIA_PRIVACY_LOOKUP_OPTIONS", {})
            table = _lookup_cache[path] = import_string(path)(**options)
        return table


# --- scopes: session and message --------------------------------------------------------------------

_current_session: ContextVar[str | None] = ContextVar("privacy_session", default=None)


@contextmanager
def privacy_session(session: str | None) -> Iterator[None]:
    """Values transformed in this block (log lines included) are in this session's scope. ``session`` is an
    identifier of the user's session (the Django session key, an API token's id): only a keyed digest of it
    is ever used."""
    token = _current_session.set(session)
    try:
        yield
    finally:
        _current_session.reset(token)


def current_session() -> str | None:
    return _current_session.get()


@dataclass
class Message:
    """One log line or one audit row: the scope of MR and MI. Its id names the look-up entries of its MR
    values, so it is kept with the line (the log filter puts it on the record as ``privacy_message_id``)."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    numbers: dict[tuple[str, str], int] = field(default_factory=dict)
    # (number, ciphertext) of each MR value, written to the look-up table by the replacer.
    entries: list[tuple[int, str]] = field(default_factory=list)

    def number(self, tag: str, value: str) -> tuple[int, bool]:
        """The value's number in this message, and whether it is new."""
        key = (tag, value)
        if key in self.numbers:
            return self.numbers[key], False
        number = self.numbers[key] = len(self.numbers) + 1
        return number, True


# --- the transformations ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReIdentificationError("not a value this model made") from None


def _digest(key: bytes, tag: str, value: str) -> str:
    return hmac.new(key, tag.encode() + b"\0" + value.encode(), hashlib.sha256).hexdigest()[:DIGEST_HEX_CHARS]


def _siv_data(scope: bytes, keys: DerivedKeys, tag: str, *parts: bytes) -> list[bytes]:
    # The associated data of AES-SIV: its last element works as the nonce (RFC 5297), so for SR that is the
    # session key, the seed's "session key as IV"; the same value, tag and session give the same ciphertext.
    return [_DOMAIN, scope, keys.system_id, tag.encode(), *parts]


class Replacer:
    """Applies a policy with a set of keys. Cheap enough for every audit row and log line: the keys are
    derived once; a value costs one AES-SIV or GCM encryption or one HMAC."""

    def __init__(self, *, policy: PrivacyPolicy, keys: DerivedKeys, lookup: PrivacyLookupTable | None) -> None:
        self.policy = policy
        self.keys = keys
        self.lookup = lookup

    def value(self, tag: str, value: str, *, session: str | None = None, message: Message | None = None) -> str:
        """The replacement of one value (without its tag), as its tag's transformation says."""
        tag = tag.lower()
        return self.apply(self.policy.transformation(tag), tag, value, session=session, message=message)

    def apply(
        self, code: str, tag: str, value: str, *, session: str | None = None, message: Message | None = None
    ) -> str:
        keys = self.keys
        data = value.encode()
        if code in ("SR", "SI") and session is None:
            # Outside a session (a task, a shell) there is no session to correlate within: narrow the scope to
            # none rather than widen it to the environment.
            code = "NR" if code == "SR" else "NI"
        if code == "PR":
            return value
        if code == "PI":
            return hashlib.sha256(data).hexdigest()[:DIGEST_HEX_CHARS]
        if code == "ER":
            return _b64(keys.siv.encrypt(data, _siv_data(b"ER", keys, tag)))
        if code == "EI":
            return _digest(keys.environment_salt, tag, value)
        if code == "SR":
            assert session is not None  # nosec B101 # narrows the type for mypy; the caller fell back to NR without one
            return _b64(keys.siv.encrypt(data, _siv_data(b"SR", keys, tag, keys.session_key(session))))
        if code == "SI":
            assert session is not None  # nosec B101 # narrows the type for mypy; the caller fell back to NI without one
            return _digest(keys.session_key(session), tag, value)
        if code in ("MR", "MI"):
            if message is None:
                message = Message()  # a value on its own is a message of its own
            number, new = message.number(tag, value)
            if code == "MR" and new:
                ciphertext = keys.siv.encrypt(data, _siv_data(b"MR", keys, tag, message.id.encode(), b"%d" % number))
                message.entries.append((number, _b64(ciphertext)))
                if self.lookup is not None:
                    self.lookup.put(message_id=message.id, number=number, ciphertext=_b64(ciphertext))
            return str(number)
        if code == "NR":
            iv = os.urandom(12)
            return _b64(iv + keys.gcm.encrypt(iv, data, _DOMAIN + b"NR\0" + tag.encode()))
        return ""  # NI

    def tagged(self, item: Tagged, *, session: str | None = None, message: Message | None = None) -> str:
        """``[tag>replacement]``."""
        tag = item.tag.lower()
        return tag_value(tag, self.value(tag, str(item.value), session=session, message=message))

    def line(self, text: str, *, session: str | None = None, message: Message | None = None) -> str:
        """Every ``[tag>value]`` of a log line replaced; the rest of the line as it was."""
        if "[" not in text:
            return text
        message = message if message is not None else Message()

        def replace(match: re.Match[str]) -> str:
            tagged = Tagged(match.group(1), unescape_value(match.group(2)))
            return self.tagged(tagged, session=session, message=message)

        return TAG_PATTERN.sub(replace, text)

    def details(self, details: Any, *, session: str | None = None, message: Message | None = None) -> Any:
        """Audit details with every Tagged (in dicts, lists and tuples, at any depth) replaced by its
        ``[tag>replacement]`` string, and every tagged string in them replaced as a log line would be.
        One row is one message."""
        message = message if message is not None else Message()
        if isinstance(details, Tagged):
            return self.tagged(details, session=session, message=message)
        if isinstance(details, str):
            return self.line(details, session=session, message=message)
        if isinstance(details, Mapping):
            return {key: self.details(value, session=session, message=message) for key, value in details.items()}
        if isinstance(details, list | tuple):
            return [self.details(value, session=session, message=message) for value in details]
        return details


def replacer_from_settings() -> Replacer:
    return Replacer(policy=policy_from_settings(), keys=derived_keys_from_settings(), lookup=lookup_from_settings())


def replace_line(text: str, *, session: str | None = None, message: Message | None = None) -> str:
    """A log line with the configured policy, keys and look-up table (the session from ``privacy_session``
    unless given)."""
    return replacer_from_settings().line(
        text, session=session if session is not None else current_session(), message=message
    )


def replace_details(details: Any, *, session: str | None = None, message: Message | None = None) -> Any:
    """An audit row's details with the configured policy (see ``Replacer.details``): the hook for audit_record."""
    return replacer_from_settings().details(
        details, session=session if session is not None else current_session(), message=message
    )


# --- re-identification ------------------------------------------------------------------------------


def re_identify(
    tagged: str | Tagged,
    *,
    transformation: str,
    keys: PrivacyKeys | DerivedKeys,
    session: str | None = None,
    message_id: str | None = None,
    lookup: PrivacyLookupTable | None = None,
) -> str:
    """The clear value behind one replaced ``[tag>value]`` (or Tagged), made with ``transformation`` (the one
    the policy held when it was written). ER needs the key; SR the key and the session; MR the key, the
    message's id and the look-up table; NR the key. ReIdentificationError for an irreversible one, and for a
    key, session or entry that is not the one it was made with."""
    item = parse_tagged(tagged) if isinstance(tagged, str) else Tagged(tagged.tag.lower(), tagged.value)
    code = transformation.upper()
    if code not in TRANSFORMATIONS:
        raise ReIdentificationError(f"unknown transformation {transformation!r}")
    if code not in REVERSIBLE:
        raise ReIdentificationError(f"{code} is irreversible: there is nothing to re-identify")
    if code == "PR":
        return item.value
    derived = keys if isinstance(keys, DerivedKeys) else DerivedKeys(keys)
    try:
        if code == "ER":
            return derived.siv.decrypt(_unb64(item.value), _siv_data(b"ER", derived, item.tag)).decode()
        if code == "SR":
            if session is None:
                raise ReIdentificationError("SR needs the session the value was written in")
            ad = _siv_data(b"SR", derived, item.tag, derived.session_key(session))
            return derived.siv.decrypt(_unb64(item.value), ad).decode()
        if code == "MR":
            if message_id is None or lookup is None:
                raise ReIdentificationError("MR needs the message id and the look-up table")
            try:
                number = int(item.value)
                ciphertext = lookup.get(message_id=message_id, number=number)
            except (ValueError, KeyError):
                raise ReIdentificationError("no look-up entry for this value") from None
            ad = _siv_data(b"MR", derived, item.tag, message_id.encode(), b"%d" % number)
            return derived.siv.decrypt(_unb64(ciphertext), ad).decode()
        # NR
        raw = _unb64(item.value)
        if len(raw) < 12 + 16:
            raise ReIdentificationError("not a value this model made")
        return derived.gcm.decrypt(raw[:12], raw[12:], _DOMAIN + b"NR\0" + item.tag.encode()).decode()
    except InvalidTag:
        raise ReIdentificationError("the key, session or message is not the one this value was made with") from None


def new_key() -> str:
    """A fresh CUSTODIA_PRIVACY_KEY (base64 of 32 random bytes)."""
    return _b64(secrets.token_bytes(32))


# --- logging ----------------------------------------------------------------------------------------


# What the log filter does with an exception's message (``CUSTODIA_PRIVACY_EXCEPTION_MESSAGES``). An exception's
# message is nobody's tagged value: it may hold a query, a username or a path (``FileNotFoundError: … 'case
# 2024-17/suspect.E01'``). "keep" leaves it (tagged values in it replaced); "remove" keeps the traceback's frames
# and the exception's class but removes every message that holds no tag (the default in production).
EXCEPTION_MESSAGES = ("keep", "remove")
REMOVED_MESSAGE = "(message removed by the privacy policy)"


def exception_messages_from_settings() -> str:
    mode = str(getattr(settings, "CUSTODIA_PRIVACY_EXCEPTION_MESSAGES", "remove")).lower()
    if mode not in EXCEPTION_MESSAGES:
        raise ImproperlyConfigured(
            f"CUSTODIA_PRIVACY_EXCEPTION_MESSAGES must be one of {', '.join(EXCEPTION_MESSAGES)}"
        )
    return mode


def format_exception_privately(exc: BaseException, *, keep_messages: bool) -> str:
    """The traceback as ``logging.Formatter.formatException`` writes it (the chain of causes and contexts,
    each with its frames), each exception's message kept or replaced by ``REMOVED_MESSAGE`` unless it holds a
    tag. The frames name files, lines and functions of the code, never a value."""
    chain: list[tuple[BaseException, str]] = []  # oldest first, each with the text that joins it to the next
    seen: set[int] = set()
    current: BaseException | None = exc
    joint = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, joint))
        if current.__cause__ is not None:
            current, joint = (
                current.__cause__,
                "\nThe above exception was the direct cause of the following exception:\n\n",
            )
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = (
                current.__context__,
                "\nDuring handling of the above exception, another exception occurred:\n\n",
            )
        else:
            current = None
    lines: list[str] = []
    for item, joint in reversed(chain):
        if item.__traceback__ is not None:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_tb(item.__traceback__))
        name = type(item).__qualname__
        module = type(item).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        try:
            text = str(item)
        except Exception:
            text = "<exception str() failed>"
        if not keep_messages and not TAG_PATTERN.search(text):
            text = REMOVED_MESSAGE if text else ""
        lines.append(f"{name}: {text}\n" if text else f"{name}\n")
        lines.append(joint)
    return "".join(lines).rstrip("\n")


# Celery's worker logs a failed task itself ("Task search.tasks.run_extraction[…] raised unexpected:
# FileNotFoundError('…')"): the exception's repr is an argument of the message, and the record's ``data`` (an
# ``extra``) holds it again with the whole traceback as text. Neither passes through ``exc_info``.
CELERY_TRACE_LOGGER = "celery.app.trace"


def remove_celery_failure_message(record: logging.LogRecord) -> None:
    """Removes the untagged exception message from a failure record of Celery's task tracer (its ``exc``
    argument, and ``exc`` and ``traceback`` of ``record.data``), keeping the exception's class: the privacy
    model's "remove" mode for a line that Celery writes, not Custodia."""
    arguments = record.args
    exception_repr = arguments.get("exc") if isinstance(arguments, Mapping) else None
    if not isinstance(arguments, Mapping) or not isinstance(exception_repr, str):
        return
    if TAG_PATTERN.search(exception_repr):
        return  # tagged: the filter replaces its values as in any other message
    class_name = exception_repr.split("(", 1)[0].strip() or "exception"
    without_message = f"{class_name}({REMOVED_MESSAGE!r})"
    record.args = {**arguments, "exc": without_message}
    data = getattr(record, "data", None)
    if isinstance(data, Mapping):
        exc_info = record.exc_info
        if exc_info and isinstance(exc_info, tuple) and exc_info[1] is not None:
            traceback_text = format_exception_privately(exc_info[1], keep_messages=False)
        else:
            traceback_text = without_message
        record.data = {**data, "exc": without_message, "traceback": traceback_text}


class PrivacyLogFilter(logging.Filter):
    """Replaces the tagged values of every record it sees, as the policy says, before any handler formats it:
    put it on every handler (``LOGGING["filters"]`` with ``"()": "audit.privacy.PrivacyLogFilter"``). A record
    is replaced once even when several handlers carry the filter. The record's message id (the scope of MR
    and MI, and the key of its look-up entries) is left on it as ``privacy_message_id``.

    A record's exception (``logger.exception``, ``exc_info=``) is formatted here, into ``record.exc_text``
    (which ``logging.Formatter`` writes instead of formatting ``exc_info`` again): its tagged values replaced
    and, under ``exception_messages="remove"`` (``CUSTODIA_PRIVACY_EXCEPTION_MESSAGES``, the default), every
    untagged exception message removed. ``exc_info`` stays on the record for handlers that need the type; a
    handler that formats ``exc_info`` itself (Django's AdminEmailHandler, with the frames' locals) bypasses
    this and must not be configured."""

    def __init__(
        self, name: str = "", *, replacer: Replacer | None = None, exception_messages: str | None = None
    ) -> None:
        super().__init__(name)
        self._replacer = replacer
        if exception_messages is not None and exception_messages not in EXCEPTION_MESSAGES:
            raise ImproperlyConfigured(f"exception_messages must be one of {', '.join(EXCEPTION_MESSAGES)}")
        self._exception_messages = exception_messages

    def _replace(self, text: str, message: Message) -> str:
        try:
            replacer = self._replacer or replacer_from_settings()
            return replacer.line(text, session=current_session(), message=message)
        except Exception:
            # No keys (a misconfiguration) must neither stop the caller nor let a value through: every
            # tagged value is removed, as NI would.
            return TAG_PATTERN.sub(lambda match: tag_value(match.group(1).lower(), ""), text)

    def _exception_mode(self) -> str:
        try:
            return self._exception_messages or exception_messages_from_settings()
        except ImproperlyConfigured:
            return "remove"  # a misconfigured option removes rather than lets a value through

    def _exception_text(self, record: logging.LogRecord, message: Message) -> str | None:
        exc_info = record.exc_info
        if not exc_info or not isinstance(exc_info, tuple) or exc_info[1] is None:
            return record.exc_text
        try:
            text = format_exception_privately(exc_info[1], keep_messages=self._exception_mode() == "keep")
        except Exception:
            return f"{type(exc_info[1]).__qualname__}: {REMOVED_MESSAGE}"
        return self._replace(text, message) if "[" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "privacy_applied", False):
            return True
        message = Message()
        if record.name == CELERY_TRACE_LOGGER and self._exception_mode() == "remove":
            remove_celery_failure_message(record)
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler, which reports it
            text = None
        if text is not None and "[" in text:
            record.msg = self._replace(text, message)
            record.args = None
        if record.exc_info:
            record.exc_text = self._exception_text(record, message)
        record.privacy_applied = True
        record.privacy_message_id = message.id
        return True
