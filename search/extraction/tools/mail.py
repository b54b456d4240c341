"""E-mail: RFC 822 messages (.eml), mbox, Outlook .msg (olefile) and PST/OST (libpff).

Every message gives ``email.from|to|cc|bcc|subject|sentOn|messageId|inReplyTo`` and its body as text
(plain text preferred, else HTML without tags); attachments are child traces with their bytes, so the
tools run on them in turn (an attached zip is expanded, an attached .eml parsed). An mbox is a
container: its messages are child traces holding each message's bytes, which the eml tool then reads.
A PST is a tree of folders → messages → attachments.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, BinaryIO

from search.extraction.tools.base import (
    BoundedText,
    Budget,
    ChildTrace,
    LimitExceeded,
    Limits,
    Tool,
    ToolResult,
    clean_text,
    enter_container,
    extension_of,
    iso8601,
    library_version,
    read_bounded,
    require,
)

_HEADER_LINE = re.compile(rb"^[A-Za-z0-9-]{2,76}:", re.MULTILINE)
_TELLING_HEADERS = re.compile(rb"^(from|to|subject|date|message-id|received|return-path|mime-version):", re.I | re.M)


# ------------------------------------------------------------------------------------ helpers


class _TextOfHtml(HTMLParser):
    """Text of an HTML body for search: tags dropped, script and style skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str | None:
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # malformed HTML: fall back to crude tag stripping
        return clean_text(re.sub(r"<[^>]*>", " ", html))
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    return clean_text(re.sub(r"\n\s*\n+", "\n\n", text))


def decoded_header(value: Any) -> str | None:
    """A header as readable text: RFC 2047 words decoded, folding removed."""
    if value is None:
        return None
    text = str(value)
    with contextlib.suppress(ValueError, LookupError, UnicodeError):  # undecodable words stay as written
        text = str(make_header(decode_header(text)))
    return clean_text(" ".join(text.split()))


def address_list(values: list[str]) -> list[str]:
    """``["Ann <a@x>, b@y"]`` → ``["Ann <a@x>", "b@y"]`` (display name kept: investigators search on it)."""
    addresses = []
    for display_name, address in getaddresses([value for value in values if value]):
        display_name = decoded_header(display_name) or ""
        if not address and not display_name:
            continue
        if display_name and address and display_name.strip("'\"") != address:
            addresses.append(f"{display_name} <{address}>")
        else:
            addresses.append(address or display_name)
    return addresses


def header_date(value: Any) -> str | None:
    if not value:
        return None
    try:
        return iso8601(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError, IndexError):
        return None


def headers_properties(headers: Message) -> dict[str, Any]:
    """``email.*`` from RFC 822 headers (of a message, or of a PST/MSG item's transport headers)."""
    properties: dict[str, Any] = {}
    sender = address_list(headers.get_all("From") or [])
    if sender:
        properties["email.from"] = sender[0]
    for header, property_name in (("To", "email.to"), ("Cc", "email.cc"), ("Bcc", "email.bcc")):
        addresses = address_list(headers.get_all(header) or [])
        if addresses:
            properties[property_name] = addresses
    subject = decoded_header(headers.get("Subject"))
    if subject is not None:
        properties["email.subject"] = subject
    sent_on = header_date(headers.get("Date"))
    if sent_on:
        properties["email.sentOn"] = sent_on
    for header, property_name in (("Message-ID", "email.messageId"), ("In-Reply-To", "email.inReplyTo")):
        value = clean_text(str(headers.get(header) or "")) if headers.get(header) else None
        if value:
            properties[property_name] = value
    return properties


def _attachment_name(*, file_name: str | None, ordinal: int, content_type: str) -> str:
    if file_name:
        # A name from the message is metadata: "../../x" stays a name; only "/" is unusable in a trace name.
        return file_name.replace("/", "_").replace("\\", "_") or f"attachment-{ordinal}"
    extension = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}.get(content_type, ".bin")
    return f"attachment-{ordinal}{extension}"


