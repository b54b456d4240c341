"""Trace search at scale, timed: index N synthetic traces in one case and time 20 queries, on SQLite and on
PostgreSQL, next to a bare full-text engine doing the same job in the same run.

    .venv/bin/python bench/search.py [--traces N | --quick | --smoke] [--only sqlite|postgres] [--seed S] [--repeats R]
                                     [--index-only]

``--index-only`` stops after indexing: the indexing table alone (Custodia, the floors, the bare engine).

``--smoke`` (2,000 traces, one timed run of each query) takes seconds a database: it shows the benchmark
still runs end to end (``make bench-smoke``, tests/test_bench_search.py), its figures mean nothing.

What it does, per database (each in its own process, since Django's settings are per process):

1. A fresh data folder and database with the test settings, ``migrate`` (so whatever full-text indexes the
   migrations install are measured) and ``seed_demo``; one Evidence row in case DEMO-2026-001 and one
   ExtractionRun.
2. N synthetic traces (default 1,000,000; ``--quick`` 100,000), deterministic from ``--seed`` (only the
   evidence id is random): a Windows file-system tree (``/Windows/System32/…``, ``/Users/jdoe/Documents/…``,
   AppData caches, a recycle bin), files with the walker's properties (``file.size`` log-normal,
   ``file.createdOn``/``modifiedOn``/… as the walker's ISO strings over ~10 years, ``file.mimeType``), ~10 %
   e-mails (``email.from``/``to``/``subject``/``sentOn``… and a body), pictures (``picture.width``…, some
   with GPS), documents with text, text files, ~4 % deleted files. Text (at most a few hundred words) is
   drawn from a Zipf-distributed vocabulary, so ``the`` is in almost every text and ``ransomware`` in a few.
3. Indexing: the rows (the dicts ``search.extraction.pipeline.trace_row`` produces) go through the real
   publication path, ``Publisher(run).add(row)`` and ``.flush()``; traces/s counts the time spent there
   only (generating them is not counted). Then a few thousand traces are tagged (``relevant``,
   ``to check``); on PostgreSQL the tables are ANALYZEd, as autovacuum would after a bulk load.
4. Latency: every query goes through ``search.selectors.traces_search`` as the detective, with the default
   facets and a first page of 50: the work of one API search. Twice: as the search page and the API ask
   by default (hits counted up to ``CUSTODIA_SEARCH_COUNT_LIMIT``, facets over the first hits past it),
   and with ``exact=True`` (every hit counted and faceted). Warmed up once, then timed ``--repeats``
   times (5; fewer for a query whose warm-up took seconds, so that the full run stays within minutes);
   p50 and p95 per query and over all 20 queries. Two second pages (``cursor``) are timed the same way.
5. Reference: a bare engine fed the same documents in the same loop (name, path, text and the string
   properties, the words Custodia indexes): an FTS5 table in a separate SQLite file, and a table with a
   tsvector column + GIN index filled by ``COPY`` in the same PostgreSQL. For the queries it can answer
   (words, phrases, prefixes, AND/OR) it runs a first page by rank and the count:
   ``SELECT rowid FROM ref WHERE ref MATCH ? ORDER BY rank LIMIT 50`` + ``SELECT count(*) … MATCH ?``, and
   ``… WHERE doc @@ q ORDER BY ts_rank(doc, q) DESC LIMIT 50`` + ``count(*)``. No facets: it is a floor.

Without ``DATABASE_URL`` the PostgreSQL part runs on a throw-away server on loopback (``tests/servers.py``,
fsync off as in the test suite); with it, on that database (which should be empty). Figures are only
comparable within one run: the machine is shared. Not a timed test: it reports the goals, never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

DEMO_CASE = "DEMO-2026-001"
SMOKE_TRACES = 2_000
BATCH = 1000  # traces generated, then inserted, at a time (memory stays bounded)
GOAL_P95_MS = 100.0
GOAL_TRACES_PER_SECOND = 10_000
# Issue #21: indexing against the bare engine of the same database, in the same run.
GOAL_BARE_RATIO = {"sqlite": 0.5, "postgres": 0.7}

# (label, Custodia query, FTS5 MATCH expression or None, PostgreSQL to_tsquery expression or None)
QUERIES: list[tuple[str, str, str | None, str | None]] = [
    ("rare word", "ransomware", "ransomware", "ransomware"),
    ("uncommon word", "bitcoin", "bitcoin", "bitcoin"),
    ("common word", "invoice", "invoice", "invoice"),
    ("word in almost every text", "the", "the", "the"),
    ("word in most paths", "users", "users", "users"),
    ("phrase", '"find the invoice"', '"find the invoice"', "find <-> the <-> invoice"),
    ("prefix wildcard", "pass*", "pass*", "pass:*"),
    ("OR of words", "bitcoin OR ransomware", "bitcoin OR ransomware", "bitcoin | ransomware"),
    ("suffix wildcard on name", "name:*.docx", None, None),
    ("type", "type:email", None, None),
    ("property word", 'email.from:"peter.devries@example.nl"', None, None),
    ("number comparison", "file.size>100000000", None, None),
    ("number range", "file.size:[1000 TO 5000]", None, None),
    ("date range", "file.modifiedOn:[2019-01-01 TO 2019-12-31]", None, None),
    ("deleted", "deleted:true", None, None),
    ("tag", "tag:relevant", None, None),
    ("word AND type NOT deleted", "invoice AND type:email -deleted:true", None, None),
    ("word NOT type", "password -type:email", None, None),
    ("type and number", "type:picture picture.width>=4000", None, None),
    ("date comparison on e-mails", "email.sentOn>=2024-06-01 type:email", None, None),
]
EXTRA_QUERIES = [("empty query: all traces", "", None, None)]
SECOND_PAGES = ["invoice", "type:email"]


# ---------------------------------------------------------------------------------------------- generator

_COMMON = """the of and to a in is it you that he was for on are with as his they be at one have this from or had
by not word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing
see him two has look more day could go come did number sound no most people my over know water than
call first who may down side been now find any new work part take get place made live where after
back little only round man year came show every good me give our under name very through just form
sentence great think say help low line differ turn cause much mean before move right boy old too
same tell does set three want air well also play small end put home read hand port large spell add
even land here must big high such follow act why ask men change went light kind off need house
picture try us again animal point mother world near build self earth father""".split()  # noqa: SIM905
# Words the queries look for, placed at chosen ranks of the Zipf distribution (rank 0 is the most common).
_PLACED = {
    60: "invoice",
    140: "payment",
    220: "meeting",
    300: "password",
    420: "contract",
    700: "passport",
    900: "account",
    1500: "wallet",
    2000: "bitcoin",
    3000: "transfer",
    5000: "encrypted",
    12_000: "ransomware",
}
VOCABULARY_SIZE = 30_000
ZIPF_EXPONENT = 1.07


def _vocabulary() -> list[str]:
    """30,000 words, the same for every seed: common English first, then made-up words (a long tail)."""
    rng = random.Random(20260101)
    onsets = "b c d f g h j k l m n p r s t v w z br dr fl gr kl pr st tr sch".split()  # noqa: SIM905
    vowels = "a e i o u aa ee oo ei au ij".split()  # noqa: SIM905
    codas = ["", "", "n", "r", "s", "t", "l", "k", "m", "nd", "rt", "st"]
    taken = set(_COMMON) | set(_PLACED.values())
    words: list[str] = []
    common = iter(_COMMON)
    while len(words) < VOCABULARY_SIZE:
        rank = len(words)
        if rank in _PLACED:
            words.append(_PLACED[rank])
            continue
        word = next(common, None)
        while word is None:
            candidate = "".join(
                rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(2, 4))
            )
            if candidate not in taken and not candidate.startswith("pass"):
                word = candidate
        taken.add(word)
        words.append(word)
    return words


VOCABULARY = _vocabulary()
_TITLE_SKIP = frozenset(_COMMON[:60])
_CUMULATIVE = list(itertools.accumulate(1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(VOCABULARY_SIZE)))
WORD_BUFFER = 1 << 18  # Zipf draws made at a time with numpy (drawing them one by one dominated generation)

FIRST_NAMES = """peter jan anna maria john sarah david emma thomas lisa mark sophie daniel laura kevin julia michael
nina robert eva james fatima ahmed mohamed yusuf lucas noah milan tim bram sanne""".split()  # noqa: SIM905
LAST_NAMES = """devries jansen bakker visser smit meijer mulder bos vos dekker brouwer dijkstra smith jones brown
wilson taylor khan hassan yilmaz janssens peeters maes claes""".split()  # noqa: SIM905
DOMAINS = ["example.nl", "example.com", "mail.example.org", "acme.example", "bank.example", "gmail.example"]
USERS = ["jdoe", "pvries", "asmit", "mkhan"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
PHRASES = [
    "please find the invoice attached",
    "see you at the meeting tomorrow",
    "the password is in the usual place",
    "transfer the bitcoin to this wallet",
]

MIME_TYPES = {
    "dll": "application/x-dosexec",
    "exe": "application/x-dosexec",
    "sys": "application/x-dosexec",
    "mui": "application/x-dosexec",
    "cat": "application/vnd.ms-pki.seccat",
    "manifest": "text/xml",
    "xml": "text/xml",
    "dat": "application/octet-stream",
    "tmp": "application/octet-stream",
    "log": "text/plain",
    "txt": "text/plain",
    "csv": "text/csv",
    "ini": "text/plain",
    "json": "application/json",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "eml": "message/rfc822",
    "pst": "application/vnd.ms-outlook",
    "zip": "application/zip",
    "mp4": "video/mp4",
    "iso": "application/x-iso9660-image",
    "lnk": "application/x-ms-shortcut",
    "db": "application/x-sqlite3",
}
# Median size (bytes) of a file of each extension; sizes are log-normal around it.
MEDIAN_SIZES = {
    "dll": 150_000, "exe": 400_000, "sys": 60_000, "mui": 20_000, "cat": 10_000, "manifest": 2_000,
    "xml": 4_000, "dat": 16_000, "tmp": 8_000, "log": 30_000, "txt": 3_000, "csv": 20_000, "ini": 500,
    "json": 5_000, "pdf": 250_000, "docx": 40_000, "xlsx": 30_000, "pptx": 900_000, "jpg": 2_500_000,
    "png": 300_000, "gif": 20_000, "eml": 25_000, "pst": 500_000_000, "zip": 5_000_000, "mp4": 150_000_000,
    "iso": 700_000_000, "lnk": 1_500, "db": 2_000_000,
}  # fmt: skip
PICTURE_SIZES = [(4032, 3024), (3024, 4032), (6000, 4000), (1920, 1080), (1280, 720), (800, 600), (640, 480)]
CAMERAS = [
    ("Apple", "iPhone 12"),
    ("Samsung", "SM-G991B"),
    ("Canon", "EOS 80D"),
    ("NIKON", "D3500"),
    ("Google", "Pixel 7"),
]
EPOCH = datetime(2015, 6, 1, tzinfo=UTC).timestamp()
SPAN_SECONDS = 10 * 365 * 86400


# Where files go, by weight: system files dominate a real disk; e-mails are ~10 % (mail + outlook).
CATEGORIES = "system programs cache temp logs documents downloads pictures mail outlook text recycle".split()  # noqa: SIM905
CATEGORY_WEIGHTS = list(itertools.accumulate([30, 6, 12, 3, 2, 12, 4, 12, 7, 3, 5, 1]))


class TraceGenerator:
    """Deterministic synthetic traces of one Windows laptop image, as extraction would publish them."""

    def __init__(self, *, seed: int, evidence_id: str):
        import numpy

        self.rng = random.Random(seed)
        self.numpy_rng = numpy.random.default_rng(seed)
        self.vocabulary = numpy.array(VOCABULARY)
        self.cumulative = numpy.array(_CUMULATIVE) / _CUMULATIVE[-1]
        self.word_buffer: list[str] = []
        self.word_at = 0
        self.evidence_id = evidence_id
        self.next_ordinal = 0
        self.inode = 1000
        self.folders: dict[str, list[tuple[str, str]]] = {}  # category → [(uid, fs path)]
        self.addresses = [
            f"{first.capitalize()} {last.capitalize()} <{first}.{last}@{domain}>"
            for first, last, domain in itertools.product(FIRST_NAMES, LAST_NAMES, DOMAINS)
        ]
        random.Random(7).shuffle(self.addresses)
        peter = "Peter Devries <peter.devries@example.nl>"
        self.addresses.remove(peter)
        self.addresses.insert(5, peter)
        self.address_weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(self.addresses))))
        self.data_path_parent = json.dumps(
            {
                "location": "/p2",
                "part_index": 3,
                "parent": {
                    "parent": {"location": "/evidence/laptop.E01", "type_indicator": "OS"},
                    "type_indicator": "EWF",
                },
                "type_indicator": "TSK_PARTITION",
            },
            sort_keys=True,
        )
        self.fs_trace_path = "/laptop.E01/p2/NTFS"

    # -------------------------------------------------------------------------------------- helpers

    def uid(self, ordinal: int) -> str:
        return f"{self.evidence_id}:0-{ordinal}"

    def zipf_words(self, count: int) -> list[str]:
        if self.word_at + count > len(self.word_buffer):
            draws = self.cumulative.searchsorted(self.numpy_rng.random(WORD_BUFFER), side="right")
            self.word_buffer = self.vocabulary[draws.clip(0, VOCABULARY_SIZE - 1)].tolist()
            self.word_at = 0
        words = self.word_buffer[self.word_at : self.word_at + count]
        self.word_at += count
        return words

    def title_words(self, count: int) -> list[str]:
        # Names and subjects: mid-frequency words (no "the", "of"), from the same distribution's body.
        words = [w for w in self.zipf_words(count * 3) if w not in _TITLE_SKIP][:count]
        return words or [self.rng.choice(VOCABULARY[60:400])]

    def body(self, low: int, high: int, *, phrase_chance: float) -> str:
        count = min(high, max(low, int(self.rng.lognormvariate(math.log((low + high) / 3), 0.6))))
        words = self.zipf_words(count)
        sentences = []
        at = 0
        while at < len(words):
            length = self.rng.randint(6, 18)
            sentence = " ".join(words[at : at + length])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            at += length
        if self.rng.random() < phrase_chance:
            phrase = self.rng.choice(PHRASES)
            sentences.insert(self.rng.randrange(len(sentences) + 1), phrase[:1].upper() + phrase[1:] + ".")
        return " ".join(sentences)

    def moment(self, low: float = 0.0, high: float = 1.0) -> float:
        """A POSIX time in the ten years from June 2015."""
        return EPOCH + self.rng.uniform(low, high) * SPAN_SECONDS

    @staticmethod
    def walker_date(moment: float) -> str:
        # As dfVFS writes NTFS times: 100 ns precision, explicit UTC offset.
        text = datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")
        return text[:26] + "0" + text[26:]

    @staticmethod
    def tool_date(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")[:19] + "Z"

    def hexdigits(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def file_dates(self, *, created: float | None = None) -> dict[str, str]:
        created = created or self.moment()
        modified = created + self.rng.expovariate(1 / (86400 * 60))
        accessed = modified + self.rng.expovariate(1 / (86400 * 30))
        return {
            "file.createdOn": self.walker_date(created),
            "file.modifiedOn": self.walker_date(modified),
            "file.accessedOn": self.walker_date(accessed),
            "file.changedOn": self.walker_date(modified),
        }

    # -------------------------------------------------------------------------------------- traces

    def row(
        self,
        *,
        parent_uid: str,
        name: str,
        fs_path: str | None,
        trace_path: str,
        types: list[str],
        properties: dict | None = None,
        size: int | None = None,
        text: str = "",
        deleted: bool = False,
        tools: dict | None = None,
    ) -> dict:
        ordinal = self.next_ordinal
        self.next_ordinal += 1
        streams = []
        if size is not None:
            self.inode += 1
            extension = name.rpartition(".")[2].lower() if "." in name else ""
            streams.append(
                {
                    "name": "raw",
                    "size": size,
                    "data_path": (
                        f'{{"location": {json.dumps(fs_path or trace_path)}, "mft_attribute": 1, '
                        f'"mft_entry": {self.inode}, "parent": {self.data_path_parent}, "type_indicator": "NTFS"}}'
                    ),
                    "md5": self.hexdigits(128),
                    "sha1": self.hexdigits(160),
                    "sha256": self.hexdigits(256),
                    "entropy": round(self.rng.uniform(3.0, 8.0), 4),
                    "mime_type": MIME_TYPES.get(extension, "application/octet-stream"),
                }
            )
        return {
            "uid": self.uid(ordinal),
            "parent_uid": parent_uid,
            "name": name,
            "path": trace_path,
            "types": types,
            "properties": properties or {},
            "streams": streams,
            "tools": tools or {"file": ["dfvfs", "20240505"], "data": ["hashlib", "builtin"]},
            "errors": [],
            "deleted": deleted,
            "text": text,
        }

    def folder(self, *, parent: tuple[str, str], name: str, category: str | None = None) -> tuple[dict, tuple]:
        fs_path = f"{parent[1]}/{name}"
        created = self.moment(0.0, 0.3)
        row = self.row(
            parent_uid=parent[0],
            name=name,
            fs_path=fs_path,
            trace_path=self.fs_trace_path + fs_path,
            types=["file", "folder"],
            properties={
                "file.name": name,
                "file.path": fs_path,
                "file.deleted": False,
                **self.file_dates(created=created),
            },
        )
        node = (row["uid"], fs_path)
        if category:
            self.folders.setdefault(category, []).append(node)
        return row, node

    def file(self, *, parent: tuple[str, str], name: str, extras: dict | None = None, text: str = "", types=None,
             size: int | None = None, created: float | None = None, deleted: bool | None = None) -> dict:  # fmt: skip
        fs_path = f"{parent[1]}/{name}"
        extension = name.rpartition(".")[2].lower()
        if size is None:
            size = int(self.rng.lognormvariate(math.log(MEDIAN_SIZES.get(extension, 10_000)), 1.2))
        if deleted is None:
            deleted = self.rng.random() < 0.04
        properties = {"file.name": name, "file.path": fs_path, "file.deleted": deleted, "file.size": size}
        properties.update(self.file_dates(created=created))
        properties["file.mimeType"] = MIME_TYPES.get(extension, "application/octet-stream")
        properties.update(extras or {})
        tools = {"file": ["dfvfs", "20240505"], "data": ["hashlib", "builtin"]}
        for kind in types or []:
            if kind != "file":
                tools[kind] = [f"custodia-{kind}", "1"]
        return self.row(
            parent_uid=parent[0],
            name=name,
            fs_path=fs_path,
            trace_path=self.fs_trace_path + fs_path,
            types=types or ["file"],
            properties=properties,
            size=size,
            text=text,
            deleted=deleted,
            tools=tools,
        )

    def skeleton(self):
        """The image, its volume, the file system and the fixed folders of a Windows installation."""
        image = self.row(parent_uid="", name="laptop.E01", fs_path=None, trace_path="/laptop.E01", types=["image"],
                         properties={"image.format": "ewf", "image.size": 512_110_190_592})  # fmt: skip
        yield image
        volume = self.row(
            parent_uid=image["uid"],
            name="p2",
            fs_path=None,
            trace_path="/laptop.E01/p2",
            types=["volume"],
            properties={"volume.system": "gpt", "volume.index": 2, "volume.size": 511_000_000_000},
        )
        yield volume
        fs = self.row(parent_uid=volume["uid"], name="NTFS", fs_path=None, trace_path=self.fs_trace_path,
                      types=["fileSystem"], properties={"fileSystem.type": "NTFS"})  # fmt: skip
        yield fs
        root = (fs["uid"], "")
        made: dict[str, tuple] = {"": root}

        def make(path: str, category: str | None = None):
            parent_path, _, name = path.rpartition("/")
            row, node = self.folder(parent=made[parent_path], name=name, category=category)
            made[path] = node
            return row

        for path, category in [
            ("/Windows", None),
            ("/Windows/System32", "system"),
            ("/Windows/System32/drivers", "system"),
            ("/Windows/System32/config", "system"),
            ("/Windows/SysWOW64", "system"),
            ("/Windows/WinSxS", "winsxs"),
            ("/Windows/Logs", "logs"),
            ("/Program Files", None),
            ("/Program Files (x86)", None),
            ("/ProgramData", None),
            ("/$Recycle.Bin", None),
            ("/$Recycle.Bin/S-1-5-21-3623811015-3361044348-30300820-1001", "recycle"),
            ("/Users", None),
        ]:
            yield make(path, category)
        for app in [
            "Microsoft Office",
            "Google/Chrome/Application",
            "Mozilla Firefox",
            "7-Zip",
            "VideoLAN/VLC",
            "Electrum",
        ]:
            parts = app.split("/")
            for depth in range(len(parts)):
                sub = "/Program Files/" + "/".join(parts[: depth + 1])
                if sub not in made:
                    yield make(sub, "programs" if depth == len(parts) - 1 else None)
        for user in USERS:
            base = f"/Users/{user}"
            yield make(base)
            for sub, category in [
                ("Documents", "documents"),
                ("Downloads", "downloads"),
                ("Desktop", "documents"),
                ("Pictures", "pictures"),
                ("AppData", None),
                ("AppData/Local", None),
                ("AppData/Local/Google", None),
                ("AppData/Local/Google/Chrome", None),
                ("AppData/Local/Google/Chrome/User Data", None),
                ("AppData/Local/Google/Chrome/User Data/Default", None),
                ("AppData/Local/Google/Chrome/User Data/Default/Cache", "cache"),
                ("AppData/Local/Microsoft", None),
                ("AppData/Local/Microsoft/Outlook", "outlook"),
                ("AppData/Local/Temp", "temp"),
                ("AppData/Roaming", None),
                ("AppData/Roaming/Thunderbird", None),
                ("AppData/Roaming/Thunderbird/Profiles", None),
                ("AppData/Roaming/Thunderbird/Profiles/x7f3k2.default", None),
                ("AppData/Roaming/Thunderbird/Profiles/x7f3k2.default/Mail", "mail"),
            ]:
                yield make(f"{base}/{sub}", category)

    def subfolder(self, category: str):
        """Sometimes a new folder under one of the category's folders (projects, years, WinSxS parts…)."""
        parent = self.rng.choice(self.folders[category][: 8 if category != "system" else 5])
        if category == "pictures":
            name = (
                str(self.rng.randint(2015, 2025)) if self.rng.random() < 0.6 else " ".join(self.title_words(2)).title()
            )
        elif category == "documents":
            name = (
                self.rng.choice(["Project ", "Case ", "Tax ", "", "Old "])
                + " ".join(self.title_words(self.rng.randint(1, 2))).title()
            )
        elif category == "system":
            build = self.rng.randint(10000, 22631)
            name = f"amd64_microsoft-windows-{'-'.join(self.title_words(2))}_31bf3856ad364e35_10.0.{build}.1_none"
            parent = self.folders["winsxs"][0]
        elif category == "mail":
            name = self.rng.choice(["Inbox", "Sent", "Archive", "Trash", " ".join(self.title_words(1)).title()])
        else:
            name = " ".join(self.title_words(2)).title()
        row, _ = self.folder(parent=parent, name=name, category=category)
        return row

    def email_properties(self, sent: float) -> tuple[dict, str]:
        sender = self.rng.choices(self.addresses, cum_weights=self.address_weights)[0]
        recipients = self.rng.choices(self.addresses, cum_weights=self.address_weights, k=self.rng.randint(1, 3))
        if self.rng.random() < 0.15:
            subject = f"Invoice {self.rng.randint(1000, 99999)} {self.rng.choice(COMPANIES)}"
        else:
            subject = " ".join(self.title_words(self.rng.randint(2, 7))).capitalize()
        subject = self.rng.choice(["", "", "", "Re: ", "RE: ", "Fwd: "]) + subject
        properties = {
            "email.from": sender,
            "email.to": recipients,
            "email.subject": subject,
            "email.sentOn": self.tool_date(sent),
            "email.messageId": f"<{self.hexdigits(64)}@{sender.rpartition('@')[2].rstrip('>')}>",
        }
        if self.rng.random() < 0.2:
            properties["email.cc"] = self.rng.choices(self.addresses, cum_weights=self.address_weights, k=1)
        if self.rng.random() < 0.2:
            properties["email.attachmentCount"] = self.rng.randint(1, 3)
        return properties, subject

    def picture_properties(self, extension: str, taken: float, *, camera: bool) -> tuple[dict, list[str]]:
        width, height = self.rng.choice(PICTURE_SIZES if camera else PICTURE_SIZES[3:])
        properties = {
            "picture.type": {"jpg": "JPEG", "png": "PNG", "gif": "GIF"}[extension],
            "picture.width": width,
            "picture.height": height,
            "picture.colorMode": "RGB",
        }
        types = ["file", "picture"]
        if camera:
            make, model = self.rng.choice(CAMERAS)
            properties.update(
                {
                    "picture.exif.make": make,
                    "picture.exif.model": model,
                    "picture.cameraMake": make,
                    "picture.cameraModel": model,
                    "picture.takenOn": self.tool_date(taken),
                }
            )
            if self.rng.random() < 0.3:
                properties.update(
                    {
                        "gps.latitude": round(self.rng.uniform(50.7, 53.5), 6),
                        "gps.longitude": round(self.rng.uniform(3.3, 7.2), 6),
                    }
                )
                types.append("gps")
        return properties, types

    def one(self):
        """One more trace (or a new folder first) of a category drawn by weight."""
        rng = self.rng
        category = rng.choices(CATEGORIES, cum_weights=CATEGORY_WEIGHTS)[0]
        if category in ("system", "documents", "pictures", "mail") and rng.random() < 0.04:
            return self.subfolder(category)
        folders = self.folders["documents" if category == "text" else category]
        # Newer folders (projects, years) get most of the new files.
        parent = folders[min(len(folders) - 1, int(len(folders) * rng.random() ** 0.5))]
        if category in ("system", "programs"):
            extension = rng.choices(
                ["dll", "exe", "sys", "mui", "cat", "manifest", "xml", "dat"], [50, 10, 5, 12, 8, 8, 4, 3]
            )[0]
            stem = "".join(rng.choice(VOCABULARY[200:3000])[: rng.randint(3, 7)] for _ in range(rng.randint(1, 3)))
            created = EPOCH + 86400 * rng.choice([0, 400, 900, 1500, 2200, 3000]) + rng.randint(0, 3600)
            return self.file(parent=parent, name=f"{stem}.{extension}", created=created, deleted=False)
        if category in ("cache", "temp"):
            extension = rng.choice(["tmp", "dat", "json", "", ""])
            name = f"f_{rng.getrandbits(24):06x}" if category == "cache" else f"~DF{rng.getrandbits(16):04X}"
            return self.file(parent=parent, name=f"{name}.{extension}" if extension else name)
        if category == "logs":
            name = f"{rng.choice(['setup', 'cbs', 'dism', 'WindowsUpdate'])}{rng.randint(1, 999)}.log"
            return self.file(parent=parent, name=name, text=self.body(20, 200, phrase_chance=0.0))
        if category == "recycle":
            extension = rng.choice(["docx", "pdf", "jpg", "txt", "zip"])
            return self.file(parent=parent, name=f"$R{rng.getrandbits(24):06X}.{extension}")
        if category == "documents":
            extension = rng.choices(["docx", "pdf", "xlsx", "pptx", "txt", "csv"], [30, 30, 15, 8, 12, 5])[0]
            words = self.title_words(rng.randint(1, 4))
            if rng.random() < 0.1:
                words = ["Invoice", str(rng.randint(2015, 2025)), rng.choice(COMPANIES)]
            name = " ".join(words).capitalize() + f".{extension}"
            text = self.body(40, 400, phrase_chance=0.02) if rng.random() < 0.85 else ""
            types = ["file"] if extension in ("txt", "csv") else ["file", "document"]
            extras = {}
            if "document" in types:
                extras = {
                    "document.author": rng.choice(self.addresses).split(" <")[0],
                    "document.title": name.rsplit(".", 1)[0],
                }
                if extension == "pdf":
                    extras["document.pageCount"] = rng.randint(1, 60)
            return self.file(parent=parent, name=name, text=text, types=types, extras=extras)
        if category == "text":
            name = (
                rng.choice(["notes", "todo", "passwords", "readme", "log", "list", "accounts"])
                + f"{rng.randint(1, 99)}.txt"
            )
            return self.file(parent=parent, name=name, text=self.body(10, 200, phrase_chance=0.05))
        if category == "downloads":
            extension = rng.choices(["pdf", "zip", "exe", "mp4", "iso", "jpg"], [30, 25, 20, 12, 3, 10])[0]
            name = "_".join(self.title_words(rng.randint(1, 3))) + f".{extension}"
            return self.file(parent=parent, name=name)
        if category == "pictures":
            extension = rng.choices(["jpg", "png", "gif"], [80, 17, 3])[0]
            camera = extension == "jpg" and rng.random() < 0.8
            taken = self.moment()
            if camera:
                name = rng.choice(["IMG_", "DSC", "PXL_"]) + f"{rng.randint(1, 9999):04d}.{extension}"
            else:
                name = f"Screenshot {datetime.fromtimestamp(taken, UTC):%Y-%m-%d %H%M%S}.{extension}"
            extras, types = self.picture_properties(extension, taken, camera=camera)
            return self.file(parent=parent, name=name, extras=extras, types=types, created=taken)
        # E-mail: an .eml file of a Thunderbird folder, or a message inside an Outlook PST.
        sent = self.moment()
        properties, subject = self.email_properties(sent)
        text = self.body(15, 300, phrase_chance=0.08)
        safe = "".join(c if c.isalnum() or c in " -" else "_" for c in subject)[:60].strip() or "(no subject)"
        if category == "mail":
            return self.file(parent=parent, name=f"{safe}.eml", extras=properties, text=text,
                             types=["file", "email"], created=sent)  # fmt: skip
        pst = f"{parent[1]}/{parent[1].split('/')[2]}.pst"
        folder = rng.choice(["Inbox", "Sent Items", "Deleted Items", "Archive"])
        return self.row(
            parent_uid=parent[0],
            name=safe,
            fs_path=None,
            trace_path=f"{self.fs_trace_path}{pst}/{folder}/{safe}",
            types=["email"],
            properties=properties,
            size=len(text) + 2000,
            text=text,
            deleted=folder == "Deleted Items" and rng.random() < 0.3,
            tools={"email": ["custodia-pst", "1"]},
        )

    def traces(self, count: int):
        for row in self.skeleton():
            if self.next_ordinal >= count:
                return
            yield row
        while self.next_ordinal < count:
            yield self.one()


