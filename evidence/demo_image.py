"""The generated demo disk: a partitioned raw image with an ext4 file system, built from content made here.

`make run` seals it into the demo case (``seed_demo_evidence``), so a fresh clone without the shared test
corpus still shows every kind of trace extraction finds: documents (PDF, DOCX, plain text), e-mails in an
mbox with an attachment, pictures with EXIF (one with a GPS position), a zip holding some of these, a
Chrome ``History`` database and a deleted file.

Only Debian's tools and no root: ``mkfs.ext4 -d`` fills an offset-free file system image from a folder,
``debugfs -w`` deletes one file in it (its name stays in the directory block, so The Sleuth Kit lists it
as deleted), ``sfdisk`` writes a DOS partition table into the disk file, and the file system is copied to
the partition's offset. No loop device, no mount.

The content is deterministic (fixed timestamps, fixed names, a seeded random generator): every trace's
hashes are the same on every machine. The file system's UUID and hash seed are fixed too.
"""

from __future__ import annotations

import io
import mailbox
import os
import random
import shutil
import sqlite3
import subprocess  # nosec B404 # runs Debian's mkfs.ext4, debugfs and sfdisk by full path, fixed arguments
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

DEMO_LABEL = "Demo disk (generated)"
DEMO_FILE_NAME = "demo-disk.img"
# The tools the build needs (Debian packages: e2fsprogs for mkfs.ext4 and debugfs, fdisk for sfdisk).
REQUIRED_TOOLS = ("mkfs.ext4", "debugfs", "sfdisk")

# Every timestamp in the content: the "seizure" happens on 2026-03-14.
DEMO_TIME = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
PARTITION_START_SECTOR = 2048  # 1 MiB, as fdisk aligns
SECTOR_SIZE = 512
FILE_SYSTEM_BYTES = 16 * 1024 * 1024
FILE_SYSTEM_UUID = "6d656d6f-6469-736b-2d63-7573746f6469"
DISK_IDENTIFIER = "0x43555354"

# Paths inside the file system (what the tests and docs/demo.md name).
DELETED_FILE = "Documents/shredding-plan.txt"
MBOX_FILE = "Mail/inbox.mbox"
GPS_PICTURE = "Pictures/IMG_0042.jpg"
ZIP_FILE = "Archive/holiday.zip"
ZIP_MEMBER = "itinerary.txt"
HISTORY_FILE = "Users/alex/AppData/Local/Google/Chrome/User Data/Default/History"
MAIL_SUBJECT = "Shipment 7 — container numbers"
GPS_POSITION = (52.3731, 4.8922)  # Amsterdam, Dam square


class DemoToolMissing(RuntimeError):
    """A Debian tool the build needs is not installed; the message names it and its package."""


@dataclass(frozen=True)
class DemoImage:
    path: Path
    partition_offset: int  # bytes from the start of the disk to the ext4 file system
    files: tuple[str, ...]  # every regular file written, relative to the file system's root
    deleted: tuple[str, ...]