def attachment_trace(
    *,
    ordinal: int,
    file_name: str | None,
    content_type: str,
    data: bytes | None,
    budget: Budget,
    parent_path: str,
    extra: dict[str, Any] | None = None,
) -> ChildTrace:
    name = _attachment_name(file_name=file_name, ordinal=ordinal, content_type=content_type)
    child = ChildTrace(
        name=name,
        path_hint=f"{parent_path}/{name}",
        types=["file", "attachment"],
        properties={"file.name": name, "attachment.mimeType": content_type, **(extra or {})},
        ordinal_key=(ordinal,),
    )
    if file_name:
        child.properties["attachment.fileName"] = file_name
    if data is not None:
        try:
            budget.spend(len(data))
            child.data = data
            child.properties["file.size"] = len(data)
        except LimitExceeded as error:
            child.errors.append(str(error))
    return child


def _part_text(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def message_parts(message: Message) -> Iterator[Message]:
    """The leaf parts of ``message`` in order; an attached message (message/rfc822) is one part: its own
    body and attachments are its own, read when it is analysed as a child e-mail, never the outer one's."""
    if not message.is_multipart():
        yield message
        return
    for part in message.get_payload():
        if part.get_content_type() == "message/rfc822":
            yield part
        else:
            yield from message_parts(part)


def parse_message(*, data: bytes, budget: Budget, path: str) -> ToolResult:
    """One RFC 822 message → properties, body text, attachments (an attached message: a child e-mail)."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    properties = headers_properties(message)
    if message.defects:
        properties["email.defects"] = sorted({type(defect).__name__ for defect in message.defects})
    plain: list[str] = []
    html: list[str] = []
    children: list[ChildTrace] = []
    errors: list[str] = []
    for part in message_parts(message):
        budget.check_time()
        content_type = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        file_name = decoded_header(part.get_filename())
        is_body = disposition != "attachment" and not file_name and content_type in ("text/plain", "text/html")
        try:
            if is_body:
                text = _part_text(part)
                (plain if content_type == "text/plain" else html).append(text or "")
                continue
            embedded = content_type == "message/rfc822"
            if embedded and part.get_payload() and isinstance(part.get_payload(), list):
                payload = part.get_payload()[0].as_bytes()
            else:
                payload = part.get_payload(decode=True)
            children.append(
                attachment_trace(
                    ordinal=len(children),
                    file_name=file_name,
                    content_type=content_type,
                    data=payload if isinstance(payload, bytes) else None,
                    budget=budget,
                    parent_path=path,
                    extra={"attachment.embeddedMessage": True} if embedded else None,
                )
            )
        except LimitExceeded:
            raise
        except Exception as error:  # one broken part does not lose the message
            errors.append(f"part {content_type}: {type(error).__name__}: {error}")
    body = "\n".join(plain).strip() if any(plain) else html_to_text("\n".join(html))
    properties["email.attachmentCount"] = len(children)
    return ToolResult(properties=properties, children=children, text=clean_text(body), errors=errors, types=["email"])


def looks_like_rfc822(head: bytes) -> bool:
    """Headers first (``Name: value`` lines), with at least two telling ones (From, Subject, Received…)."""
    # The first line's match holds no line break, so it is the same on the head as on its first block:
    # most text fails here, before the head is split.
    if not _HEADER_LINE.match(head):
        return False
    first_block = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return bool(_HEADER_LINE.match(first_block)) and len(_TELLING_HEADERS.findall(first_block)) >= 2


# ---------------------------------------------------------------------------------------- eml


class EmlTool(Tool):
    name = "email"
    version = "python-email"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if head.startswith(b"From "):
            return False  # an mbox
        if mime_type == "message/rfc822" or extension_of(name) == "eml":
            return True
        return mime_type.startswith("text/") and looks_like_rfc822(head)

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        budget = Budget(limits)
        data = read_bounded(stream, max_bytes=limits.max_output_bytes, what="message")
        return parse_message(data=data, budget=budget, path="")


# --------------------------------------------------------------------------------------- mbox


def split_mbox(stream: BinaryIO, *, budget: Budget) -> Iterator[tuple[bytes, bytes]]:
    """(``From `` line, message bytes) for each message, as `mailbox.mbox` splits them, from a stream.

    `mailbox.mbox` wants a path; this reads the stream line by line instead, so nothing is copied to
    disk and memory holds one message at a time.
    """
    from_line: bytes | None = None
    lines: list[bytes] = []
    size = 0
    for line in stream:
        if line.startswith(b"From "):
            if from_line is not None:
                yield from_line, b"".join(lines)
            from_line, lines, size = line.rstrip(b"\r\n"), [], 0
            budget.count_member()
            continue
        if from_line is None:
            continue  # bytes before the first "From " line are not a message
        size += len(line)
        budget.spend(len(line))
        lines.append(line)
    if from_line is not None:
        yield from_line, b"".join(lines)


class MboxTool(Tool):
    name = "mbox"
    version = "python-email"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if extension_of(name) == "mbox" or mime_type == "application/mbox":
            return True
        return head.startswith(b"From ") and looks_like_rfc822(head.split(b"\n", 1)[-1])

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="mbox")
        budget = Budget(limits)
        children = []
        for ordinal, (from_line, message) in enumerate(split_mbox(stream, budget=budget)):
            # The message trace carries the bytes; the eml tool reads its headers, body and attachments.
            message_name = f"message-{ordinal + 1:05d}.eml"
            children.append(
                ChildTrace(
                    name=message_name,
                    path_hint=f"/{message_name}",
                    types=["email"],
                    properties={"mbox.fromLine": from_line.decode("utf-8", "replace")},
                    data=message,
                    ordinal_key=(ordinal,),
                )
            )
        return ToolResult(
            properties={"mailbox.type": "mbox", "mailbox.messageCount": len(children)},
            children=children,
            types=["mailbox"],
        )


# ------------------------------------------------------------------------------ MAPI (msg, pst)

PR_MESSAGE_CLASS = 0x001A
PR_SUBJECT = 0x0037
PR_CLIENT_SUBMIT_TIME = 0x0039
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_SENDER_NAME = 0x0C1A
PR_SENDER_EMAIL_ADDRESS = 0x0C1F
PR_SENDER_SMTP_ADDRESS = 0x5D01
PR_DISPLAY_BCC = 0x0E02
PR_DISPLAY_CC = 0x0E03
PR_DISPLAY_TO = 0x0E04
PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_BODY = 0x1000
PR_BODY_HTML = 0x1013
PR_INTERNET_MESSAGE_ID = 0x1035
PR_IN_REPLY_TO_ID = 0x1042
PR_CREATION_TIME = 0x3007
PR_LAST_MODIFICATION_TIME = 0x3008
PR_DISPLAY_NAME = 0x3001
PR_EMAIL_ADDRESS = 0x3003
PR_SMTP_ADDRESS = 0x39FE
PR_RECIPIENT_TYPE = 0x0C15
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E
PR_ATTACH_METHOD = 0x3705
ATTACH_EMBEDDED_MESSAGE = 5

_RECIPIENT_PROPERTY = {1: "email.to", 2: "email.cc", 3: "email.bcc"}


def mapi_item_result(
    *,
    mapi: dict[int, Any],
    recipients: list[dict[int, Any]],
    body: str | None,
    html_body: str | None,
) -> tuple[dict[str, Any], list[str], str | None]:
    """Properties, types and text of one Outlook item from its MAPI properties (msg and PST alike).

    Transport headers, when the item came over SMTP, are the best source (they are what the sender's
    server wrote); MAPI display properties fill in what they lack.
    """
    message_class = str(mapi.get(PR_MESSAGE_CLASS) or "IPM.Note")
    is_mail = message_class.upper().startswith(("IPM.NOTE", "REPORT.IPM.NOTE", "IPM.POST"))
    properties: dict[str, Any] = {}
    headers = mapi.get(PR_TRANSPORT_MESSAGE_HEADERS)
    if isinstance(headers, str) and headers.strip():
        properties.update(headers_properties(email.message_from_string(headers.lstrip(), policy=email.policy.compat32)))
    subject = clean_text(mapi.get(PR_SUBJECT)) if isinstance(mapi.get(PR_SUBJECT), str) else None
    if subject is not None:
        # MAPI subjects may start with a 2-character prefix marker (\x01 + length); clean_text drops \x01.
        raw = mapi[PR_SUBJECT]
        if raw.startswith("\x01") and len(raw) >= 2:
            subject = clean_text(raw[2:])
        properties["email.subject"] = subject
    if "email.from" not in properties:
        sender_name = clean_text(mapi.get(PR_SENDER_NAME)) if isinstance(mapi.get(PR_SENDER_NAME), str) else None
        sender_address = next(
            (
                clean_text(mapi.get(tag))
                for tag in (PR_SENDER_SMTP_ADDRESS, PR_SENDER_EMAIL_ADDRESS)
                if isinstance(mapi.get(tag), str) and "@" in mapi.get(tag)
            ),
            None,
        )
        if sender_name or sender_address:
            properties["email.from"] = (
                f"{sender_name} <{sender_address}>" if sender_name and sender_address else sender_address or sender_name
            )
    # Recipients the transport headers named win; the MAPI recipient table fills in the others.
    named_by_headers = {name for name in ("email.to", "email.cc", "email.bcc") if name in properties}
    for recipient in recipients:
        property_name = _RECIPIENT_PROPERTY.get(int(recipient.get(PR_RECIPIENT_TYPE) or 1), "email.to")
        if property_name in named_by_headers:
            continue
        name = clean_text(recipient.get(PR_DISPLAY_NAME)) if isinstance(recipient.get(PR_DISPLAY_NAME), str) else None
        address = next(
            (
                clean_text(recipient.get(tag))
                for tag in (PR_SMTP_ADDRESS, PR_EMAIL_ADDRESS)
                if isinstance(recipient.get(tag), str) and "@" in recipient.get(tag)
            ),
            None,
        )
        entry = f"{name} <{address}>" if name and address and name != address else address or name
        if entry:
            properties.setdefault(property_name, []).append(entry)
    for tag, property_name in ((PR_DISPLAY_TO, "email.to"), (PR_DISPLAY_CC, "email.cc")):
        value = mapi.get(tag)
        if property_name not in properties and isinstance(value, str) and clean_text(value):
            properties[property_name] = [part.strip() for part in value.split(";") if part.strip()]
    if "email.sentOn" not in properties:
        for tag in (PR_CLIENT_SUBMIT_TIME, PR_MESSAGE_DELIVERY_TIME, PR_CREATION_TIME):
            if isinstance(mapi.get(tag), datetime):
                properties["email.sentOn"] = iso8601(mapi[tag])
                break
    if "email.messageId" not in properties and isinstance(mapi.get(PR_INTERNET_MESSAGE_ID), str):
        properties["email.messageId"] = clean_text(mapi[PR_INTERNET_MESSAGE_ID])
    if isinstance(mapi.get(PR_MESSAGE_DELIVERY_TIME), datetime):
        properties["email.receivedOn"] = iso8601(mapi[PR_MESSAGE_DELIVERY_TIME])
    properties["email.messageClass"] = message_class
    text = clean_text(body) if body and body.strip() else (html_to_text(html_body) if html_body else None)
    properties = {key: value for key, value in properties.items() if value not in (None, "", [])}
    if not is_mail:
        # Appointments, contacts, distribution lists: the same MAPI facts, not an e-mail.
        properties = {key.replace("email.", "outlookItem.", 1): value for key, value in properties.items()}
    return properties, ["email"] if is_mail else ["outlookItem"], text


# ---------------------------------------------------------------------------------------- msg

_MSG_STRING_TYPES = {0x001F: "utf-16-le", 0x001E: "cp1252"}
_MSG_FIXED_TYPES = {0x0002, 0x0003, 0x000B, 0x0040, 0x0014}


def _filetime(value: int) -> datetime | None:
    from datetime import UTC, timedelta

    if value <= 0:
        return None
    try:
        return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def read_msg_properties(ole, storage: str, *, header_size: int) -> dict[int, Any]:
    """MAPI properties of one .msg storage: variable ones from ``__substg1.0_*`` streams, fixed ones
    (times, integers, booleans) from ``__properties_version1.0`` ([MS-OXMSG] 2.4)."""
    prefix = f"{storage}/" if storage else ""
    properties: dict[int, Any] = {}
    for entry in ole.listdir(streams=True, storages=False):
        path = "/".join(entry)
        if not path.startswith(prefix) or "/" in path[len(prefix) :]:
            continue
        stream_name = entry[-1]
        if not stream_name.startswith("__substg1.0_") or len(stream_name) != 20:
            continue
        try:
            tag, value_type = int(stream_name[12:16], 16), int(stream_name[16:20], 16)
        except ValueError:
            continue
        raw = ole.openstream(path).read()
        if value_type in _MSG_STRING_TYPES:
            properties[tag] = raw.decode(_MSG_STRING_TYPES[value_type], "replace").rstrip("\x00")
        elif value_type == 0x0102:
            properties[tag] = raw
    fixed_path = f"{prefix}__properties_version1.0"
    if ole.exists(fixed_path):
        raw = ole.openstream(fixed_path).read()
        for offset in range(header_size, len(raw) - 15, 16):
            value_type = int.from_bytes(raw[offset : offset + 2], "little")
            tag = int.from_bytes(raw[offset + 2 : offset + 4], "little")
            value = raw[offset + 8 : offset + 16]
            if value_type not in _MSG_FIXED_TYPES or tag in properties:
                continue
            if value_type == 0x0040:
                properties[tag] = _filetime(int.from_bytes(value, "little"))
            elif value_type == 0x000B:
                properties[tag] = bool(value[0])
            else:
                properties[tag] = int.from_bytes(value[:4] if value_type == 0x0003 else value, "little", signed=True)
    return properties


class MsgTool(Tool):
    """Outlook .msg ([MS-OXMSG]) read with olefile: no RTF decompression, bodies from PR_BODY/PR_BODY_HTML."""

    name = "outlook-msg"
    version = f"olefile-{library_version('olefile')}"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        is_ole = head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
        return is_ole and (extension_of(name) == "msg" or mime_type == "application/vnd.ms-outlook")

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        olefile = require("olefile", package="olefile")
        budget = Budget(limits)
        data = read_bounded(stream, max_bytes=limits.max_output_bytes, what=".msg file")
        with olefile.OleFileIO(data) as ole:
            if not ole.exists("__properties_version1.0"):
                raise ValueError("not an Outlook message: no __properties_version1.0 stream")
            mapi = read_msg_properties(ole, "", header_size=32)
            storages = sorted({entry[0] for entry in ole.listdir(streams=True, storages=True) if len(entry) > 1})
            recipients = [
                read_msg_properties(ole, storage, header_size=8)
                for storage in storages
                if storage.startswith("__recip_version1.0_")
            ]
            attachments = [storage for storage in storages if storage.startswith("__attach_version1.0_")]
            properties, types, text = mapi_item_result(
                mapi=mapi, recipients=recipients, body=_str(mapi.get(PR_BODY)), html_body=_html(mapi.get(PR_BODY_HTML))
            )
            children = []
            errors: list[str] = []
            for ordinal, storage in enumerate(attachments):
                budget.count_member()
                attachment = read_msg_properties(ole, storage, header_size=8)
                content = attachment.get(0x3701)
                extra = {}
                if attachment.get(PR_ATTACH_METHOD) == ATTACH_EMBEDDED_MESSAGE or ole.exists(
                    f"{storage}/__substg1.0_3701000D"
                ):
                    extra["attachment.embeddedMessage"] = True
                child = attachment_trace(
                    ordinal=ordinal,
                    file_name=_str(attachment.get(PR_ATTACH_LONG_FILENAME)) or _str(attachment.get(PR_ATTACH_FILENAME)),
                    content_type=_str(attachment.get(PR_ATTACH_MIME_TAG)) or "application/octet-stream",
                    data=content if isinstance(content, bytes) else None,
                    budget=budget,
                    parent_path="",
                    extra=extra,
                )
                if extra:
                    child.errors.append("embedded Outlook message: not expanded")
                children.append(child)
        properties["email.attachmentCount"] = len(children)
        return ToolResult(properties=properties, children=children, text=text, errors=errors, types=types)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _html(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return _str(value)


# ---------------------------------------------------------------------------------------- PST


def _pff_properties(item) -> dict[int, Any]:
    """The first record set of a libpff item as {property tag: value}."""
    properties: dict[int, Any] = {}
    try:
        record_sets = list(item.record_sets)
    except (OSError, AttributeError):
        return properties
    if not record_sets:
        return properties
    for entry in record_sets[0].entries:
        try:
            properties[entry.entry_type] = _pff_value(entry)
        except (OSError, ValueError, TypeError, OverflowError):
            continue
    return properties


def _pff_value(entry) -> Any:
    value_type = entry.value_type
    if value_type in (0x001F, 0x001E):
        return entry.data_as_string
    if value_type == 0x0040:
        return entry.data_as_datetime
    if value_type in (0x0002, 0x0003, 0x0014):
        return entry.data_as_integer
    if value_type == 0x000B:
        return entry.data_as_boolean
    return entry.data


def _pff_recipients(message) -> list[dict[int, Any]]:
    try:
        recipients = message.recipients
    except (OSError, AttributeError):
        return []
    if recipients is None:
        return []
    found = []
    for record_set in recipients.record_sets:
        recipient = {}
        for entry in record_set.entries:
            try:
                recipient[entry.entry_type] = _pff_value(entry)
            except (OSError, ValueError, TypeError, OverflowError):
                continue
        found.append(recipient)
    return found


def _bytes_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


class PstTool(Tool):
    """PST/OST through libpff: folders → items (messages, appointments, contacts…) → attachments."""

    name = "libpff"
    version = library_version("libpff-python")

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return head.startswith(b"!BDN") or extension_of(name) in ("pst", "ost")

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="PST")
        pypff = require("pypff", package="libpff-python")
        budget = Budget(limits)
        pst = pypff.file()
        pst.open_file_object(stream)
        try:
            properties: dict[str, Any] = {"mailbox.type": "pst"}
            store = _pff_properties(pst.message_store) if pst.message_store is not None else {}
            if isinstance(store.get(PR_DISPLAY_NAME), str):
                properties["mailbox.displayName"] = store[PR_DISPLAY_NAME]
            text = BoundedText(max_chars=limits.max_text_chars)
            root = pst.root_folder
            children = self._folder_children(folder=root, path="", budget=budget, text=text)
            properties["mailbox.messageCount"] = budget.members
            return ToolResult(properties=properties, children=children, types=["mailbox"])
        finally:
            pst.close()

    def _folder_children(self, *, folder, path: str, budget: Budget, text: BoundedText) -> list[ChildTrace]:
        children: list[ChildTrace] = []
        # Folders first, then items, each in the PST's own order (identifiers are stable per file).
        for index in range(folder.number_of_sub_folders):
            budget.check_time()
            sub_folder = folder.get_sub_folder(index)
            folder_name = clean_text(sub_folder.name) or f"folder-{index}"
            folder_path = f"{path}/{folder_name}"
            trace = ChildTrace(
                name=folder_name,
                path_hint=folder_path,
                types=["folder", "emailFolder"],
                properties={"emailFolder.name": folder_name, "emailFolder.path": folder_path},
                ordinal_key=(0, index),
            )
            try:
                trace.children = self._folder_children(folder=sub_folder, path=folder_path, budget=budget, text=text)
                trace.properties["emailFolder.itemCount"] = sub_folder.number_of_sub_messages
            except (OSError, LimitExceeded) as error:
                trace.errors.append(f"{type(error).__name__}: {error}")
                if isinstance(error, LimitExceeded):
                    children.append(trace)
                    raise
            children.append(trace)
        for index in range(folder.number_of_sub_messages):
            budget.count_member()
            try:
                item = folder.get_sub_message(index)
                children.append(self._item(item=item, index=index, path=path, budget=budget))
            except OSError as error:
                children.append(
                    ChildTrace(
                        name=f"item-{index}",
                        path_hint=f"{path}/item-{index}",
                        types=["outlookItem"],
                        ordinal_key=(1, index),
                        errors=[f"cannot read item: {error}"],
                    )
                )
        return children

    def _item(self, *, item, index: int, path: str, budget: Budget, depth: int = 0) -> ChildTrace:
        mapi = _pff_properties(item)
        body = _bytes_text(_safe(lambda: item.plain_text_body))
        html_body = None if body else _bytes_text(_safe(lambda: item.html_body))
        properties, types, text = mapi_item_result(
            mapi=mapi, recipients=_pff_recipients(item), body=body, html_body=html_body
        )
        subject = properties.get("email.subject") or properties.get("outlookItem.subject") or ""
        item_name = f"{index + 1:05d} {subject}".strip()[:120].replace("/", "_")
        item_path = f"{path}/{item_name}"
        trace = ChildTrace(
            name=item_name,
            path_hint=item_path,
            types=types,
            properties=properties,
            text=clean_text(text[: budget.limits.max_text_chars]) if text else None,
            ordinal_key=(1, index),
        )
        number_of_attachments = _safe(lambda: item.number_of_attachments) or 0
        for ordinal in range(number_of_attachments):
            budget.check_time()
            try:
                trace.children.append(
                    self._attachment(item=item, ordinal=ordinal, path=item_path, budget=budget, depth=depth)
                )
            except OSError as error:
                trace.errors.append(f"attachment {ordinal}: {error}")
        trace.properties["email.attachmentCount"] = number_of_attachments
        return trace

    def _attachment(self, *, item, ordinal: int, path: str, budget: Budget, depth: int) -> ChildTrace:
        attachment = item.get_attachment(ordinal)
        mapi = _pff_properties(attachment)
        embedded = mapi.get(PR_ATTACH_METHOD) == ATTACH_EMBEDDED_MESSAGE
        size = attachment.size or 0
        data = None
        if not embedded and size:
            if not budget.can_spend(size):
                data = None
            else:
                attachment.seek_offset(0)
                data = attachment.read_buffer(size)
        child = attachment_trace(
            ordinal=ordinal,
            file_name=_str(_safe(lambda: attachment.long_filename))
            or _str(mapi.get(PR_ATTACH_LONG_FILENAME))
            or _str(mapi.get(PR_ATTACH_FILENAME)),
            content_type=_str(mapi.get(PR_ATTACH_MIME_TAG))
            or ("message/rfc822" if embedded else "application/octet-stream"),
            data=data,
            budget=budget,
            parent_path=path,
            extra={"attachment.embeddedMessage": True} if embedded else None,
        )
        if embedded:
            return self._embedded_message(
                attachment=attachment, child=child, ordinal=ordinal, budget=budget, depth=depth
            )
        if size and data is None:
            child.errors.append(f"output limit of {budget.limits.max_output_bytes} bytes reached: content not read")
        return child

    def _embedded_message(self, *, attachment, child: ChildTrace, ordinal: int, budget: Budget, depth: int):
        """An attached Outlook message as a child e-mail: its own headers, body and attachments, under the
        attachment's name."""
        sub_item = _embedded_message_of(attachment)
        if sub_item is None:
            child.errors.append("embedded Outlook message: libpff finds no item in the attachment")
            return child
        if depth >= _MAX_EMBEDDED_DEPTH:
            child.errors.append(f"embedded Outlook message: nested deeper than {_MAX_EMBEDDED_DEPTH}; not expanded")
            return child
        message = self._item(
            item=sub_item, index=ordinal, path=child.path_hint.rsplit("/", 1)[0], budget=budget, depth=depth + 1
        )
        message.name, message.path_hint, message.ordinal_key = child.name, child.path_hint, child.ordinal_key
        message.types = [*child.types, *(kind for kind in message.types if kind not in child.types)]
        message.properties = {**child.properties, **message.properties}
        message.errors = [*child.errors, *message.errors]
        return message


_MAX_EMBEDDED_DEPTH = 8  # a message attached to a message attached to … : deeper is refused, not followed


def _embedded_message_of(attachment):
    """The Outlook item an "embedded message" attachment holds (libpff's sub-item), or None."""
    if not (_safe(lambda: attachment.number_of_sub_items) or 0):
        return None
    return _safe(lambda: attachment.get_sub_item(0))


def _safe(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except (OSError, AttributeError, ValueError):
        return None