def batches(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def bare_words(row: dict) -> tuple[str, str, str, str]:
    """What the bare engine indexes of a trace: name, path, text and its string properties."""
    strings = " ".join(value for value in row["properties"].values() if isinstance(value, str))
    return row["name"], row["path"], row["text"], strings


# ---------------------------------------------------------------------------------------------- measuring


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest rank: with 5 samples the p95 is the slowest."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


QUERY_BUDGET_SECONDS = 15.0  # the timed runs of one query stop short of this


def measure(function, *, repeats: int) -> list[float]:
    """One warm-up, then ``repeats`` timed runs; fewer when the warm-up shows they would take more than the
    budget, and none when the warm-up alone took longer: then it is the one sample (a query that slow is not
    made faster by a warm cache)."""
    started = time.perf_counter()
    function()
    warm = time.perf_counter() - started
    if warm > QUERY_BUDGET_SECONDS:
        return [warm]
    return timed(function, max(1, min(repeats, int(QUERY_BUDGET_SECONDS / max(warm, 1e-6)))))


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class BareSqlite:
    name = "FTS5"

    def __init__(self, path: Path, *, reuse: bool = False):
        import sqlite3

        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if not reuse:
            self.db.execute("CREATE VIRTUAL TABLE ref USING fts5(name, path, text, properties)")
        self.rowid = 0
        self.keep = reuse

    def insert(self, rows: list[dict]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO ref(rowid, name, path, text, properties) VALUES (?, ?, ?, ?, ?)",
            [(self.rowid + i + 1, *bare_words(row)) for i, row in enumerate(rows)],
        )
        self.db.execute("COMMIT")
        self.rowid += len(rows)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.db.close()

    def first_page(self, expression: str) -> None:
        self.db.execute("SELECT rowid FROM ref WHERE ref MATCH ? LIMIT 50", (expression,)).fetchall()

    def sample(self, expression: str, count: int) -> None:
        self.db.execute("SELECT rowid FROM ref WHERE ref MATCH ? LIMIT ?", (expression, count)).fetchall()

    def search(self, expression: str) -> int:
        self.db.execute("SELECT rowid FROM ref WHERE ref MATCH ? ORDER BY rank LIMIT 50", (expression,)).fetchall()
        return self.db.execute("SELECT count(*) FROM ref WHERE ref MATCH ?", (expression,)).fetchone()[0]


class BarePostgres:
    name = "tsvector + GIN"

    def __init__(self, settings_dict: dict, *, reuse: bool = False):
        import psycopg

        self.db = psycopg.connect(
            host=settings_dict["HOST"] or None,
            port=settings_dict["PORT"] or None,
            user=settings_dict["USER"] or None,
            password=settings_dict["PASSWORD"] or None,
            dbname=settings_dict["NAME"],
            autocommit=True,
        )
        self.rowid = 0
        self.keep = reuse
        if reuse:
            return
        self.db.execute("DROP TABLE IF EXISTS bench_ref")
        # Split at every non-alphanumeric character, as Custodia does: PostgreSQL's own parser would keep a
        # whole path ("/laptop.E01/p2/NTFS/Users/…") as one word, and ``users`` would find nothing.
        self.db.execute(
            """CREATE TABLE bench_ref (id bigint PRIMARY KEY, name text, path text, text text, properties text,
               doc tsvector GENERATED ALWAYS AS (to_tsvector('simple', regexp_replace(
                   name || ' ' || path || ' ' || text || ' ' || properties, '[^[:alnum:]]+', ' ', 'g'))) STORED)"""
        )
        self.db.execute("CREATE INDEX bench_ref_doc ON bench_ref USING gin (doc)")

    def insert(self, rows: list[dict]) -> None:
        with (
            self.db.transaction(),
            self.db.cursor() as cursor,
            cursor.copy("COPY bench_ref (id, name, path, text, properties) FROM STDIN") as copy,
        ):
            for i, row in enumerate(rows):
                copy.write_row((self.rowid + i + 1, *bare_words(row)))
        self.rowid += len(rows)

    def finish(self) -> None:
        self.db.execute("ANALYZE bench_ref")

    def close(self) -> None:
        if not self.keep:
            self.db.execute("DROP TABLE bench_ref")
        self.db.close()

    def first_page(self, expression: str) -> None:
        self.db.execute(
            "SELECT id FROM bench_ref WHERE doc @@ to_tsquery('simple', %s) LIMIT 50", (expression,)
        ).fetchall()

    def sample(self, expression: str, count: int) -> None:
        self.db.execute(
            "SELECT id FROM bench_ref WHERE doc @@ to_tsquery('simple', %s) LIMIT %s", (expression, count)
        ).fetchall()

    def search(self, expression: str) -> int:
        self.db.execute(
            "SELECT id FROM bench_ref, to_tsquery('simple', %s) q WHERE doc @@ q "
            "ORDER BY ts_rank(doc, q) DESC LIMIT 50",
            (expression,),
        ).fetchall()
        return self.db.execute(
            "SELECT count(*) FROM bench_ref WHERE doc @@ to_tsquery('simple', %s)", (expression,)
        ).fetchone()[0]


# ------------------------------------------------------------------------------------ indexing floors


FLOOR_LABELS = {
    "indexed": "trace rows alone, all the trace table's indexes, no words",
    "primary": "trace rows alone, primary key only, no words",
}


def trace_table_copy(*, name: str, indexes: bool) -> None:
    """A table ``name`` like ``search_trace`` (same columns, generated columns and foreign keys), with all its
    indexes (``indexes``) or with its primary key only; without the words (FTS5 is a separate table on
    SQLite; the tsvector column and its GIN index are left out on PostgreSQL), the number index and the
    triggers: what the trace rows alone cost."""
    import re

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'search_trace' AND type IN ('table', 'index') "
                "AND sql IS NOT NULL ORDER BY type DESC"
            )
            for kind, sql in cursor.fetchall():
                if kind == "table":
                    sql = sql.replace('"search_trace"', f'"{name}"', 1)
                    cursor.execute(sql if indexes else sql.replace(" UNIQUE", ""))
                elif indexes:
                    cursor.execute(re.sub(r'INDEX "(\w+)" ON "search_trace"', rf'INDEX "{name}_\1" ON "{name}"', sql))
            return
        cursor.execute(
            f"CREATE TABLE {name} (LIKE search_trace INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY"
            + (" INCLUDING CONSTRAINTS INCLUDING INDEXES)" if indexes else ")")
        )
        cursor.execute(f"ALTER TABLE {name} DROP COLUMN search_vector")  # and its GIN index with it
        if not indexes:
            cursor.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'search_trace'::regclass "
            "AND contype = 'f'"
        )
        for (definition,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {name} ADD {definition}")


class FloorRows:
    """A floor of indexing: the trace rows the publisher writes (the same values, from
    ``Publisher.queue/parameters``), written into a copy of the trace table (:func:`trace_table_copy`) the
    cheapest way the database takes them (``COPY`` on PostgreSQL, one ``INSERT`` run with ``executemany``
    on SQLite), one transaction a batch, with no words and no number index."""

    def __init__(self, *, run, key: str):
        from search.publisher import Publisher

        self.name = FLOOR_LABELS[key]
        self.table = f"bench_floor_{key}"
        self.rows_of = Publisher(run, shard=0)  # only queues rows and makes their values; never flushes
        trace_table_copy(name=self.table, indexes=key == "indexed")

    def insert(self, rows: list[dict]) -> None:
        from django.db import connection, transaction

        from search.models import Trace

        self.rows_of.rows = []
        for row in rows:
            self.rows_of.queue(row)
        values = self.rows_of.parameters(words=False)
        quote = connection.ops.quote_name
        columns = ", ".join(quote(Trace._meta.get_field(name).column) for name in self.rows_of.INSERT_FIELDS)
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with (
                    connection.connection.cursor() as raw,
                    raw.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy,
                ):
                    for row in values:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(self.rows_of.INSERT_FIELDS))
                cursor.executemany(f"INSERT INTO {self.table} ({columns}) VALUES ({marks})", values)  # noqa: S608  # nosec B608 (our own table)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


