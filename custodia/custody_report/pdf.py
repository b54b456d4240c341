"""The custody report as a PDF for a court: the JSON report's data, rendered with ReportLab.

Every page carries the case reference, the generation time (UTC), "Times in UTC" and "page N of M". Hashes are set in a
monospace face and wrap anywhere; long values wrap rather than run off the page. The PDF is built with
ReportLab's invariant mode (no creation date or random document id), so that two reports of the same data
differ only in the generation time they print.

Large trails stay fast: each event is one table row whose event cell is plain monospace text wrapped by
counting characters (no paragraph to lay out and measure, three times over, per event), and the rows go
into tables of ``ROWS_PER_TABLE`` so that splitting a table across pages never re-measures thousands of
rows.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterable
from xml.sax.saxutils import escape  # nosec B406 # escapes text for ReportLab markup; parses nothing

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as pdf_canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from custodia.custody_report.builder import SECTIONS

ROWS_PER_TABLE = 100
MARGIN = 15 * mm
WIDTH = A4[0] - 2 * MARGIN
DETAIL_LIMIT = 1500  # characters of one event's details in the PDF; the JSON report has them whole

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle("ReportTitle", parent=_styles["Title"], fontSize=16, leading=20, spaceAfter=4)
# A heading stays on the page of what follows it.
HEADING = ParagraphStyle(
    "ReportHeading", parent=_styles["Heading2"], fontSize=12, leading=15, spaceBefore=10, keepWithNext=1
)
SUBHEADING = ParagraphStyle(
    "ReportSubheading", parent=_styles["Heading3"], fontSize=10, leading=13, spaceBefore=6, keepWithNext=1
)
BODY = ParagraphStyle("ReportBody", parent=_styles["BodyText"], fontSize=9, leading=11.5)
CELL = ParagraphStyle("ReportCell", parent=BODY, fontSize=8, leading=10, splitLongWords=1)
SMALL = ParagraphStyle("ReportSmall", parent=CELL, fontSize=7, leading=8.6)
MONO = ParagraphStyle("ReportMono", parent=CELL, fontName="Courier", fontSize=8, leading=10, wordWrap="CJK")
NOTE = ParagraphStyle("ReportNote", parent=BODY, textColor=colors.HexColor("#444444"), alignment=TA_CENTER)

GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#999999")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("LEADING", (0, 0), (-1, -1), 9),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
)
HEADER_ROW = TableStyle(
    [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
    ]
)


def text(value) -> str:
    """A value as paragraph markup: escaped, '—' for nothing."""
    if value is None or value == "":
        return "—"
    return escape(str(value))


def para(value, style: ParagraphStyle = CELL) -> Paragraph:
    return Paragraph(text(value), style)


def facts_table(rows: Iterable[tuple[str, object]], *, mono: frozenset[str] = frozenset()) -> Table:
    """Label / value pairs; the labels in ``mono`` have monospace values (hashes, ids)."""
    data = [
        [Paragraph(f"<b>{escape(label)}</b>", CELL), para(value, MONO if label in mono else CELL)]
        for label, value in rows
    ]
    table = Table(data, colWidths=[48 * mm, WIDTH - 48 * mm])
    table.setStyle(GRID)
    return table


def grid_table(header: list[str], rows: list[list], widths: list[float]) -> list[Flowable]:
    """A table with a header row repeated on every page, in pieces of ``ROWS_PER_TABLE`` rows."""
    if not rows:
        return [Paragraph("None.", BODY)]
    tables: list[Flowable] = []
    for start in range(0, len(rows), ROWS_PER_TABLE):
        table = Table([header, *rows[start : start + ROWS_PER_TABLE]], colWidths=widths, repeatRows=1)
        table.setStyle(GRID)
        table.setStyle(HEADER_ROW)
        tables.append(table)
    return tables


def details_text(details: dict) -> str:
    """An event's details as ``key: value`` pairs in key order (deterministic), shortened past
    ``DETAIL_LIMIT`` characters."""
    parts = []
    for key in sorted(details):
        value = details[key]
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
        parts.append(f"{key}: {shown}")
    joined = "; ".join(parts)
    if len(joined) > DETAIL_LIMIT:
        joined = joined[:DETAIL_LIMIT] + " … (whole in the JSON report)"
    return joined


EVENT_WIDTHS = [15 * mm, 37 * mm, 14 * mm, WIDTH - 66 * mm]
EVENT_FONT, EVENT_FONT_SIZE, EVENT_LEADING = "Courier", 7, 8.4
CELL_PADDING = 6  # points: GRID's left and right padding
# Courier's glyphs are all 0.6 em wide, so a line's width is its length: the event column is wrapped
# by counting characters, with no font measuring (the cost that makes paragraphs slow in bulk).
EVENT_CHARS = int((EVENT_WIDTHS[3] - CELL_PADDING) / (0.6 * EVENT_FONT_SIZE))
EVENT_STYLE = TableStyle(
    [
        ("FONTNAME", (3, 1), (3, -1), EVENT_FONT),
        ("FONTSIZE", (3, 1), (3, -1), EVENT_FONT_SIZE),
        ("LEADING", (3, 1), (3, -1), EVENT_LEADING),
    ]
)


def wrapped(line: str) -> str:
    return textwrap.fill(line, EVENT_CHARS, break_long_words=True, break_on_hyphens=False) or " "


def event_cell(event: dict) -> str:
    """What happened, by whom, from where, to what, and the details, as plain lines wrapped to the column."""
    head = f"{event['action']} by {event['actor'] or '—'}"
    if event["client_address"]:
        head += f" from {event['client_address']}"
    lines = [head]
    if event["target_type"]:
        lines.append(f"{event['target_type']} {event['target_id'] or ''}")
    if event["details"]:
        lines.append(details_text(event["details"]))
    return "\n".join(wrapped(line) for line in lines)


def event_tables(events: list[dict]) -> list[Flowable]:
    rows = [[str(event["sequence"]), event["occurred_at"], event["outcome"], event_cell(event)] for event in events]
    tables = grid_table(["Seq.", "Time (UTC)", "Outcome", "Event"], rows, EVENT_WIDTHS)
    for table in tables:
        if isinstance(table, Table):
            table.setStyle(EVENT_STYLE)
    return tables


def size_text(size) -> str:
    return "—" if size is None else f"{size:,} bytes"


def evidence_flowables(report: dict) -> list[Flowable]:
    evidence, seizure = report["evidence"], report["evidence"]["seizure"]
    hashes, sealing, integrity = report["hashes"], report["sealing"], report["integrity"]
    declared = hashes["declared"]
    story: list[Flowable] = [
        Paragraph("Evidence", HEADING),
        facts_table(
            [
                ("Label", evidence["label"]),
                ("Evidence id", evidence["id"]),
                ("Kind", evidence["kind"]),
                ("Description", evidence["description"]),
                ("State", evidence["state"]),
                ("Seized from", seizure["seized_from"]),
                ("Seized by", seizure["seized_by"]),
                (
                    "Seized at",
                    f"{seizure['seized_at']} ({seizure['seized_at_zone']}, as stored)"
                    if seizure["seized_at"]
                    else None,
                ),
                ("Source", evidence["source"]),
                ("Original name", evidence["original_name"]),
                ("Format", evidence["format"]),
                ("Format details", details_text(evidence["format_details"]) if evidence["format_details"] else None),
                ("Size", size_text(evidence["size"])),
                ("Registered", f"{evidence['registered_at']} UTC by {evidence['registered_by']}"),
            ],
            mono=frozenset({"Evidence id"}),
        ),
        Paragraph("Hashes", HEADING),
        facts_table(
            [
                ("MD5", hashes["md5"]),
                ("SHA-1", hashes["sha1"]),
                ("SHA-256", hashes["sha256"]),
                ("Container manifest SHA-256", hashes["manifest_sha256"]),
                ("Declared MD5", declared["md5"]),
                ("Declared SHA-1", declared["sha1"]),
                ("Declared SHA-256", declared["sha256"]),
                ("Declared size", size_text(declared["size"]) if declared["size"] is not None else None),
            ],
            mono=frozenset(
                {
                    "MD5",
                    "SHA-1",
                    "SHA-256",
                    "Container manifest SHA-256",
                    "Declared MD5",
                    "Declared SHA-1",
                    "Declared SHA-256",
                }
            ),
        ),
        Paragraph("Sealing and storage", HEADING),
        facts_table(
            [
                ("Sealed at (UTC)", sealing["sealed_at"]),
                ("Evidence store", sealing["store"]),
                ("Storage prefix", sealing["storage_prefix"]),
                ("Retention until", sealing["retention_until"]),
                ("Legal hold", "yes" if sealing["legal_hold"] else "no"),
                ("Data key", f"{sealing['data_key']['key_id']} ({sealing['data_key']['algorithm']})"),
            ],
            mono=frozenset({"Storage prefix"}),
        ),
        Paragraph("Integrity", HEADING),
        facts_table(
            [
                ("Status", integrity["status"]),
                ("Problem found", integrity["problem"]),
                ("Last verified at (UTC)", integrity["last_verified_at"]),
            ]
        ),
    ]
    return story


def integrity_text(integrity: dict) -> str:
    found = f"{integrity['status']}, last verified {integrity['last_verified_at'] or 'never'}"
    return found + (f": {integrity['problem']}" if integrity["problem"] else "")


def case_items_flowables(report: dict) -> list[Flowable]:
    story: list[Flowable] = [Paragraph("Evidence items", HEADING)]
    if not report["evidence_items"]:
        story.append(Paragraph("None.", BODY))
    for item in report["evidence_items"]:
        hashes, seizure = item["hashes"], item["seizure"]
        story += [
            Paragraph(text(item["label"]), SUBHEADING),
            facts_table(
                [
                    ("Evidence id", item["id"]),
                    ("Kind / state", f"{item['kind']} / {item['state']}"),
                    ("Seized from / by", f"{seizure['seized_from'] or '—'} / {seizure['seized_by'] or '—'}"),
                    (
                        "Seized at",
                        f"{seizure['seized_at']} ({seizure['seized_at_zone']}, as stored)"
                        if seizure["seized_at"]
                        else None,
                    ),
                    ("Source / original name", f"{item['source']} / {item['original_name'] or '—'}"),
                    ("Format / size", f"{item['format'] or '—'} / {size_text(item['size'])}"),
                    ("MD5", hashes["md5"]),
                    ("SHA-1", hashes["sha1"]),
                    ("SHA-256", hashes["sha256"]),
                    ("Declared SHA-256", hashes["declared"]["sha256"]),
                    ("Sealed at (UTC)", item["sealed_at"]),
                    ("Storage prefix", item["storage_prefix"]),
                    ("Integrity", integrity_text(item["integrity"])),
                ],
                mono=frozenset({"Evidence id", "MD5", "SHA-1", "SHA-256", "Declared SHA-256", "Storage prefix"}),
            ),
        ]
    return story


def case_flowables(report: dict) -> list[Flowable]:
    case = report["case"]
    story: list[Flowable] = [
        Paragraph("Case", HEADING),
        facts_table(
            [
                ("Reference", case["reference"]),
                ("Title", case["title"]),
                ("Organisation", case["organization"]),
                ("Description", case["description"]),
                ("Status / priority", f"{case['status']} / {case['priority']}"),
                ("Retention until", case["retention_until"]),
                ("Legal hold", "yes" if case["legal_hold"] else "no"),
                ("Evidence store", report["store"]),
                ("Opened (UTC)", f"{case['opened_at']} by {case['opened_by'] or '—'}"),
            ]
        ),
        Paragraph("Case team", SUBHEADING),
        *grid_table(
            ["User", "Role", "Member since (UTC)"],
            [[para(m["user"]), m["role"], m["since"]] for m in case["team"]],
            [70 * mm, 40 * mm, WIDTH - 110 * mm],
        ),
    ]
    return story


def secrets_flowables(report: dict) -> list[Flowable]:
    rows = [
        [para(s["evidence_label"]), para(s["name"]), s["kind"], para(s["escrowed_by"]), s["escrowed_at"]]
        for s in report["secrets"]
    ]
    return [
        Paragraph("Escrowed secrets (names and kinds only; never their values)", HEADING),
        *grid_table(
            ["Evidence", "Name", "Kind", "Escrowed by", "Escrowed at (UTC)"],
            rows,
            [35 * mm, 40 * mm, 38 * mm, 27 * mm, WIDTH - 140 * mm],
        ),
    ]


def runs_flowables(report: dict) -> list[Flowable]:
    rows = []
    for run in report["extraction_runs"]:
        tools = ", ".join(f"{name} {version}" for name, version in run["tools"].items()) or "—"
        times = (
            f"queued {run['queued_at']}<br/>started {run['started_at'] or '—'}<br/>finished {run['finished_at'] or '—'}"
        )
        outcome = (
            f"{run['traces']:,} traces, {run['files']:,} files, {run['bytes_processed']:,} bytes, "
            f"{run['errors']} errors"
        )
        if run["failure"]:
            outcome += f"; failure: {run['failure']}"
        rows.append(
            [
                str(run["id"]),
                Paragraph(
                    f"{escape(run['state'])}<br/>by {escape(run['started_by'])}<br/>{escape(run['evidence_label'])}",
                    SMALL,
                ),
                Paragraph(times, SMALL),
                Paragraph(escape(tools), SMALL),
                Paragraph(escape(outcome), SMALL),
            ]
        )
    return [
        Paragraph("Extraction runs, with their tools and versions", HEADING),
        *grid_table(
            ["Run", "State", "Times (UTC)", "Tools and versions", "Result"],
            rows,
            [12 * mm, 30 * mm, 48 * mm, 50 * mm, WIDTH - 140 * mm],
        ),
    ]


def chain_flowables(report: dict) -> list[Flowable]:
    chain = report["chain"]
    story: list[Flowable] = [
        Paragraph("Audit chain", HEADING),
        facts_table(
            [
                ("Head sequence", chain["head_sequence"]),
                ("Head hash", chain["head_hash"]),
                ("Head time (UTC)", chain["head_occurred_at"]),
                ("Case chain sequence", chain["head_case_sequence"]),
                ("Case chain hash", chain["head_case_hash"]),
                ("Public key fingerprint", chain["public_key_fingerprint"]),
            ],
            mono=frozenset({"Head hash", "Case chain hash", "Public key fingerprint"}),
        ),
        *checkpoint_flowables(chain["checkpoints"]),
        Paragraph("How to check this report", HEADING),
        Paragraph(text(report["how_to_verify"]), BODY),
    ]
    return story


def checkpoint_flowables(checkpoints: list[dict]) -> list[Flowable]:
    """The newest signed statement covering the case, in full. It signs the case chain's head at its
    sequence, and through the chain every event before it, so it alone proves them; the earlier statements
    (a busy case has one every 100 events of the system) are counted here, listed in the JSON report and
    carried by the export, where the offline verifier checks every one."""
    story: list[Flowable] = [Paragraph("Signed checkpoints covering the case", SUBHEADING)]
    if not checkpoints:
        return [*story, Paragraph("No signed checkpoint covers the case yet.", BODY)]
    newest = checkpoints[-1]
    story.append(
        facts_table(
            [
                ("Newest checkpoint", newest["number"]),
                ("Case sequence it signs", newest["case_sequence"]),
                ("Case hash it signs", newest["case_hash"]),
                ("Signed at (UTC)", newest["signed_at"]),
                ("Signature", newest["signature"]),
                ("Key fingerprint", newest["key_fingerprint"]),
            ],
            mono=frozenset({"Case hash it signs", "Signature", "Key fingerprint"}),
        )
    )
    if len(checkpoints) > 1:
        story.append(
            Paragraph(
                text(
                    f"It is the newest of {len(checkpoints):,} signed statements covering the case (checkpoints "
                    f"{checkpoints[0]['number']} to {newest['number']}); every one is listed with its signature in "
                    "the JSON report and carried by the export, where the offline verifier checks each."
                ),
                BODY,
            )
        )
    return story


def times_note(report: dict) -> str:
    """The header's word on time: the record is UTC; the requester's own zone, when they chose one, beside."""
    note = "Times in UTC. All times in this report are UTC."
    zone = report.get("requester_time_zone")
    if zone:
        note += (
            f" The requester's time zone is {zone['name']} (UTC{zone['offset']} when this report was generated,"
            f" at {zone['generated_at']} there); no time in this report is converted to it."
        )
    return note


def story_of(report: dict) -> list[Flowable]:
    case = report["case"]
    if report["scope"] == "evidence":
        title = f"Custody report: evidence item {report['evidence']['label']}"
    else:
        title = f"Custody report: case {case['reference']}"
    story: list[Flowable] = [
        Paragraph(text(title), TITLE),
        facts_table(
            [
                ("Case reference", case["reference"]),
                ("Case title", case["title"]),
                ("Generated at", f"{report['generated_at']} (UTC)"),
                ("Generated by", report["generated_by"]),
                ("Report format", report["format"]),
                ("Times", times_note(report)),
            ]
        ),
    ]
    if report["scope"] == "evidence":
        story += evidence_flowables(report)
    else:
        story += case_flowables(report)
        story += case_items_flowables(report)
    story += secrets_flowables(report)
    story += runs_flowables(report)
    for name, heading in SECTIONS.items():
        events = report["events"][name]
        story.append(Paragraph(f"{escape(heading)} ({len(events):,})", HEADING))
        story += event_tables(events)
    story += chain_flowables(report)
    story += [Spacer(1, 6 * mm), Paragraph("End of the custody report.", NOTE)]
    return story


def numbered_canvas(footer: str):
    """A canvas class that writes ``footer`` and "page N of M" on every page (M known at the end)."""

    class NumberedCanvas(pdf_canvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.saved_pages: list[dict] = []

        def showPage(self):  # ReportLab's name
            self.saved_pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self.saved_pages)
            for state in self.saved_pages:
                self.__dict__.update(state)
                self.setFont("Helvetica", 7.5)
                self.setFillColor(colors.HexColor("#444444"))
                self.drawString(MARGIN, 8 * mm, footer)
                self.drawRightString(A4[0] - MARGIN, 8 * mm, f"page {self._pageNumber} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def render_pdf(*, report: dict) -> bytes:
    """The report's PDF bytes."""
    case = report["case"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=f"Custody report {case['reference']}",
        author="Custodia",
        subject="Chain of custody",
        invariant=1,
    )
    footer = f"Custody report · {case['reference']} · generated {report['generated_at']} (UTC) · Times in UTC"
    doc.build(story_of(report), canvasmaker=numbered_canvas(footer))
    return buffer.getvalue()
