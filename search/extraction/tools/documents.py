"""Documents: PDF (pypdf), OOXML DOCX/XLSX/PPTX (stdlib zip + XML), legacy Office metadata (olefile),
password-protected PDF and OOXML opened with the evidence's escrowed document passwords (pypdf,
msoffcrypto-tool).

Document passwords reach the tools through ``escrowed_document_passwords`` (a context variable the
extraction run sets around its walk): the tools' interface stays one stream in, one result out. A
document a password opens records which escrowed secret did (``document.unlockedWith``: the escrow's
id, never the value); one none opens says ``locked: escrow a password``.

OOXML is read with `zipfile` and `xml.etree.ElementTree.iterparse`: the parts are decompressed under
the same ratio and output limits as archive members, and ElementTree resolves no external entities
(expat ≥ 2.4 also refuses entity-expansion bombs), so a hostile document costs bounded memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import re
import struct
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO
from xml.etree import ElementTree

from search.extraction.tools.archives import read_decompressed
from search.extraction.tools.base import (
    BoundedText,
    Budget,
    LimitExceeded,
    Limits,
    Tool,
    ToolResult,
    clean_text,
    extension_of,
    iso8601,
    library_version,
    read_bounded,
    require,
)
from search.extraction.tools.word_binary import WordTextError, word_text

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# ------------------------------------------------------------------------------ document passwords

LOCKED_MESSAGE = "locked: escrow a password (a document password for this evidence) and extract again"


@dataclass(frozen=True)
class DocumentPassword:
    """A document password escrowed for the evidence: ``reference`` names it in traces (never ``value``)."""

    reference: str
    value: str


_DOCUMENT_PASSWORDS: contextvars.ContextVar[tuple[DocumentPassword, ...]] = contextvars.ContextVar(
    "document_passwords", default=()
)


@contextlib.contextmanager
def escrowed_document_passwords(passwords: Sequence[DocumentPassword]) -> Iterator[None]:
    """The document passwords the tools try, for the ``with`` block (one extraction run's)."""
    token = _DOCUMENT_PASSWORDS.set(tuple(passwords))
    try:
        yield
    finally:
        _DOCUMENT_PASSWORDS.reset(token)


def _candidate_passwords() -> tuple[DocumentPassword, ...]:
    return _DOCUMENT_PASSWORDS.get()


# ---------------------------------------------------------------------------------------------- PDF

_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?")


def pdf_date(value: Any) -> str | None:
    """``D:20170328101429+00'00'`` → ``2017-03-28T10:14:29Z``; None when it does not parse."""
    match = _PDF_DATE.match(str(value or "").strip())
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        moment = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if zone and zone != "Z":
        digits = zone.replace("'", "")
        sign = 1 if digits[0] == "+" else -1
        moment = moment.replace(
            tzinfo=timezone(sign * timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5] or 0)))
        )
    return iso8601(moment)