class CustodiaRows:
    """Custodia's own indexing: every row through ``Publisher.add``, the rest at ``flush``; it notes how long
    the first trace took to become searchable (the first batch committed)."""

    name = "Custodia (Publisher.add/flush)"

    def __init__(self, publisher):
        self.publisher = publisher
        self.started: float | None = None
        self.first_searchable: float | None = None

    def insert(self, rows: list[dict]) -> None:
        if self.started is None:
            self.started = time.perf_counter()
        for row in rows:
            self.publisher.add(row)
            if self.first_searchable is None and self.publisher.flushed["traces"]:
                self.first_searchable = time.perf_counter() - self.started

    def finish(self) -> None:
        self.publisher.flush()

    def close(self) -> None:
        pass


def backend_cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a PostgreSQL backend process on this machine; 0 when there is none (SQLite)
    or it is not local."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_backend_pid(writer) -> int | None:
    """The PostgreSQL backend a writer's statements run in: the bare engine's own connection, else Django's."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    if isinstance(writer, BarePostgres):
        return writer.db.info.backend_pid
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def index_traces(*, database: str, writers: dict, rows_iterator, traces: int) -> dict:
    """Feed every writer (Custodia's publisher, the bare engine, the floors) the same rows, batch by batch in
    turn, timing each apart: wall-clock seconds, and CPU seconds of this process plus of the PostgreSQL
    backend that did its work (on a shared machine the CPU seconds say more than the wall clock; both are
    reported). Generating the rows is timed too, and counted for none of them."""
    seconds = dict.fromkeys(writers, 0.0)
    cpu = dict.fromkeys(writers, 0.0)
    pids = {key: writer_backend_pid(writer) for key, writer in writers.items()}

    def timed_call(key: str, call) -> None:
        t0, c0, b0 = time.perf_counter(), time.process_time(), backend_cpu_seconds(pids[key])
        call()
        seconds[key] += time.perf_counter() - t0
        cpu[key] += time.process_time() - c0 + backend_cpu_seconds(pids[key]) - b0

    generate_seconds = 0.0
    done = 0
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        rows = list(itertools.islice(rows_iterator, BATCH))
        generate_seconds += time.perf_counter() - t0
        if not rows:
            break
        for key, writer in writers.items():
            timed_call(key, lambda writer=writer, rows=rows: writer.insert(rows))
        done += len(rows)
        if done % max(BATCH, traces // 10 // BATCH * BATCH) == 0:
            log(
                f"{database}: {done:,} traces, "
                + ", ".join(f"{key} {done / seconds[key]:,.0f}/s" for key in writers)
                + f", {time.perf_counter() - started:.0f} s"
            )
    for key, writer in writers.items():
        timed_call(key, writer.finish)
    return {"seconds": seconds, "cpu_seconds": cpu, "generate_seconds": generate_seconds, "generated": done}


def code_version() -> str:
    """The commit this process runs, and whether the app code differs from it (the tree is shared)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "search", "cases", "evidence", "custodia")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if changed else "")