def _tool_path(tool: str) -> str | None:
    """Where ``tool`` is: on PATH, or in /usr/sbin and /sbin, where Debian puts them (not on a user's PATH)."""
    return shutil.which(tool, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing_tools() -> list[str]:
    """The tools of REQUIRED_TOOLS that are not installed."""
    return [tool for tool in REQUIRED_TOOLS if _tool_path(tool) is None]


def build_demo_image(*, destination: Path) -> DemoImage:
    """Write the demo disk to ``destination`` (replaced if present) and describe it."""
    missing = missing_tools()
    if missing:
        raise DemoToolMissing(f"cannot build the demo disk: {', '.join(missing)} missing (apt: e2fsprogs fdisk)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="custodia-demo-") as work:
        tree = Path(work) / "tree"
        files = write_demo_tree(root=tree)
        file_system = Path(work) / "ext4.img"
        _make_ext4(tree=tree, image=file_system)
        # mkfs.ext4 -d copies each file's change time from the host, which utime cannot set: fix it here,
        # so the image's bytes do not depend on when it was built; then delete the one file.
        stamp = DEMO_TIME.strftime("%Y%m%d%H%M%S")
        folders = sorted(_ancestors(files))
        requests = [f'sif "/{name}" ctime {stamp}' for name in [*folders, *files]]
        requests.append(f'rm "/{DELETED_FILE}"')
        _debugfs(file_system, requests)
        partial = destination.with_name(destination.name + ".partial")
        _write_partitioned_disk(file_system=file_system, disk=partial)
        partial.replace(destination)
    return DemoImage(
        path=destination,
        partition_offset=PARTITION_START_SECTOR * SECTOR_SIZE,
        files=tuple(sorted(files)),
        deleted=(DELETED_FILE,),
    )


# ------------------------------------------------------------------------------------------------ content


def write_demo_tree(*, root: Path) -> list[str]:
    """Write the demo's files below ``root``; returns their paths relative to it."""
    generator = random.Random(20260314)  # nosec B311 # seeded on purpose: the demo disk is byte-identical
    contents: dict[str, bytes] = {
        "Documents/notes.txt": _notes_text().encode(),
        "Documents/report.pdf": _pdf_report(),
        "Documents/minutes.docx": _docx_minutes(),
        DELETED_FILE: (
            b"Shred the paper invoices of shipment 7 before Friday.\nWipe the laptop's browser history too.\n"
        ),
        GPS_PICTURE: _jpeg(generator=generator, gps=GPS_POSITION, taken=DEMO_TIME.replace(day=2, hour=14)),
        "Pictures/IMG_0043.jpg": _jpeg(generator=generator, gps=None, taken=DEMO_TIME.replace(day=3, hour=11)),
        MBOX_FILE: _mbox(),
        HISTORY_FILE: _chrome_history(),
    }
    contents[ZIP_FILE] = _zip(
        {
            ZIP_MEMBER: b"Day 1: Rotterdam harbour, terminal 4. Day 2: Antwerp.\n",
            "IMG_0043.jpg": contents["Pictures/IMG_0043.jpg"],
        }
    )
    stamp = DEMO_TIME.timestamp()
    for relative, data in contents.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))
    for folder in sorted({p for relative in contents for p in (root / relative).parents if root in p.parents}):
        os.utime(folder, (stamp, stamp))
    os.utime(root, (stamp, stamp))
    return list(contents)


def _notes_text() -> str:
    return (
        "Meeting with J. at the harbour, 2 March 2026.\n"
        "Container numbers: MSKU 402117-3, TGHU 889012-6.\n"
        "Payment through the usual account; see the report.\n"
    )


def _pdf_report() -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    # invariant: no creation date or random document id, so the bytes are the same on every build.
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle("Quarterly shipping report")
    pdf.setAuthor("Alex Example")
    pdf.drawString(72, 770, "Quarterly shipping report — Q1 2026")
    pdf.drawString(72, 750, "Shipment 7 left Rotterdam on 2 March 2026 with 14 containers.")
    pdf.drawString(72, 730, "Invoice total: EUR 184,300. Beneficiary: Harbour Logistics BV.")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _fixed_zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=DEMO_TIME.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(_fixed_zip_info(name), data)
    return buffer.getvalue()


def _docx_minutes() -> bytes:
    """A minimal OOXML word-processing document, written with zipfile (python-docx is no dependency)."""
    paragraphs = [
        "Minutes of the board meeting, 9 March 2026",
        "Present: Alex Example, J. Doe.",
        "Agreed: shipment 7 is invoiced through Harbour Logistics BV.",
    ]
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    return _zip(
        {
            "[Content_Types].xml": (
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                b'<Default Extension="xml" ContentType="application/xml"/>'
                b'<Override PartName="/word/document.xml" ContentType="application/'
                b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
                b'<Override PartName="/docProps/core.xml" '
                b'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
                b"</Types>"
            ),
            "_rels/.rels": (
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                b'relationships/officeDocument" Target="word/document.xml"/>'
                b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
                b'metadata/core-properties" Target="docProps/core.xml"/>'
                b"</Relationships>"
            ),
            "word/document.xml": (
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                f"<w:body>{body}</w:body></w:document>"
            ).encode(),
            "docProps/core.xml": (
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                b'<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
                b'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                b'xmlns:dcterms="http://purl.org/dc/terms/" '
                b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                b"<dc:title>Board minutes</dc:title><dc:creator>Alex Example</dc:creator>"
                b'<dcterms:created xsi:type="dcterms:W3CDTF">2026-03-09T10:00:00Z</dcterms:created>'
                b"</cp:coreProperties>"
            ),
        }
    )