class _PypdfWarnings(logging.Handler):
    """Collects pypdf's warnings (``EOF marker not found``…) of this thread: damage is evidence."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread_id = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id and len(self.messages) < 20:
            message = record.getMessage()
            if message not in self.messages:
                self.messages.append(message)


_PDF_INFO_PROPERTIES = {
    "/Author": "document.author",
    "/Title": "document.title",
    "/Subject": "document.subject",
    "/Keywords": "document.keywords",
    "/Creator": "document.application",
    "/Producer": "document.producer",
}


class PdfTool(Tool):
    name = "pypdf"
    version = library_version("pypdf")

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return mime_type == "application/pdf" or b"%PDF-" in head[:1024]

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        pypdf = require("pypdf", package="pypdf")
        budget = Budget(limits)
        logger = logging.getLogger("pypdf")
        collector = _PypdfWarnings()
        logger.addHandler(collector)
        try:
            return self._read(pypdf=pypdf, stream=stream, budget=budget, collector=collector)
        finally:
            logger.removeHandler(collector)

    @staticmethod
    def _decrypt(reader) -> str | None:
        """ "" when the empty user password opens it, the reference of the escrowed password that does, or
        None. An owner password opens a PDF as well as the user password: either is accepted."""
        if reader.decrypt(""):
            return ""
        for password in _candidate_passwords():
            if reader.decrypt(password.value):
                return password.reference
        return None

    def _read(self, *, pypdf, stream: BinaryIO, budget: Budget, collector: _PypdfWarnings) -> ToolResult:
        limits = budget.limits
        data = read_bounded(stream, max_bytes=limits.max_output_bytes, what="PDF")
        import io

        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        properties: dict[str, Any] = {}
        errors: list[str] = []
        if reader.is_encrypted:
            properties["document.encrypted"] = True
            try:
                opened_with = self._decrypt(reader)
            except Exception as error:  # unsupported encryption is reported, not raised
                errors.append(f"encrypted PDF: {type(error).__name__}: {error}")
                return ToolResult(properties=properties, errors=errors, types=["document"])
            if opened_with is None:
                properties["document.locked"] = True
                errors.append(LOCKED_MESSAGE)
                return ToolResult(properties=properties, errors=errors, types=["document"])
            if opened_with:
                properties["document.unlockedWith"] = opened_with
        properties["document.pageCount"] = len(reader.pages)
        info = reader.metadata or {}
        for key, property_name in _PDF_INFO_PROPERTIES.items():
            value = clean_text(str(info.get(key))) if info.get(key) is not None else None
            if value:
                properties[property_name] = value
        for key, property_name in (("/CreationDate", "document.createdOn"), ("/ModDate", "document.modifiedOn")):
            date = pdf_date(info.get(key))
            if date:
                properties[property_name] = date
        text = BoundedText(max_chars=limits.max_text_chars)
        for page_number, page in enumerate(reader.pages, start=1):
            budget.check_time()
            if text.full:
                text.truncated = True
                break
            try:
                text.add(clean_text(page.extract_text()))
            except Exception as error:  # one bad page does not lose the others
                errors.append(f"page {page_number}: cannot extract text: {type(error).__name__}: {error}")
        if text.truncated:
            properties["document.textTruncated"] = True
        errors.extend(f"damaged PDF: {message}" for message in collector.messages)
        return ToolResult(properties=properties, text=text.value(), errors=errors, types=["document"])


# -------------------------------------------------------------------------------------------- OOXML

_NAMESPACES = {
    "cp": "http://schemas.openxmlformats.org/package/2006/metadata/core-properties",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "ep": "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties",
}
_CORE_PROPERTIES = {
    "{http://purl.org/dc/elements/1.1/}creator": "document.author",
    "{http://purl.org/dc/elements/1.1/}title": "document.title",
    "{http://purl.org/dc/elements/1.1/}subject": "document.subject",
    "{http://purl.org/dc/elements/1.1/}description": "document.description",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}keywords": "document.keywords",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}lastModifiedBy": (
        "document.lastModifiedBy"
    ),
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}revision": "document.revision",
    "{http://purl.org/dc/terms/}created": "document.createdOn",
    "{http://purl.org/dc/terms/}modified": "document.modifiedOn",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}lastPrinted": "document.printedOn",
}
_APP_PROPERTIES = {
    "Application": "document.application",
    "AppVersion": "document.applicationVersion",
    "Company": "document.company",
    "Pages": "document.pageCount",
    "Slides": "document.slideCount",
    "Words": "document.wordCount",
    "Characters": "document.characterCount",
}
_OOXML_KINDS = {
    "word/document.xml": "docx",
    "xl/workbook.xml": "xlsx",
    "ppt/presentation.xml": "pptx",
}
_OOXML_EXTENSIONS = {"docx", "docm", "dotx", "xlsx", "xlsm", "pptx", "pptm"}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def ooxml_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return iso8601(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def _natural(name: str) -> tuple:
    """``slide10.xml`` after ``slide9.xml``: order parts by number, as the application shows them."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