def run_database(
    *,
    database: str,
    traces: int,
    seed: int,
    repeats: int,
    index_only: bool = False,
    keep_dir: Path | None = None,
    reuse: bool = False,
) -> dict:
    """The whole measurement on the database Django is configured for (one process per database).

    With ``keep_dir`` the SQLite files (Custodia's and the FTS5 reference) live in ``keep_dir/<database>``
    and are kept, with the indexing figures in a JSON file beside them; with ``reuse`` too, nothing is
    indexed: the queries are timed on what an earlier ``--keep-db`` run left there. ``index_only`` stops
    after indexing (its floors included), before the queries."""
    from bench.extract_pipeline import setup_django

    workdir = kept_workdir(keep_dir, database, reuse=reuse) if keep_dir else None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"custodia-bench-search-{database}-"))
    code = code_version()
    setup_django(workdir / "data")
    from django.conf import settings
    from django.db import connection

    from cases.models import Case, User
    from evidence.services.registration import evidence_register
    from search.models import ExtractionRun, Trace, TraceTag
    from search.publisher import Publisher
    from search.services import trace_statistics_refresh

    case = Case.objects.get(reference=DEMO_CASE)
    custodian = User.objects.get(username="custodian")
    detective = User.objects.get(username="detective")
    if reuse:
        return time_kept_database(database=database, workdir=workdir, case=case, detective=detective,
                                  repeats=repeats, code=code)  # fmt: skip
    evidence = evidence_register(
        actor=custodian, case=case, label="Laptop (synthetic, bench)", kind="disk_image", original_name="laptop.E01"
    )
    run = ExtractionRun.objects.create(evidence=evidence, state="running", started_at=datetime.now(UTC))
    run = ExtractionRun.objects.select_related("evidence").get(pk=run.pk)
    bare = BareSqlite(workdir / "reference.sqlite3") if database == "sqlite" else BarePostgres(connection.settings_dict)

    log(f"{database}: indexing {traces:,} traces")
    publisher = Publisher(run, shard=0)
    generator = TraceGenerator(seed=seed, evidence_id=str(evidence.pk))
    custodia = CustodiaRows(publisher)
    floors = {key: FloorRows(run=run, key=key) for key in FLOOR_LABELS}
    indexing = index_traces(
        database=database,
        writers={"custodia": custodia, "bare": bare, **floors},
        rows_iterator=generator.traces(traces),
        traces=traces,
    )
    custodia_seconds, bare_seconds = indexing["seconds"]["custodia"], indexing["seconds"]["bare"]
    generate_seconds, done = indexing["generate_seconds"], indexing["generated"]
    for floor in floors.values():
        floor.close()
    ExtractionRun.objects.filter(pk=run.pk).update(state="done", finished_at=datetime.now(UTC))
    stored = Trace.objects.filter(run=run).count()
    summary = {
        "database": database,
        "server": connection.pg_version if connection.vendor == "postgresql" else None,
        "sqlite_version": __import__("sqlite3").sqlite_version,
        "traces": stored,
        "generated": done,
        "tags": 0,
        "custodia_seconds": custodia_seconds,
        "bare_seconds": bare_seconds,
        "floor_seconds": {key: indexing["seconds"][key] for key in floors},
        "cpu_seconds": indexing["cpu_seconds"],
        "first_searchable": custodia.first_searchable,
        "generate_seconds": generate_seconds,
        "bare_name": bare.name,
        "count_limit": settings.CUSTODIA_SEARCH_COUNT_LIMIT,
        "queries": [],
        "code": code,
    }
    if index_only:
        if keep_dir:
            bare.keep = True
            (workdir / KEPT_SUMMARY).write_text(json.dumps({**summary, "seed": seed}))
        bare.close()
        connection.close()
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        return summary

    # A few thousand tagged traces, as a team that has been at work on the case.
    tagged = 0
    for name, every in (("relevant", 300), ("to check", 1000)):
        uids = [generator.uid(ordinal) for ordinal in range(every // 2, traces, every)]
        for chunk in batches(uids, 500):
            ids = Trace.objects.filter(uid__in=chunk).values_list("pk", flat=True)
            TraceTag.objects.bulk_create(
                [TraceTag(trace_id=pk, case=case, name=name, created_by=detective) for pk in ids]
            )
            tagged += len(ids)
    # As the end of an extraction run does (search.services.trace_statistics_refresh); on PostgreSQL also
    # VACUUM, as autovacuum would after a bulk load.
    trace_statistics_refresh()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
    log(f"{database}: {stored:,} traces stored, {tagged:,} tags; timing queries")

    results = time_queries(database=database, case=case, detective=detective, bare=bare, repeats=repeats)
    query_floors = time_floors(database=database, case=case, bare=bare, repeats=repeats)
    summary.update(tags=tagged, queries=results, floors=query_floors)
    if keep_dir:
        bare.keep = True
        (workdir / KEPT_SUMMARY).write_text(json.dumps({**summary, "queries": [], "floors": {}, "seed": seed}))
    bare.close()
    connection.close()
    if not keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite files of 1 M traces take gigabytes
    return summary


# ---------------------------------------------------------------------------------------------- timing

KEPT_SUMMARY = "indexing.json"  # the indexing figures of a kept database, beside its files


def kept_workdir(keep_dir: Path, database: str, *, reuse: bool) -> Path:
    """``keep_dir/<database>``: empty (or new) to index into, or holding an indexed database to reuse."""
    workdir = keep_dir.resolve() / database
    indexed = (workdir / KEPT_SUMMARY).exists()
    if reuse and not indexed:
        raise SystemExit(f"{workdir} holds no indexed database: make one with --keep-db {keep_dir}")
    if not reuse and workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir} is not empty: time it with --reuse-db {keep_dir}, or remove it")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def time_kept_database(*, database: str, workdir: Path, case, detective, repeats: int, code: str) -> dict:
    """The queries timed on a database indexed by an earlier ``--keep-db`` run (its indexing figures kept)."""
    from django.db import connection

    summary = json.loads((workdir / KEPT_SUMMARY).read_text())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # statistics of the current schema (a migration may have added indexes)
    bare = (
        BareSqlite(workdir / "reference.sqlite3", reuse=True)
        if database == "sqlite"
        else BarePostgres(connection.settings_dict, reuse=True)
    )
    log(f"{database}: reusing {summary['traces']:,} traces indexed by {summary['code']}; timing queries")
    summary["queries"] = time_queries(database=database, case=case, detective=detective, bare=bare, repeats=repeats)
    summary["floors"] = time_floors(database=database, case=case, bare=bare, repeats=repeats)
    summary["code"] = f"{code} (indexed by {summary['code']})"
    bare.close()
    connection.close()
    return summary


def time_queries(*, database: str, case, detective, bare, repeats: int) -> list[dict]:
    """Every query of QUERIES (and the extra ones, and the second pages) through ``traces_search``, as the
    detective, then on the bare engine."""
    from search.selectors import traces_search

    def search(query: str, cursor: str | None = None, *, exact: bool = False) -> dict:
        return traces_search(
            user=detective, case_id=case.pk, query=query, facets=None, limit=50, cursor=cursor, exact=exact
        )

    def new_entry(label: str, query: str) -> dict:
        return {"label": label, "query": query, "samples": [], "exact_samples": [], "bare_samples": [],
                "total": None, "exact_total": None, "error": None, "repeats": repeats}  # fmt: skip

    results = []
    for label, query, fts5, tsquery in [*QUERIES, *EXTRA_QUERIES]:
        entry = new_entry(label, query)
        found: dict = {}
        try:
            entry["samples"] = measure(lambda q=query, f=found: f.update(result=search(q)), repeats=repeats)
            entry["total"] = found["result"]["total"]
            if TIME_COUNTING_ALL:
                entry["exact_samples"] = measure(
                    lambda q=query, f=found: f.update(result=search(q, exact=True)), repeats=repeats
                )
                entry["exact_total"] = found["result"]["total"]
        except Exception as exc:  # reported in the table, never hidden
            entry["error"] = f"{exc.__class__.__name__}: {exc}"[:300]
        expression = fts5 if database == "sqlite" else tsquery
        if expression is not None:
            entry["bare_total"] = bare.search(expression)
            entry["bare_samples"] = measure(lambda e=expression: bare.search(e), repeats=repeats)
        results.append(entry)
        log(
            f"{database}: {query or '(empty)'}: {entry['total']} matches, "
            f"p50 {percentile(entry['samples'], 0.5) * 1000 if entry['samples'] else float('nan'):.0f} ms"
            + (f"; {entry['error']}" if entry["error"] else "")
        )
    for query in SECOND_PAGES:
        entry = new_entry("second page", query)
        try:
            cursor = search(query)["cursor"]
            entry["samples"] = measure(lambda q=query, c=cursor: search(q, c), repeats=repeats)
            if TIME_COUNTING_ALL:
                cursor = search(query, exact=True)["cursor"]
                entry["exact_samples"] = measure(lambda q=query, c=cursor: search(q, c, exact=True), repeats=repeats)
        except Exception as exc:
            entry["error"] = f"{exc.__class__.__name__}: {exc}"[:300]
        results.append(entry)
    return results


TIME_COUNTING_ALL = True  # --no-exact: the first pages only (at a million traces counting all takes minutes)
ROUND_TRIPS = 20


def time_floors(*, database: str, case, bare, repeats: int) -> dict:
    """What stops a first page, measured in the same run as the searches: one round trip to the database
    (``SELECT 1``); per query, the hits table's fill alone (planner.fill_hits as a search runs it, then
    undone); for the word queries, the first 50 ids in id order from Custodia's own word index, the bare
    engine's first 50 hits (no rank, no count), and the bare engine's sample of count limit + 1 hits."""
    from django.conf import settings
    from django.db import connection, transaction

    from search.backends.sql import SqlSearchBackend
    from search.backends.sql.planner import HitsTable, fill_hits
    from search.backends.sql.schema import FTS_TABLE
    from search.query import parse_query

    backend = SqlSearchBackend()
    bound = settings.CUSTODIA_SEARCH_COUNT_LIMIT

    def fill(query: str) -> None:
        node = parse_query(query) if query else None
        with connection.cursor() as cursor:
            hits = HitsTable(cursor, sort=("id",), date_property=None)
            if connection.vendor == "postgresql":
                with transaction.atomic():  # as the search's budget does; the rollback removes the table
                    fill_hits(hits, case_id=case.pk, node=node, sort=("id",), bound=bound,
                              matching=lambda: backend.matching(case_id=case.pk, node=node))  # fmt: skip
                    transaction.set_rollback(True)
                return
            try:
                fill_hits(hits, case_id=case.pk, node=node, sort=("id",), bound=bound,
                          matching=lambda: backend.matching(case_id=case.pk, node=node))  # fmt: skip
            finally:
                hits.drop(missing_ok=True)

    def word_index_page(expression: str) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT id FROM search_trace WHERE case_id = %s AND search_vector @@ to_tsquery('simple', %s) "
                    "ORDER BY id LIMIT 50",
                    [case.pk, expression],
                )
            else:
                cursor.execute(
                    f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s ORDER BY rowid LIMIT 50",  # noqa: S608
                    [expression],
                )
            cursor.fetchall()

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    sample_size = settings.CUSTODIA_SEARCH_COUNT_LIMIT + 1
    floors: dict = {"round_trip": timed(round_trip, ROUND_TRIPS), "queries": [], "sample_size": sample_size}
    for label, query, fts5, tsquery in [*QUERIES, *EXTRA_QUERIES]:
        entry: dict = {"label": label, "query": query, "fill": [], "word_index": [], "bare_first": [],
                       "bare_sample": [], "error": None}  # fmt: skip
        try:
            entry["fill"] = measure(lambda q=query: fill(q), repeats=repeats)
        except Exception as exc:  # reported, never hidden
            entry["error"] = f"{exc.__class__.__name__}: {exc}"[:300]
        expression = fts5 if database == "sqlite" else tsquery
        if expression is not None:
            entry["word_index"] = measure(lambda e=expression: word_index_page(e), repeats=repeats)
            entry["bare_first"] = measure(lambda e=expression: bare.first_page(e), repeats=repeats)
            # The sample a first page past the count limit counts and facets: what the bare engine alone needs
            # to find it is the floor of that design.
            entry["bare_sample"] = measure(lambda e=expression: bare.sample(e, sample_size), repeats=repeats)
        floors["queries"].append(entry)
    log(f"{database}: floors timed")
    return floors