def _jpeg(*, generator: random.Random, gps: tuple[float, float] | None, taken: datetime) -> bytes:
    from PIL import Image, ImageDraw
    from PIL.ExifTags import GPS, IFD, Base

    picture = Image.new("RGB", (160, 120), (generator.randrange(256), generator.randrange(256), 200))
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x, y = generator.randrange(160), generator.randrange(120)
        colour = (generator.randrange(256), generator.randrange(256), generator.randrange(256))
        draw.rectangle((x, y, x + generator.randrange(8, 40), y + generator.randrange(8, 30)), fill=colour)
    exif = Image.Exif()
    exif[Base.Make] = "Custodia"
    exif[Base.Model] = "Demo Camera 1"
    exif[Base.DateTime] = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if gps is not None:
        latitude, longitude = gps
        exif.get_ifd(IFD.GPSInfo).update(
            {
                GPS.GPSVersionID: b"\x02\x03\x00\x00",
                GPS.GPSLatitudeRef: "N" if latitude >= 0 else "S",
                GPS.GPSLatitude: _degrees_minutes_seconds(abs(latitude)),
                GPS.GPSLongitudeRef: "E" if longitude >= 0 else "W",
                GPS.GPSLongitude: _degrees_minutes_seconds(abs(longitude)),
            }
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, exif=exif)
    return buffer.getvalue()


def _degrees_minutes_seconds(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 2)
    return (float(degrees), float(minutes), seconds)


def _mbox() -> bytes:
    messages = []
    first = EmailMessage()
    first["From"] = "Alex Example <alex@example.org>"
    first["To"] = "J. Doe <j.doe@example.net>"
    first["Subject"] = MAIL_SUBJECT
    first["Date"] = format_datetime(DEMO_TIME.replace(day=1, hour=18, minute=5))
    first["Message-ID"] = "<shipment-7@example.org>"
    first.set_content("J.,\n\nThe container numbers are in the attached list. Delete this mail.\n\nA.\n")
    first.add_attachment(
        b"container,seal\nMSKU 402117-3,SL-0091\nTGHU 889012-6,SL-0092\n",
        maintype="text",
        subtype="csv",
        filename="containers.csv",
    )
    first.set_boundary("custodia-demo-boundary-1")  # the default one is random
    messages.append(first)
    reply = EmailMessage()
    reply["From"] = "J. Doe <j.doe@example.net>"
    reply["To"] = "Alex Example <alex@example.org>"
    reply["Subject"] = f"Re: {MAIL_SUBJECT}"
    reply["Date"] = format_datetime(DEMO_TIME.replace(day=1, hour=21, minute=40))
    reply["Message-ID"] = "<re-shipment-7@example.net>"
    reply["In-Reply-To"] = "<shipment-7@example.org>"
    reply.set_content("Received. Meet at the harbour on Monday.\n")
    messages.append(reply)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inbox.mbox"
        box = mailbox.mbox(path, create=True)
        for message in messages:
            entry = mailbox.mboxMessage(message)
            sender = message["From"].addresses[0].addr_spec
            sent = datetime.strptime(message["Date"], "%a, %d %b %Y %H:%M:%S %z")
            entry.set_from(sender, sent.astimezone(UTC).timetuple())
            box.add(entry)
        box.close()
        return path.read_bytes()


