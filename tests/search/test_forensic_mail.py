"""Embedded messages (issue 18): an e-mail forwarded inline (a message/rfc822 part) and an Outlook message
attached to a PST message become child e-mail traces with their own headers, body and attachments.

The answer key for RFC 822 is Python's email package reading the same bytes (its ``policy.default``
parser, not the compat32 one the tool uses). No Debian tool writes a PST, so the PST rule is checked
on libpff's embedded-item API shape (``attachment.number_of_sub_items`` / ``get_sub_item``) with stand-ins.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
from email.message import EmailMessage

from search.extraction.tools import analyse
from search.extraction.tools.base import Budget, Limits
from search.extraction.tools.mail import ATTACH_EMBEDDED_MESSAGE, PR_ATTACH_METHOD, PstTool

INNER_ATTACHMENT = b"%PDF-1.4 not really, but bytes of a report\n" * 20


def forwarded_message() -> bytes:
    inner = EmailMessage()
    inner["From"] = "Alice <alice@example.org>"
    inner["To"] = "Bob <bob@example.org>"
    inner["Subject"] = "The numbers for Q3"
    inner["Message-ID"] = "<inner-1@example.org>"
    inner.set_content("Bob, the numbers are in the attached report.\n")
    inner.add_attachment(INNER_ATTACHMENT, maintype="application", subtype="octet-stream", filename="q3.bin")
    outer = EmailMessage()
    outer["From"] = "Bob <bob@example.org>"
    outer["To"] = "Carol <carol@example.org>"
    outer["Subject"] = "Fwd: The numbers for Q3"
    outer["Message-ID"] = "<outer-1@example.org>"
    outer.set_content("Carol, see below.\n")
    outer.add_attachment(inner)  # message/rfc822, inline (no file name)
    return outer.as_bytes()


def test_an_inline_forwarded_message_is_a_child_email_with_its_own_body_and_attachments():
    data = forwarded_message()
    key = email.message_from_bytes(data, policy=email.policy.default)
    (forwarded_part,) = [part for part in key.iter_parts() if part.get_content_type() == "message/rfc822"]
    inner_key = forwarded_part.get_content()
    inner_body = inner_key.get_body(preferencelist=("plain",)).get_content().strip()
    (inner_attachment_key,) = list(inner_key.iter_attachments())

    trace = analyse(stream_opener=lambda: io.BytesIO(data), name="forward.eml", limits=Limits())
    assert trace.properties["email.subject"] == key["Subject"]
    assert trace.text.strip() == key.get_body(preferencelist=("plain",)).get_content().strip()
    assert inner_body not in trace.text  # the forwarded body is the child's, not the outer message's
    assert trace.properties["email.attachmentCount"] == 1  # the inner attachment is not the outer's

    (child,) = trace.children
    assert "email" in child.types and child.properties["attachment.embeddedMessage"] is True
    assert child.properties["email.subject"] == inner_key["Subject"]
    assert child.properties["email.messageId"] == inner_key["Message-ID"]
    assert child.text.strip() == inner_body
    (grandchild,) = child.children
    assert grandchild.name == inner_attachment_key.get_filename()
    assert hashlib.sha256(grandchild.data).digest() == hashlib.sha256(inner_attachment_key.get_content()).digest()


# ---------------------------------------------------------------------- PST: libpff's embedded items


class FakeRecordSet:
    def __init__(self, values: dict[int, object]):
        self.entries = [FakeEntry(tag, value) for tag, value in values.items()]


class FakeEntry:
    """A MAPI property as pypff's record entry gives it."""

    def __init__(self, tag: int, value: str | int):
        self.entry_type = tag
        self.value_type = 0x001F if isinstance(value, str) else 0x0003
        self.data_as_string = value if isinstance(value, str) else None
        self.data_as_integer = value if isinstance(value, int) else None


class FakeItem:
    """What pypff gives for a message: record sets of MAPI properties, a body, attachments."""

    def __init__(self, *, subject: str, body: str, attachments=()):
        self.record_sets = [FakeRecordSet({0x0037: subject, 0x001A: "IPM.Note"})]
        self.plain_text_body = body.encode()
        self.html_body = None
        self.attachments = list(attachments)
        self.recipients = None

    @property
    def number_of_attachments(self):
        return len(self.attachments)

    def get_attachment(self, index):
        return self.attachments[index]


class FakeAttachment:
    def __init__(self, *, data: bytes | None = None, item: FakeItem | None = None, name: str | None = None):
        method = ATTACH_EMBEDDED_MESSAGE if item is not None else 1
        self.record_sets = [FakeRecordSet({PR_ATTACH_METHOD: method})]
        self.data = data or b""
        self.item = item
        self.long_filename = name
        self.size = len(self.data)
        self.offset = 0

    @property
    def number_of_sub_items(self):
        return 1 if self.item is not None else 0

    def get_sub_item(self, index):
        assert index == 0
        return self.item

    def seek_offset(self, offset):
        self.offset = offset

    def read_buffer(self, size):
        return self.data[self.offset : self.offset + size]


def test_an_outlook_message_attached_in_a_pst_is_a_child_email():
    inner = FakeItem(
        subject="Original request",
        body="Please wire the money by Friday.",
        attachments=[FakeAttachment(data=b"IBAN DE00 0000\n", name="account.txt")],
    )
    outer = FakeItem(
        subject="FW: Original request", body="See the attached mail.", attachments=[FakeAttachment(item=inner)]
    )
    trace = PstTool()._item(item=outer, index=0, path="/Inbox", budget=Budget(Limits()))
    assert trace.properties["email.subject"] == "FW: Original request"
    (attached,) = trace.children
    assert "email" in attached.types and "attachment" in attached.types
    assert attached.properties["attachment.embeddedMessage"] is True
    assert attached.properties["email.subject"] == "Original request"
    assert attached.text == "Please wire the money by Friday."
    (account,) = attached.children
    assert account.name == "account.txt" and account.data == b"IBAN DE00 0000\n"
    assert not attached.errors