def print_floors(results: dict[str, dict]) -> None:
    databases = [name for name in ("sqlite", "postgres") if name in results and results[name].get("floors")]
    if not databases:
        return
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    print()
    print("Floors, measured in the same run (p50 / p95 ms): the first page with facets beside its hits table's fill")
    print("alone, the first 50 ids of a word from Custodia's word index in id order, the bare engine's first 50 hits")
    print("(no rank, no count), and the bare engine's sample of as many hits as a first page past the count limit")
    print("counts and facets; and one round trip to the database:")
    print()
    header = ["query"]
    for name in databases:
        size = results[name]["floors"].get("sample_size", 0)
        header += [f"{titles[name]} first page", "fill alone", "word index, 50 ids", "bare, 50 hits",
                   f"bare, sample of {size:,}"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (5 * len(databases)))
    for index, (label, query, _, _) in enumerate([*QUERIES, *EXTRA_QUERIES]):
        row = [f"`{query}`" if query else f"({label})"]
        for name in databases:
            floor = results[name]["floors"]["queries"][index]
            page = results[name]["queries"][index]
            fill = "error" if floor["error"] else timing(floor["fill"], 0)
            row += [timing(page["samples"], 0), fill, timing(floor["word_index"], 0), timing(floor["bare_first"], 0),
                    timing(floor.get("bare_sample", []), 0)]  # fmt: skip
        print("| " + " | ".join(row) + " |")
    row = ["one round trip (`SELECT 1`)"]
    for name in databases:
        row += [timing(results[name]["floors"]["round_trip"], 0), "", "", "", ""]
    print("| " + " | ".join(row) + " |")