class OoxmlTool(Tool):
    name = "ooxml"
    version = "python-zipfile+expat"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if mime_type.startswith("application/vnd.openxmlformats-officedocument"):
            return True
        return head.startswith(b"PK\x03\x04") and extension_of(name) in _OOXML_EXTENSIONS

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        budget = Budget(limits)
        properties: dict[str, Any] = {}
        errors: list[str] = []
        text = BoundedText(max_chars=limits.max_text_chars)
        with zipfile.ZipFile(stream) as package:
            parts = {member.filename: member for member in package.infolist()}
            kind = next((kind for part, kind in _OOXML_KINDS.items() if part in parts), None)
            if kind is None:
                raise ValueError("not an OOXML package: no word/document.xml, xl/workbook.xml or ppt/presentation.xml")
            properties["document.type"] = kind

            def part_bytes(part_name: str) -> bytes | None:
                member = parts.get(part_name)
                if member is None:
                    return None
                if member.file_size > limits.ratio_floor_bytes and member.file_size / max(member.compress_size, 1) > (
                    limits.max_compression_ratio
                ):
                    raise LimitExceeded(f"{part_name}: compression ratio limit exceeded")
                with package.open(member) as part_stream:
                    return read_decompressed(
                        part_stream.read,
                        compressed_size=member.compress_size,
                        budget=budget,
                        what=part_name,
                        declared_size=member.file_size,
                    )

            for part_name, reader in (("docProps/core.xml", self._core), ("docProps/app.xml", self._app)):
                try:
                    data = part_bytes(part_name)
                    if data:
                        properties.update(reader(data))
                except (ElementTree.ParseError, LimitExceeded, zipfile.BadZipFile, OSError) as error:
                    errors.append(f"{part_name}: {type(error).__name__}: {error}")
            for part_name in self._text_parts(kind=kind, names=list(parts)):
                budget.check_time()
                if text.full:
                    text.truncated = True
                    break
                try:
                    data = part_bytes(part_name)
                    if data:
                        for piece in self._texts(data=data, kind=kind):
                            text.add(piece)
                except (ElementTree.ParseError, LimitExceeded, zipfile.BadZipFile, OSError) as error:
                    errors.append(f"{part_name}: {type(error).__name__}: {error}")
        if text.truncated:
            properties["document.textTruncated"] = True
        return ToolResult(properties=properties, text=clean_text(text.value()), errors=errors, types=["document"])

    @staticmethod
    def _text_parts(*, kind: str, names: list[str]) -> list[str]:
        if kind == "docx":
            wanted = [
                "word/document.xml",
                *sorted(
                    (
                        name
                        for name in names
                        if re.fullmatch(r"word/(header|footer|footnotes|endnotes|comments)\d*\.xml", name)
                    ),
                    key=_natural,
                ),
            ]
            return [name for name in wanted if name in names]
        if kind == "xlsx":
            sheets = sorted(
                (name for name in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name)), key=_natural
            )
            return ["xl/sharedStrings.xml", *sheets]
        return sorted((name for name in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", name)), key=_natural)

    @staticmethod
    def _texts(*, data: bytes, kind: str) -> Iterator[str]:
        import io

        paragraph: list[str] = []
        paragraph_tags = {f"{_W}p", f"{_A}p", f"{_S}si", f"{_S}c"}
        # Spreadsheet <v> values are numbers or indexes into the shared strings (read themselves): skipped.
        text_tags = {f"{_W}t", f"{_A}t", f"{_S}t"}

        for event, element in ElementTree.iterparse(io.BytesIO(data), events=("end",)):  # noqa: S314
            del event
            if element.tag in text_tags and element.text:
                paragraph.append(element.text)
            elif element.tag == f"{_W}tab":
                paragraph.append("\t")
            elif element.tag in paragraph_tags:
                line = "".join(paragraph).strip()
                paragraph = []
                if line:
                    yield line
                element.clear()  # keep memory flat on long documents

    @staticmethod
    def _core(data: bytes) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        root = ElementTree.fromstring(data)  # noqa: S314 - expat resolves no external entities
        for element in root:
            property_name = _CORE_PROPERTIES.get(element.tag)
            value = clean_text(element.text)
            if not property_name or not value:
                continue
            if property_name.endswith("On"):
                value = ooxml_date(value)
            if value:
                properties[property_name] = value
        return properties

    @staticmethod
    def _app(data: bytes) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        root = ElementTree.fromstring(data)  # noqa: S314 - expat resolves no external entities
        for element in root:
            local_name = element.tag.rsplit("}", 1)[-1]
            property_name = _APP_PROPERTIES.get(local_name)
            value = clean_text(element.text)
            if property_name and value:
                properties[property_name] = int(value) if value.isdigit() else value
        return properties


# ------------------------------------------------------------------------------- legacy Office (OLE)

_OLE_SUMMARY = {
    "author": "document.author",
    "title": "document.title",
    "subject": "document.subject",
    "keywords": "document.keywords",
    "comments": "document.description",
    "last_saved_by": "document.lastModifiedBy",
    "creating_application": "document.application",
    "company": "document.company",
    "revision_number": "document.revision",
}
_OLE_DATES = {
    "create_time": "document.createdOn",
    "last_saved_time": "document.modifiedOn",
    "last_printed": "document.printedOn",
}
# The rest of SummaryInformation and DocumentSummaryInformation (#18): every field olefile reads, but the
# thumbnail, the heading pairs and hyperlink blobs. Counts are kept even when 0: that is what the file says.
_OLE_MORE_SUMMARY = {
    "template": "document.template",
    "category": "document.category",
    "manager": "document.manager",
    "presentation_target": "document.presentationTarget",
    "content_type": "document.contentType",
    "content_status": "document.contentStatus",
    "language": "document.language",
    "doc_version": "document.documentVersion",
    "link_base": "document.linkBase",
}
_OLE_COUNTS = {
    "num_pages": "document.pageCount",
    "num_words": "document.wordCount",
    "security": "document.security",
    "num_chars": "document.characterCount",
    "chars_with_spaces": "document.characterCountWithSpaces",
    "lines": "document.lineCount",
    "paragraphs": "document.paragraphCount",
    "bytes": "document.byteCount",
    "slides": "document.slideCount",
    "notes": "document.noteCount",
    "hidden_slides": "document.hiddenSlideCount",
    "mm_clips": "document.multimediaClipCount",
    "total_edit_time": "document.editingTimeSeconds",
}
# Code pages of property sets (olefile hands strings over as bytes) → Python codecs.
_CODE_PAGES = {1200: "utf-16-le", 10000: "mac_roman", 65001: "utf-8"}
_OLE_DOCUMENT_STREAMS = {"WordDocument": "doc", "Workbook": "xls", "Book": "xls", "PowerPoint Document": "ppt"}


def _ole_text(value: Any, *, codepage: int | None) -> Any:
    """A property set's string in its code page (cp1252 when it names none or one Python lacks)."""
    if not isinstance(value, bytes):
        return value
    codec = _CODE_PAGES.get(codepage or 0, f"cp{codepage}" if codepage else "cp1252")
    try:
        return clean_text(value.decode(codec, "replace"))
    except LookupError:
        return clean_text(value.decode("cp1252", "replace"))


class OleDocumentTool(Tool):
    """Legacy DOC/XLS/PPT: SummaryInformation and DocumentSummaryInformation metadata, and a Word
    document's body text (search/extraction/tools/word_binary.py)."""

    name = "olefile"
    version = library_version("olefile")

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if not head.startswith(_OLE_MAGIC) or mime_type == "application/vnd.ms-outlook":
            return False
        return extension_of(name) != "msg"

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        olefile = require("olefile", package="olefile")
        data = read_bounded(stream, max_bytes=limits.max_output_bytes, what="OLE file")
        properties: dict[str, Any] = {}
        with olefile.OleFileIO(data) as ole:
            streams = {"/".join(entry) for entry in ole.listdir()}
            if {"EncryptionInfo", "EncryptedPackage"} <= streams:
                return _encrypted_ooxml(data=data, name=name, limits=limits)
            kind = next((kind for stream_name, kind in _OLE_DOCUMENT_STREAMS.items() if stream_name in streams), None)
            if kind:
                properties["document.type"] = kind
            metadata = ole.get_metadata()
            text, errors = None, []
            if kind == "doc":
                text, errors = _word_body(ole=ole, streams=streams, limits=limits)
        codepage = getattr(metadata, "codepage", None)
        for attribute, property_name in (_OLE_SUMMARY | _OLE_MORE_SUMMARY).items():
            value = _ole_text(getattr(metadata, attribute, None), codepage=codepage)
            if value not in (None, "", 0):
                properties[property_name] = value
        for attribute, property_name in _OLE_COUNTS.items():
            value = getattr(metadata, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                properties[property_name] = value
        if codepage:
            properties["document.codePage"] = codepage
        for attribute, property_name in _OLE_DATES.items():
            value = getattr(metadata, attribute, None)
            # olefile gives naive datetimes in UTC (FILETIME); 1601 means "never".
            if isinstance(value, datetime) and value.year > 1601:
                properties[property_name] = iso8601(value.replace(tzinfo=UTC))
        return ToolResult(properties=properties, text=text, errors=errors, types=["document"] if kind else [])


def _word_body(*, ole, streams: set[str], limits: Limits) -> tuple[str | None, list[str]]:
    """A Word document's body text and, when it cannot be read, why."""
    tables = {name: ole.openstream(name).read() for name in ("0Table", "1Table") if name in streams}
    try:
        text = word_text(
            word_document=ole.openstream("WordDocument").read(), tables=tables, max_chars=limits.max_text_chars
        )
    except (WordTextError, struct.error) as error:
        return None, [f"no body text: {error}"]
    return clean_text(text), []


# --------------------------------------------------------------------- encrypted OOXML (msoffcrypto)


def _encrypted_ooxml(*, data: bytes, name: str, limits: Limits) -> ToolResult:
    """An OOXML document encrypted with a password (ECMA-376 agile or standard encryption, in an OLE
    container): decrypted in memory with the first escrowed document password that opens it, then read as
    any OOXML document."""
    msoffcrypto = require("msoffcrypto", package="msoffcrypto-tool")
    properties: dict[str, Any] = {"document.encrypted": True}
    for password in _candidate_passwords():
        office_file = msoffcrypto.OfficeFile(io.BytesIO(data))
        try:
            office_file.load_key(password=password.value, verify_password=True)
            decrypted = io.BytesIO()
            office_file.decrypt(decrypted)
        except (msoffcrypto.exceptions.InvalidKeyError, msoffcrypto.exceptions.DecryptionError):
            continue  # not this one
        properties["document.unlockedWith"] = password.reference
        decrypted.seek(0)
        result = OoxmlTool().run(stream=decrypted, name=name, limits=limits)
        result.properties = {**result.properties, **properties}
        return result
    properties["document.locked"] = True
    return ToolResult(properties=properties, errors=[LOCKED_MESSAGE], types=["document"])
