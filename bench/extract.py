"""Benchmark of storage-media extraction against The Sleuth Kit. One command, prints a table:

    .venv/bin/python bench/extract.py [--files 30000] [--size-mib 500] [--quick | --smoke] [--profile]

1. Generates (seeded, so always the same files) an ext4 image (``mkfs.ext4 -d``) and an NTFS image
   (``mkntfs`` + an ``ntfs-3g`` FUSE mount, or ``ntfscp`` of a flat subset when FUSE is unavailable) of
   ``--size-mib`` holding about ``--files`` files of mixed sizes and types: text, random binary,
   compressible data, a few files with the magic bytes of common formats, a few empty ones. Images are
   cached under ``var/bench/extract/<parameters>/``, so a re-run skips generation.
2. Seals each image with ``seal_stream`` into a ``LocalWormStore`` in a temporary folder (random key).
3. Times, one after the other (never in parallel: the machine is shared):
   - the Sleuth Kit reference pipeline on the plain image: ``fls -r -m /`` to a body file, then
     ``tsk_recover -e`` to a folder, then ``find | xargs sha256sum`` over every recovered file;
   - libmagic alone on the first 8 KiB of each recovered file (read beforehand, untimed): what typing
     every file with libmagic costs by itself, the floor under any pipeline that does;
   - Custodia: ``walk_image`` over ``open_container(…)`` of the sealed image, with MD5, SHA-1, SHA-256,
     entropy and MIME type of every stream; files, bytes and the time to the first trace yielded;
   - Custodia split over 2 worker processes (``WalkOptions(shard=…)``: top-level folders dealt out by
     ordinal), next to 1;
   - "commit to DB": traces stored through ``search.services.traces_upsert`` when that exists, else n/a.
4. ``--profile`` also runs cProfile on the ext4 walk and prints the 30 most expensive functions.

Files/s counts regular files with content read (TSK: files ``tsk_recover`` wrote; Custodia: file traces
with a hashed ``raw`` stream); MB/s counts their bytes (1 MB = 10^6 bytes).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.util
import io
import json
import multiprocessing
import os
import pstats
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.machine import machine_description  # noqa: E402
from evidence.container import open_container, seal_stream  # noqa: E402
from evidence.storage.local import LocalWormStore  # noqa: E402
from search.extraction.traces import TraceRecord  # noqa: E402
from search.extraction.walker import WalkOptions, walk_image  # noqa: E402

MIB = 1 << 20
CACHE_ROOT = REPO_ROOT / "var" / "bench" / "extract"
GENERATOR_VERSION = 1  # bump when the generated tree changes, so cached images are rebuilt
FIXED_UUID = "c0570d1a-0000-4000-8000-000000000004"
FIXED_EPOCH = 1_700_000_000
# Share of the image size given to file contents; the rest is slack, inodes/MFT records and the journal.
CONTENT_SHARE = 0.62
CONTAINER_CACHE_CHUNKS = 64
WORDS = [
    "evidence",
    "custody",
    "seizure",
    "warrant",
    "forensic",
    "examiner",
    "exhibit",
    "hash",
    "chain",
    "sealed",
    "volume",
    "partition",
    "inode",
    "cluster",
    "sector",
    "journal",
    "deleted",
    "recovered",
    "timeline",
    "artefact",
    "suspect",
    "witness",
    "report",
    "court",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "be",
    "are",
    "was",
    "were",
    "it",
    "or",
    "an",
    "not",
]


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# --- generating the file tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusParameters:
    file_count: int
    image_size_mib: int
    seed: int

    @property
    def cache_key(self) -> str:
        return f"v{GENERATOR_VERSION}-files{self.file_count}-size{self.image_size_mib}mib-seed{self.seed}"


@dataclass
class GeneratedTree:
    file_count: int = 0
    folder_count: int = 0
    content_bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def text_pool(*, randomiser: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(randomiser.choice(WORDS) for _ in range(randomiser.randint(4, 16))) + ".\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode("ascii")[:size]


def file_sizes(*, randomiser: random.Random, file_count: int, content_budget: int) -> list[int]:
    """Mostly small files (log-uniform 64 B … 64 KiB), 1 % empty, 0.1 % large ones taking the rest."""
    large_count = max(1, file_count // 1000)
    sizes = []
    for _ in range(file_count - large_count):
        sizes.append(0 if randomiser.random() < 0.01 else int(64 * (1024 ** randomiser.random())))
    small_total = sum(sizes)
    if small_total > content_budget * 0.85:  # small images (--quick): scale the small files down
        scale = content_budget * 0.85 / small_total
        sizes = [int(size * scale) for size in sizes]
        small_total = sum(sizes)
    large_size = max(64 * 1024, (content_budget - small_total) // large_count)
    sizes.extend(large_size + randomiser.randint(0, 4095) for _ in range(large_count))
    randomiser.shuffle(sizes)
    return sizes


MAGIC_HEADERS = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00",
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
}


def file_content(*, randomiser: random.Random, size: int, pool: bytes) -> tuple[str, str, bytes]:
    """(kind, extension, bytes) of one generated file."""
    draw = randomiser.random()
    if draw < 0.45:
        start = randomiser.randrange(0, max(1, len(pool) - size))
        data = pool[start : start + size]
        while len(data) < size:
            data += pool[: size - len(data)]
        return "text", randomiser.choice(["txt", "log", "csv", "md"]), data
    if draw < 0.70:
        return "random", randomiser.choice(["bin", "dat", "enc"]), randomiser.randbytes(size)
    if draw < 0.90:
        pattern = randomiser.randbytes(randomiser.randint(1, 64))
        data = (pattern + bytes(randomiser.randint(0, 512))) * (size // max(1, len(pattern)) + 1)
        return "compressible", randomiser.choice(["db", "img", "raw"]), data[:size]
    extension = randomiser.choice(sorted(MAGIC_HEADERS))
    header = MAGIC_HEADERS[extension]
    # Every fifth one lies about its type: exercises the extension-mismatch check.
    if randomiser.random() < 0.2:
        extension = "txt"
    return "typed", extension, (header + randomiser.randbytes(max(0, size - len(header))))[:size]


def generate_tree(*, parameters: CorpusParameters, target: Path) -> GeneratedTree:
    """Write the seeded file tree: ~sqrt(folders) top-level folders, each with sub-folders of files."""
    randomiser = random.Random(parameters.seed)
    content_budget = int(parameters.image_size_mib * MIB * CONTENT_SHARE)
    sizes = file_sizes(randomiser=randomiser, file_count=parameters.file_count, content_budget=content_budget)
    pool = text_pool(randomiser=randomiser, size=4 * MIB)
    folder_count = max(1, parameters.file_count // 100)
    top_level_count = max(1, int(folder_count**0.5))
    folders = [target / f"dir{index % top_level_count:03d}" / f"sub{index:04d}" for index in range(folder_count)]
    tree = GeneratedTree(folder_count=folder_count + top_level_count)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for index, size in enumerate(sizes):
        kind, extension, data = file_content(randomiser=randomiser, size=size, pool=pool)
        folder = folders[randomiser.randrange(folder_count)]
        path = folder / f"file{index:06d}.{extension}"
        path.write_bytes(data)
        os.utime(path, (FIXED_EPOCH + index, FIXED_EPOCH + index))
        tree.file_count += 1
        tree.content_bytes += len(data)
        tree.kinds[kind] = tree.kinds.get(kind, 0) + 1
    for folder in sorted({*folders, *(folder.parent for folder in folders)}, reverse=True):
        os.utime(folder, (FIXED_EPOCH, FIXED_EPOCH))
    return tree


def make_ext4_image(*, tree_folder: Path, image: Path, parameters: CorpusParameters, inode_count: int) -> None:
    environment = {**os.environ, "E2FSPROGS_FAKE_TIME": str(FIXED_EPOCH)}
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-b",
            "4096",
            "-N",
            str(inode_count),
            "-U",
            FIXED_UUID,
            "-E",
            f"hash_seed={FIXED_UUID},root_owner=0:0",
            "-L",
            "custodia-bench",
            "-d",
            str(tree_folder),
            str(image),
            f"{parameters.image_size_mib}M",
        ],
        check=True,
        env=environment,
    )


def make_ntfs_image(*, tree_folder: Path, image: Path, parameters: CorpusParameters, workdir: Path) -> str:
    """NTFS through an ntfs-3g FUSE mount; without FUSE, ntfscp of a flat subset. Returns a note."""
    with open(image, "wb") as handle:
        handle.truncate(parameters.image_size_mib * MIB)
    subprocess.run(
        ["mkntfs", "-F", "-Q", "-q", "-L", "custodia-bench", "-c", "4096", str(image)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    mount_point = workdir / "ntfs-mount"
    mount_point.mkdir()
    mounted = subprocess.run(["ntfs-3g", str(image), str(mount_point)], capture_output=True, text=True)
    if mounted.returncode == 0:
        try:
            for source in sorted(tree_folder.rglob("*")):
                relative = source.relative_to(tree_folder)
                if source.is_dir():
                    (mount_point / relative).mkdir()
                else:
                    shutil.copyfile(source, mount_point / relative)
            for source in sorted(tree_folder.rglob("*"), reverse=True):
                os.utime(mount_point / source.relative_to(tree_folder), (FIXED_EPOCH, source.stat().st_mtime))
        finally:
            subprocess.run(["umount", str(mount_point)], check=True)
        return "ntfs-3g FUSE mount"
    # No FUSE here: ntfscp cannot make folders, and one process per file is slow, so copy a flat subset.
    subset = sorted(path for path in tree_folder.rglob("*") if path.is_file())[:2000]
    for source in subset:
        subprocess.run(["ntfscp", "-f", str(image), str(source), source.name], check=True, capture_output=True)
    return f"ntfscp, flat subset of {len(subset)} files (ntfs-3g mount failed: {mounted.stderr.strip()[:80]})"


@dataclass
class BenchImage:
    name: str
    path: Path
    note: str


def cached_images(*, parameters: CorpusParameters) -> list[BenchImage]:
    """The ext4 and NTFS images for these parameters, generated once and kept under var/bench/extract/."""
    folder = CACHE_ROOT / parameters.cache_key
    description_path = folder / "images.json"
    if description_path.exists():
        description = json.loads(description_path.read_text())
        log(f"using cached images in {folder}")
        return [
            BenchImage(name=name, path=folder / entry["file"], note=entry["note"])
            for name, entry in description.items()
        ]
    folder.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-tree-"))
    try:
        started = time.perf_counter()
        log(f"generating {parameters.file_count} files (seed {parameters.seed})…")
        tree = generate_tree(parameters=parameters, target=workdir / "tree")
        elapsed = time.perf_counter() - started
        log(f"  {tree.file_count} files, {tree.content_bytes / MIB:.0f} MiB, {tree.kinds} in {elapsed:.0f} s")
        inode_count = tree.file_count + tree.folder_count + 1024
        log("mkfs.ext4 -d …")
        make_ext4_image(
            tree_folder=workdir / "tree",
            image=folder / "ext4.img.partial",
            parameters=parameters,
            inode_count=inode_count,
        )
        os.replace(folder / "ext4.img.partial", folder / "ext4.img")
        log("mkntfs + ntfs-3g …")
        ntfs_note = make_ntfs_image(
            tree_folder=workdir / "tree", image=folder / "ntfs.img.partial", parameters=parameters, workdir=workdir
        )
        os.replace(folder / "ntfs.img.partial", folder / "ntfs.img")
        tree_note = f"{tree.file_count} files, {tree.content_bytes / MIB:.0f} MiB of content"
        description = {
            "ext4": {"file": "ext4.img", "note": f"mkfs.ext4 -d; {tree_note}"},
            "ntfs": {"file": "ntfs.img", "note": f"mkntfs + {ntfs_note}; {tree_note}"},
        }
        description_path.write_text(json.dumps(description, indent=2))
        log(f"images ready in {time.perf_counter() - started:.0f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [
        BenchImage(name=name, path=folder / entry["file"], note=entry["note"]) for name, entry in description.items()
    ]


# --- sealing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedImage:
    name: str
    evidence_id: uuid.UUID
    data_key: bytes
    store_root: Path
    seconds: float


def seal_image(*, image: BenchImage, store_root: Path) -> SealedImage:
    evidence_id = uuid.uuid4()
    data_key = secrets.token_bytes(32)
    store = LocalWormStore(root=store_root)
    started = time.perf_counter()
    with open(image.path, "rb") as source:
        seal_stream(
            evidence_id=evidence_id,
            data_key=data_key,
            store=store,
            source=source,
            facts={"file_name": image.path.name, "bench": "extract"},
        )
    return SealedImage(
        name=image.name,
        evidence_id=evidence_id,
        data_key=data_key,
        store_root=store_root,
        seconds=time.perf_counter() - started,
    )


# --- the reference pipeline -----------------------------------------------------------------------------


@dataclass
class Measurement:
    image: str
    pipeline: str
    file_count: int
    file_bytes: int
    seconds: float
    first_trace_seconds: float | None = None
    trace_count: int | None = None
    stages: dict[str, float] = field(default_factory=dict)
    commit_note: str = "n/a"

    @property
    def files_per_second(self) -> float:
        return self.file_count / self.seconds if self.seconds else float("nan")

    @property
    def megabytes_per_second(self) -> float:
        return self.file_bytes / 1e6 / self.seconds if self.seconds else float("nan")


def run_sleuthkit_reference(
    *, image: BenchImage, workdir: Path, keep_recovered: bool = False
) -> tuple[Measurement, Measurement]:
    """``fls -r -m /`` + ``tsk_recover -e`` + ``sha256sum`` of every recovered file, timed end to end.

    ``keep_recovered``: leave the recovered files in ``workdir/<image>-recovered`` (the caller removes them)."""
    body_file = workdir / f"{image.name}.body"
    recovered = workdir / f"{image.name}-recovered"
    sums = workdir / f"{image.name}.sha256"
    stages: dict[str, float] = {}
    started = time.perf_counter()
    with open(body_file, "wb") as output:
        subprocess.run(["fls", "-r", "-m", "/", str(image.path)], stdout=output, check=True)
    stages["fls"] = time.perf_counter() - started
    subprocess.run(["tsk_recover", "-e", str(image.path), str(recovered)], check=True, stdout=subprocess.DEVNULL)
    stages["tsk_recover"] = time.perf_counter() - started - stages["fls"]
    hashing_started = time.perf_counter()
    with open(sums, "wb") as output:
        finder = subprocess.Popen(["find", str(recovered), "-type", "f", "-print0"], stdout=subprocess.PIPE)
        subprocess.run(["xargs", "-0", "-r", "sha256sum"], stdin=finder.stdout, stdout=output, check=True)
        finder.stdout.close()
        if finder.wait() != 0:
            raise subprocess.CalledProcessError(finder.returncode, "find")
    stages["sha256sum"] = time.perf_counter() - hashing_started
    seconds = time.perf_counter() - started
    files = [path for path in recovered.rglob("*") if path.is_file()]
    file_count = len(files)
    file_bytes = sum(path.stat().st_size for path in files)
    magic_only = run_libmagic_alone(image=image, files=files)
    if not keep_recovered:
        shutil.rmtree(recovered, ignore_errors=True)
    reference = Measurement(
        image=image.name,
        pipeline="Sleuth Kit: fls + tsk_recover + sha256sum",
        file_count=file_count,
        file_bytes=file_bytes,
        seconds=seconds,
        stages=stages,
    )
    return reference, magic_only


def run_libmagic_alone(*, image: BenchImage, files: list[Path]) -> Measurement:
    """libmagic's MIME type of every recovered file's first 8 KiB (as the walker sniffs it), nothing else:
    the least any pipeline that types each file with libmagic spends, on one core.

    The heads are read first and not timed; distinct heads only, as the walker asks once per head.
    """
    import magic

    from search.extraction.walker import WalkOptions

    head_size = WalkOptions().mime_sniff_bytes
    heads = set()
    for path in files:
        with open(path, "rb") as handle:
            heads.add(handle.read(head_size))
    cookie = magic.Magic(mime=True)
    cookie.from_buffer(b"warm-up")  # loading the rule database is not per file
    started = time.perf_counter()
    for head in heads:
        cookie.from_buffer(head)
    return Measurement(
        image=image.name,
        pipeline=f"libmagic alone: MIME type of {len(heads):,} distinct 8 KiB heads (a floor, one core)",
        file_count=len(files),
        file_bytes=sum(path.stat().st_size for path in files),
        seconds=time.perf_counter() - started,
    )


# --- Custodia ---------------------------------------------------------------------------------------------


@dataclass
class WalkTally:
    trace_count: int = 0
    file_count: int = 0
    file_bytes: int = 0
    first_trace_seconds: float | None = None
    seconds: float = 0.0
    commit_note: str = "n/a"


def traces_upsert_hook() -> Callable[[list[TraceRecord]], None] | None:
    """The "commit to DB" step: ``search.services.traces_upsert`` once it exists (another engineer's work).

    Until then the column says n/a: this benchmark measures extraction only.
    """
    specification = importlib.util.find_spec("search.services")
    if specification is None or "def traces_upsert" not in Path(specification.origin).read_text():
        return None
    try:
        if not os.environ.get("DJANGO_SETTINGS_MODULE"):
            os.environ["DJANGO_SETTINGS_MODULE"] = "custodia.settings.dev"
        import django

        django.setup()
        services = importlib.import_module("search.services")
    except Exception as error:  # settings or database not available here: report, do not fail the run
        log(f"search.services is not importable here ({type(error).__name__}: {error}); commit to DB is n/a")
        return None
    return getattr(services, "traces_upsert", None)


def walk_sealed(*, sealed: SealedImage, shard_index: int = 0, shard_count: int = 1, commit: bool = False) -> WalkTally:
    store = LocalWormStore(root=sealed.store_root)
    reader = open_container(
        evidence_id=sealed.evidence_id, data_key=sealed.data_key, store=store, cache_chunks=CONTAINER_CACHE_CHUNKS
    )
    options = WalkOptions(file_name=f"{sealed.name}.img")
    if shard_count > 1:
        options = WalkOptions(file_name=f"{sealed.name}.img", shard=(shard_index, shard_count))
    tally = WalkTally()
    upsert = traces_upsert_hook() if commit else None
    batch: list[TraceRecord] = []
    started = time.perf_counter()
    for trace in walk_image(file_object=reader, evidence_id=str(sealed.evidence_id), options=options):
        if tally.first_trace_seconds is None:
            tally.first_trace_seconds = time.perf_counter() - started
        tally.trace_count += 1
        raw = trace.stream("raw") if "file" in trace.types and "folder" not in trace.types else None
        if raw is not None and raw.sha256 is not None:
            tally.file_count += 1
            tally.file_bytes += raw.size
        if upsert is not None:
            batch.append(trace)
            if len(batch) >= 500:
                upsert(batch)
                batch = []
    if upsert is not None and batch:
        upsert(batch)
    tally.seconds = time.perf_counter() - started
    if upsert is not None:
        tally.commit_note = "search.services.traces_upsert, batches of 500"
    reader.close()
    return tally


def run_custodia(*, sealed: SealedImage) -> Measurement:
    tally = walk_sealed(sealed=sealed, commit=traces_upsert_hook() is not None)
    return Measurement(
        image=sealed.name,
        pipeline="Custodia: walk_image over the sealed container, 1 worker",
        file_count=tally.file_count,
        file_bytes=tally.file_bytes,
        seconds=tally.seconds,
        first_trace_seconds=tally.first_trace_seconds,
        trace_count=tally.trace_count,
        commit_note=tally.commit_note,
    )


def _shard_worker(arguments: tuple[SealedImage, int, int]) -> WalkTally:
    sealed, shard_index, shard_count = arguments
    return walk_sealed(sealed=sealed, shard_index=shard_index, shard_count=shard_count)


def shards_supported() -> bool:
    return "shard" in WalkOptions.__dataclass_fields__


def run_custodia_workers(*, sealed: SealedImage, worker_count: int) -> Measurement | str:
    """The same walk dealt out over ``worker_count`` processes (top-level folders by ordinal)."""
    if not shards_supported():
        return "n/a: the walker cannot split a walk by subtree yet"
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    with context.Pool(worker_count) as pool:
        tallies = pool.map(_shard_worker, [(sealed, index, worker_count) for index in range(worker_count)])
    seconds = time.perf_counter() - started
    return Measurement(
        image=sealed.name,
        pipeline=f"Custodia: walk_image over the sealed container, {worker_count} worker processes",
        file_count=sum(tally.file_count for tally in tallies),
        file_bytes=sum(tally.file_bytes for tally in tallies),
        seconds=seconds,
        first_trace_seconds=min(tally.first_trace_seconds or seconds for tally in tallies),
        trace_count=sum(tally.trace_count for tally in tallies),
    )


def profile_walk(*, sealed: SealedImage) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    walk_sealed(sealed=sealed)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    print(text.getvalue())


# --- report --------------------------------------------------------------------------------------------------


def tool_versions() -> str:
    fls_version = subprocess.run(["fls", "-V"], capture_output=True, text=True).stdout.strip()
    import pytsk3

    return f"{fls_version} (CLI); pytsk3 {pytsk3.get_version()} (TSK {pytsk3.TSK_VERSION_STR})"


def print_table(*, rows: list[Measurement | tuple[str, str, str]], references: dict[str, Measurement]) -> None:
    print(
        "| image | pipeline | files | MB | seconds | files/s | MB/s | files/s ÷ reference | first trace "
        "| commit to DB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        if isinstance(row, tuple):
            image, pipeline, note = row
            print(f"| {image} | {pipeline} | | | | | | {note} | | |")
            continue
        reference = references[row.image]
        ratio = "1.00" if row is reference else f"{row.files_per_second / reference.files_per_second:.2f}"
        first = "-" if row.first_trace_seconds is None else f"{row.first_trace_seconds * 1000:.0f} ms"
        commit = "-" if row is reference else row.commit_note
        print(
            f"| {row.image} | {row.pipeline} | {row.file_count:,} | {row.file_bytes / 1e6:,.0f} | {row.seconds:.2f} "
            f"| {row.files_per_second:,.0f} | {row.megabytes_per_second:,.0f} | {ratio} | {first} | {commit} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30_000, help="files in each generated image")
    parser.add_argument("--size-mib", type=int, default=500, help="size of each generated image")
    parser.add_argument("--seed", type=int, default=4, help="seed of the generated file tree")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3,000 files in 64 MiB images")
    size.add_argument("--smoke", action="store_true", help="300 files in 16 MiB images (seconds; make bench-smoke)")
    parser.add_argument("--only", choices=["ext4", "ntfs"], default=None, help="benchmark one image only")
    parser.add_argument("--profile", action="store_true", help="also cProfile the ext4 walk")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the split walk (0: skip)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.files, arguments.size_mib = 3_000, 64
    if arguments.smoke:
        arguments.files, arguments.size_mib = 300, 16
    parameters = CorpusParameters(file_count=arguments.files, image_size_mib=arguments.size_mib, seed=arguments.seed)
    command = "bench/extract.py " + " ".join(sys.argv[1:])

    print(f"machine: {machine_description()}", flush=True)
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python {command.strip()}", flush=True)
    print(f"tools: {tool_versions()}", flush=True)
    images = cached_images(parameters=parameters)
    if arguments.only:
        images = [image for image in images if image.name == arguments.only]
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-extract-"))
    rows: list[Measurement | tuple[str, str, str]] = []
    references: dict[str, Measurement] = {}
    try:
        for image in images:
            print(f"image {image.name}: {image.path.stat().st_size / MIB:.0f} MiB, {image.note}", flush=True)
            log(f"sealing {image.name}…")
            sealed = seal_image(image=image, store_root=workdir / "store")
            log(f"  sealed in {sealed.seconds:.1f} s")
            log(f"Sleuth Kit reference on {image.name}…")
            reference, magic_only = run_sleuthkit_reference(image=image, workdir=workdir)
            stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in reference.stages.items())
            log(f"  {stages}")
            references[image.name] = reference
            rows.append(reference)
            rows.append(magic_only)
            log(f"Custodia on sealed {image.name}…")
            custodia = run_custodia(sealed=sealed)
            rows.append(custodia)
            log(f"  {custodia.trace_count} traces in {custodia.seconds:.1f} s")
            if arguments.workers > 1:
                log(f"Custodia on sealed {image.name}, {arguments.workers} workers…")
                split = run_custodia_workers(sealed=sealed, worker_count=arguments.workers)
                if isinstance(split, Measurement):
                    if split.trace_count != custodia.trace_count or split.file_count != custodia.file_count:
                        log(f"  WARNING: split walk gave {split.trace_count} traces, one walk {custodia.trace_count}")
                    rows.append(split)
                else:
                    rows.append((image.name, f"Custodia, {arguments.workers} workers", split))
            if arguments.profile and image.name == "ext4":
                profile_walk(sealed=sealed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("Extraction throughput (MB = 10^6 bytes; first trace = time from the start of the walk):")
    print()
    print_table(rows=rows, references=references)
    print()
    for reference in references.values():
        stages = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in reference.stages.items())
        print(f"reference stages on {reference.image}: {stages}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this shared machine slows every row)")


if __name__ == "__main__":
    main()