# ---------------------------------------------------------------------------------------------- reporting


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def timing(samples: list[float], repeats: int) -> str:
    if not samples:
        return "-"
    text = f"{ms(percentile(samples, 0.5))} / {ms(percentile(samples, 0.95))}"
    return text + (f" (n={len(samples)})" if len(samples) < repeats else "")


def cells(entry: dict | None) -> list[str]:
    """Custodia (counting to the limit), Custodia counting all, the bare engine, and the ratio of the two
    that do the same work (every hit counted)."""
    if entry is None:
        return ["", "", "", ""]
    repeats = entry.get("repeats", 0)
    if entry["error"]:
        custodia = counting_all = "error"
    else:
        custodia = timing(entry["samples"], repeats)
        counting_all = timing(entry.get("exact_samples", []), repeats)
    bare, ratio = "-", "-"
    if entry["bare_samples"]:
        bare = timing(entry["bare_samples"], repeats)
        if entry.get("exact_samples"):
            times = percentile(entry["exact_samples"], 0.5) / percentile(entry["bare_samples"], 0.5)
            ratio = f"{times:,.0f} ×" if times >= 10 else f"{times:.1f} ×"  # noqa: RUF001
    return [custodia, counting_all, bare, ratio]


def matches(entries: list[dict | None]) -> str:
    found = []
    for entry in entries:
        if entry is None or entry["total"] is None:
            continue
        text = f"{entry.get('exact_total', entry['total']) or entry['total']:,}"
        if entry.get("bare_total") is not None:
            text += f" ({entry['bare_total']:,})"
        found.append(text)
    unique = list(dict.fromkeys(found))
    return " / ".join(unique) if unique else "-"


