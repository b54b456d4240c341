"""Plain text (logs, notes, source, CSV…): its bounded text for full-text search, nothing else."""

from __future__ import annotations

import codecs
from typing import BinaryIO

from search.extraction.tools.base import Limits, Tool, ToolResult, clean_text
from search.extraction.tools.mail import EmlTool, MboxTool

_EMAIL_TOOLS = (EmlTool(), MboxTool())
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes) -> tuple[str, str]:
    """Bytes → (text, encoding): a BOM wins, then UTF-8, then cp1252 (which never fails on Western text)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, "replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(data) - 3:  # a multi-byte character cut by our read limit
            return data[: error.start].decode("utf-8"), "utf-8"
    return data.decode("cp1252", "replace"), "cp1252"


class PlainTextTool(Tool):
    name = "text"
    version = "1"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if not mime_type.startswith("text/") or mime_type == "text/html":
            return False
        # Messages and mailboxes are text too, but the e-mail tools give their text.
        return not any(tool.accepts(mime_type=mime_type, name=name, head=head) for tool in _EMAIL_TOOLS)

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        # Four bytes per character at most in UTF-8: enough bytes for max_text_chars characters.
        data = stream.read(limits.max_text_chars * 4)
        text, encoding = decode_text(data)
        properties = {"text.encoding": encoding}
        if len(text) > limits.max_text_chars or stream.read(1):
            properties["text.truncated"] = True
        return ToolResult(properties=properties, text=clean_text(text[: limits.max_text_chars]))