def _webkit_microseconds(moment: datetime) -> int:
    return int((moment - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000


def _chrome_history() -> bytes:
    """A Chrome ``History`` database with the tables and columns the browser-history tool reads."""
    visits = [
        ("https://www.example-harbour.nl/terminal-4/schedule", "Terminal 4 — arrivals", DEMO_TIME.replace(day=2)),
        ("https://maps.example.com/?q=52.3731,4.8922", "Dam, Amsterdam — Maps", DEMO_TIME.replace(day=2, hour=13)),
        ("https://www.example-bank.test/transfer", "Transfer — Example Bank", DEMO_TIME.replace(day=4, hour=8)),
        ("https://search.example.com/?q=how+to+wipe+browser+history", "how to wipe browser history", DEMO_TIME),
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "History"
        connection = sqlite3.connect(path)
        connection.executescript(
            "CREATE TABLE urls (id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR,"
            " visit_count INTEGER DEFAULT 0, typed_count INTEGER DEFAULT 0, last_visit_time INTEGER,"
            " hidden INTEGER DEFAULT 0);"
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER, from_visit INTEGER,"
            " transition INTEGER DEFAULT 0, segment_id INTEGER, visit_duration INTEGER DEFAULT 0);"
            "CREATE TABLE downloads (id INTEGER PRIMARY KEY, guid VARCHAR, current_path LONGVARCHAR,"
            " target_path LONGVARCHAR, start_time INTEGER, received_bytes INTEGER, total_bytes INTEGER,"
            " state INTEGER, end_time INTEGER, mime_type VARCHAR);"
            "CREATE TABLE downloads_url_chains (id INTEGER, chain_index INTEGER, url LONGVARCHAR,"
            " PRIMARY KEY (id, chain_index));"
        )
        for number, (url, title, moment) in enumerate(visits, start=1):
            at = _webkit_microseconds(moment)
            connection.execute(
                "INSERT INTO urls VALUES (?, ?, ?, 1, ?, ?, 0)", (number, url, title, int(number == 4), at)
            )
            # 1: typed, 0: link (the core transition type in the low byte).
            connection.execute("INSERT INTO visits VALUES (?, ?, ?, 0, ?, 0, 0)", (number, number, at, 1))
        started = _webkit_microseconds(DEMO_TIME.replace(day=4, hour=8, minute=2))
        connection.execute(
            "INSERT INTO downloads VALUES (1, 'd3m0-0000-0001', ?, ?, ?, 48213, 48213, 1, ?, 'application/pdf')",
            (
                "C:\\Users\\alex\\Downloads\\transfer-receipt.pdf",
                "C:\\Users\\alex\\Downloads\\transfer-receipt.pdf",
                started,
                started + 3_000_000,
            ),
        )
        connection.execute(
            "INSERT INTO downloads_url_chains VALUES (1, 0, 'https://www.example-bank.test/receipt/7.pdf')"
        )
        connection.commit()
        connection.close()
        return path.read_bytes()


# ------------------------------------------------------------------------------------------------ the disk


def _run_tool(tool: str, *arguments: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of REQUIRED_TOOLS by its full path; every argument is built here, none comes from a user."""
    path = _tool_path(tool)
    if path is None:
        raise DemoToolMissing(f"cannot build the demo disk: {tool} is missing (apt: e2fsprogs fdisk)")
    return subprocess.run(  # noqa: S603  # nosec B603 # a fixed tool and arguments made by this module
        [path, *arguments], input=input_text, check=True, capture_output=True, text=True, env=_tool_environment()
    )


def _tool_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # mke2fs and debugfs stamp the superblock and inodes with this time instead of now.
    environment["E2FSPROGS_FAKE_TIME"] = str(int(DEMO_TIME.timestamp()))
    environment["SOURCE_DATE_EPOCH"] = str(int(DEMO_TIME.timestamp()))
    return environment


def _make_ext4(*, tree: Path, image: Path) -> None:
    _run_tool(
        "mkfs.ext4",
        *[
            "-q",
            "-F",
            "-L",
            "DEMO",
            "-U",
            FILE_SYSTEM_UUID,
            "-E",
            f"hash_seed={FILE_SYSTEM_UUID}",
            "-d",
            str(tree),
            str(image),
            f"{FILE_SYSTEM_BYTES // 1024}k",
        ],
    )


def _ancestors(files: list[str]) -> set[str]:
    """Every folder above the files, the root included (as ``.``)."""
    return {str(parent) for name in files for parent in Path(name).parents}


def _debugfs(image: Path, requests: list[str]) -> None:
    result = _run_tool("debugfs", "-w", "-f", "-", str(image), input_text="\n".join(requests) + "\n")
    # debugfs exits 0 even when a request failed; it says so on stderr after its banner line.
    complaints = [line for line in result.stderr.splitlines() if line and not line.startswith("debugfs ")]
    if complaints:
        raise RuntimeError(f"debugfs failed: {' '.join(complaints)}")


def _write_partitioned_disk(*, file_system: Path, disk: Path) -> None:
    size = file_system.stat().st_size
    total_sectors = PARTITION_START_SECTOR + size // SECTOR_SIZE
    with disk.open("wb") as stream:
        stream.truncate(total_sectors * SECTOR_SIZE)
    layout = (
        f"label: dos\nlabel-id: {DISK_IDENTIFIER}\nunit: sectors\n\n"
        f"start={PARTITION_START_SECTOR}, size={size // SECTOR_SIZE}, type=83\n"
    )
    _run_tool("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk), input_text=layout)
    with file_system.open("rb") as source, disk.open("r+b") as target:
        target.seek(PARTITION_START_SECTOR * SECTOR_SIZE)
        shutil.copyfileobj(source, target, length=1024 * 1024)