def print_indexing(results: dict[str, dict]) -> None:
    """The indexing rates: Custodia's, the bare word engine's and the floors', each as a ratio to the bare
    engine's (the goal's yardstick), all measured in the same loop."""
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    for name in [name for name in ("sqlite", "postgres") if name in results]:
        result = results[name]
        rate = result["traces"] / result["custodia_seconds"]
        bare_rate = result["generated"] / result["bare_seconds"]
        version = (
            f"SQLite {result['sqlite_version']}"
            if name == "sqlite"
            else f"PostgreSQL {result['server'] // 10000}.{result['server'] % 10000}"
        )
        first = result.get("first_searchable")
        print(
            f"indexing, {titles[name]} ({version}): Custodia {result['traces']:,} traces in "
            f"{result['custodia_seconds']:,.1f} s = {rate:,.0f} traces/s (Publisher.add/flush, all indexes and "
            f"triggers); bare {result['bare_name']} {bare_rate:,.0f} rows/s; ratio {rate / bare_rate:.2f}; "
            + (f"first trace searchable after {first * 1000:,.0f} ms; " if first is not None else "")
            + f"{result['tags']:,} tags; generating the rows took {result['generate_seconds']:,.1f} s "
            f"(not counted); code {result.get('code', '?')}"
        )
        print()
        cpu = result.get("cpu_seconds", {})
        print(
            f"| {titles[name]}, {result['generated']:,} traces | s | traces/s | × bare "  # noqa: RUF001
            "| CPU s (client + server) | traces per CPU s | × bare (CPU) |"  # noqa: RUF001
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows = [
            (
                "**Custodia** (Publisher.add/flush: rows, indexes, number index, words)",
                result["custodia_seconds"],
                cpu.get("custodia"),
            ),
            *((FLOOR_LABELS[key], seconds, cpu.get(key)) for key, seconds in result.get("floor_seconds", {}).items()),
            (f"bare {result['bare_name']} (words only)", result["bare_seconds"], cpu.get("bare")),
        ]
        bare_cpu_rate = result["generated"] / cpu["bare"] if cpu.get("bare") else None
        for label, seconds, cpu_seconds in rows:
            rate = result["generated"] / seconds
            cells = [label, f"{seconds:,.1f}", f"{rate:,.0f}", f"{rate / bare_rate:.2f}"]
            if cpu_seconds and bare_cpu_rate:
                cpu_rate = result["generated"] / cpu_seconds
                cells += [f"{cpu_seconds:,.1f}", f"{cpu_rate:,.0f}", f"{cpu_rate / bare_cpu_rate:.2f}"]
            else:
                cells += ["-", "-", "-"]
            print("| " + " | ".join(cells) + " |")
        print()


def print_indexing_goals(results: dict[str, dict]) -> None:
    """Issue #21's indexing goal against the bare engine, and how far the rows alone (the floor with every
    index of the trace table) already are from it."""
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    print("Indexing goals (issue #21):")
    for name in [name for name in ("sqlite", "postgres") if name in results]:
        result = results[name]
        bare_rate = result["generated"] / result["bare_seconds"]
        ratio = result["traces"] / result["custodia_seconds"] / bare_rate
        floor = result.get("floor_seconds", {}).get("indexed")
        print(
            f"- {titles[name]}: {ratio:.2f} × the bare engine (goal ≥ {GOAL_BARE_RATIO[name]}): "  # noqa: RUF001
            f"{'met' if ratio >= GOAL_BARE_RATIO[name] else 'not met'}"
            + (
                f"; the trace rows alone with their indexes, no words: {result['generated'] / floor / bare_rate:.2f} ×"  # noqa: RUF001
                if floor
                else ""
            )
        )


def print_report(results: dict[str, dict]) -> None:
    databases = [name for name in ("sqlite", "postgres") if name in results]
    limit = results[databases[0]].get("count_limit", 0)
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    print()
    header = ["query", "matches (bare)"]
    for name in databases:
        header += [
            f"{titles[name]} Custodia p50 / p95 ms",
            f"{titles[name]} counting all p50 / p95 ms",
            f"{titles[name]} bare p50 / p95 ms",
            "ratio",
        ]
    print("| " + " | ".join(header) + " |")
    print("|---|---:|" + "---:|" * (4 * len(databases)))
    count = len(results[databases[0]]["queries"])
    for index in range(count):
        entries = [results[name]["queries"][index] for name in databases]
        first = entries[0]
        label = f"`{first['query']}`" if first["query"] else "(empty)"
        label = f"{first['label']}: {label}" if first["label"] == "second page" else f"{label} — {first['label']}"
        row = [label, matches(entries) if first["label"] != "second page" else "-"]
        for entry in entries:
            row += cells(entry)
        print("| " + " | ".join(row) + " |")
    row = ["**all 20 queries (pooled samples)**", ""]
    overall = {}
    for name in databases:
        queries = results[name]["queries"][: len(QUERIES)]
        samples = [s for entry in queries for s in entry["samples"]]
        counting_all = [s for entry in queries for s in entry.get("exact_samples", [])]
        bare = [s for entry in queries for s in entry["bare_samples"]]
        overall[name] = samples
        row += [
            f"**{ms(percentile(samples, 0.5))} / {ms(percentile(samples, 0.95))}**" if samples else "-",
            f"{ms(percentile(counting_all, 0.5))} / {ms(percentile(counting_all, 0.95))}" if counting_all else "-",
            f"{ms(percentile(bare, 0.5))} / {ms(percentile(bare, 0.95))} (8 queries)" if bare else "-",
            "",
        ]
    print("| " + " | ".join(row) + " |")
    print()
    print("p50 / p95 in milliseconds; Custodia = search.selectors.traces_search with the default facets, first page")
    print("of 50, as the search page and the API answer by default: hits counted up to CUSTODIA_SEARCH_COUNT_LIMIT")
    print(f'({limit:,}), past it "more than" and facets over the first {limit:,} hits; counting all = the same')
    print('search with exact=True (every hit counted and faceted, "Count all"); bare = first page by rank + count,')
    print("no facets; ratio = counting all p50 ÷ bare p50 (both count every hit); matches = Custodia's exact")
    print("total (the bare engine's count in brackets: it matches whole words, so the two may differ); (n=…): fewer")
    print(f"timed runs than asked, as they would have taken over {QUERY_BUDGET_SECONDS:.0f} s; a query whose warm-up")
    print("took longer than that is timed by its warm-up run alone (n=1).")
    errors = [(name, e) for name in databases for e in results[name]["queries"] if e["error"]]
    for name, entry in errors:
        print(f"error on {titles[name]}, `{entry['query']}`: {entry['error']}")
    print()
    print("Goals (issues #5 and #21):")
    for name in databases:
        samples = overall[name]
        p95 = percentile(samples, 0.95) * 1000 if samples else float("nan")
        queries = results[name]["queries"][: len(QUERIES)]
        fast = [e for e in queries if e["samples"] and percentile(e["samples"], 0.95) * 1000 < GOAL_P95_MS]
        failed = [e for e in queries if e["error"]]
        met = p95 < GOAL_P95_MS and not failed
        rate = results[name]["traces"] / results[name]["custodia_seconds"]
        ratio = rate / (results[name]["generated"] / results[name]["bare_seconds"])
        print(
            f"- {titles[name]}: p95 over the 20 queries {p95:,.0f} ms (goal < {GOAL_P95_MS:.0f} ms): "
            f"{'met' if met else 'not met'}; {len(fast)} of {len(QUERIES)} queries under {GOAL_P95_MS:.0f} ms at p95"
            + (f", {len(failed)} failed" if failed else "")
            + f"; indexing {rate:,.0f} traces/s (goal ≥ {GOAL_TRACES_PER_SECOND:,}): "
            f"{'met' if rate >= GOAL_TRACES_PER_SECOND else 'not met'}"
            + f"; indexing {ratio:.2f} × the bare engine (goal ≥ {GOAL_BARE_RATIO[name]}): "  # noqa: RUF001
            f"{'met' if ratio >= GOAL_BARE_RATIO[name] else 'not met'}"
        )
    print()
    # The indexing rates and their floors after the query table (tests/test_bench_search.py reads it first).
    print_indexing(results)


@contextlib.contextmanager
def kept_postgres_server(datadir: Path, *, reuse: bool):
    """A PostgreSQL server on loopback whose data folder stays (``--keep-db`` makes it, ``--reuse-db`` starts
    it again), configured as tests/servers.py's throw-away one (fsync off), stopped cleanly at the end."""
    from tests.servers import POSTGRES_BIN_DIRS, free_port

    bindir = POSTGRES_BIN_DIRS[0]
    # initdb refuses to run as root: then the server runs as the postgres system user (as in tests/servers.py).
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    datadir = datadir.resolve()
    if reuse and not (datadir / "PG_VERSION").exists():
        raise SystemExit(f"{datadir} holds no PostgreSQL data folder: make one with --keep-db")
    if not reuse:
        if datadir.exists() and any(datadir.iterdir()):
            raise SystemExit(f"{datadir} is not empty: time it with --reuse-db, or remove it")
        datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(datadir, 0o700)
        if prefix:
            shutil.chown(datadir, "postgres", "postgres")
        subprocess.run(  # nosec B603  # a fixed command line of the installed PostgreSQL binaries
            [*prefix, str(bindir / "initdb"), "-D", str(datadir), "-U", "custodia", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True,
            capture_output=True,
        )  # fmt: skip
    socket_dir = Path(tempfile.mkdtemp(prefix="custodia-bench-pg-"))
    os.chmod(socket_dir, 0o777)  # noqa: S103  # nosec B103  # the socket folder of a server run as the postgres user
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} -c fsync=off -c full_page_writes=off"
    control = [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir)]
    subprocess.run(  # nosec B603  # as above
        [*control, "-o", options, "-l", str(socket_dir / "log"), "-w", "start"], check=True, capture_output=True
    )
    try:
        yield f"postgres://custodia@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*control, "-m", "fast", "-w", "stop"], capture_output=True)  # nosec B603  # as above
        shutil.rmtree(socket_dir, ignore_errors=True)


def run_worker(*, database: str, arguments, env: dict) -> dict:
    output = Path(tempfile.mkstemp(prefix=f"custodia-bench-search-{database}-", suffix=".json")[1])
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        database,
        "--output",
        str(output),
        "--traces",
        str(arguments.traces),
        "--seed",
        str(arguments.seed),
        "--repeats",
        str(arguments.repeats),
        *(["--index-only"] if arguments.index_only else []),
    ]
    if arguments.no_exact:
        command.append("--no-exact")
    if arguments.keep_db or arguments.reuse_db:
        command += ["--keep-db" if arguments.keep_db else "--reuse-db", arguments.keep_db or arguments.reuse_db]
    try:
        subprocess.run(command, env=env, check=True, cwd=PROJECT_ROOT)
        return json.loads(output.read_text())
    finally:
        output.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=None, help="traces to index (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 traces")
    parser.add_argument("--smoke", action="store_true", help="2,000 traces, one timed run: it still runs (seconds)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each query after one warm-up")
    parser.add_argument(
        "--index-only", action="store_true", help="index and report the indexing rates and floors, no queries"
    )
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--keep-db",
        metavar="DIR",
        help="index into DIR (a SQLite folder and a PostgreSQL data folder in it) and keep it, to time again",
    )
    kept.add_argument("--reuse-db", metavar="DIR", help="index nothing: time the queries on what --keep-db DIR left")
    parser.add_argument(
        "--no-exact", action="store_true", help="time the first pages only, not the same searches counting all"
    )
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.traces = arguments.traces or SMOKE_TRACES
        arguments.repeats = 1
    if arguments.traces is None:
        arguments.traces = 100_000 if arguments.quick else 1_000_000

    if arguments.worker:
        global TIME_COUNTING_ALL
        TIME_COUNTING_ALL = not arguments.no_exact
        kept = arguments.keep_db or arguments.reuse_db
        result = run_database(
            database=arguments.worker,
            traces=arguments.traces,
            seed=arguments.seed,
            repeats=arguments.repeats,
            index_only=arguments.index_only,
            keep_dir=Path(kept) if kept else None,
            reuse=bool(arguments.reuse_db),
        )
        Path(arguments.output).write_text(json.dumps(result))
        return

    from bench.machine import machine_description

    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python bench/{Path(__file__).name} "
        + " ".join(sys.argv[1:])
    )
    print(f"{arguments.traces:,} synthetic traces in one case (seed {arguments.seed})", flush=True)
    results: dict[str, dict] = {}
    if arguments.only in (None, "sqlite"):
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        results["sqlite"] = run_worker(database="sqlite", arguments=arguments, env=env)
    if arguments.only in (None, "postgres"):
        kept = arguments.keep_db or arguments.reuse_db
        if os.environ.get("DATABASE_URL"):
            results["postgres"] = run_worker(database="postgres", arguments=arguments, env=dict(os.environ))
        elif kept:
            with kept_postgres_server(Path(kept) / "postgres-server", reuse=bool(arguments.reuse_db)) as url:
                results["postgres"] = run_worker(
                    database="postgres", arguments=arguments, env={**os.environ, "DATABASE_URL": url}
                )
        else:
            from tests.servers import postgres_server

            with postgres_server() as server:
                env = {**os.environ, "DATABASE_URL": server.url}
                results["postgres"] = run_worker(database="postgres", arguments=arguments, env=env)
    print()
    if arguments.index_only:
        print_indexing(results)
        print_indexing_goals(results)
    else:
        print_report(results)
        print_floors(results)


if __name__ == "__main__":
    main()
