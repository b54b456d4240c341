"""Benchmark of download links. One command, prints a table (not a timed test):

    .venv/bin/python bench/links.py [--size-mib 1024] [--repeat 3] [--keep] [--smoke]

1. Writes a file of ``--size-mib`` MiB (half random, half zeros) into a temporary data folder, imports and
   seals it through the real service (``evidence_import``) with the test settings, and issues a link.
2. Serves it with a real server on loopback — gunicorn (1 sync worker) and ``manage.py runserver
   --noreload`` — and downloads ``/l/<token>`` with curl into /dev/null, best of ``--repeat``; the first
   gunicorn download is piped through ``sha256sum`` and compared with the sealed hash.
3. Reads the same plain file with ``cat FILE > /dev/null`` (from the page cache: it was just written), and
   prints MB/s and the ratio. The link decrypts, decompresses and re-hashes every 1 MiB chunk on the way.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def write_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        written = 0
        while written < size:
            block = min(16 * MIB, size - written)
            out.write(os.urandom(block) if written < size // 2 else bytes(block))
            written += block


def best_seconds(command: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, shell=True, check=True)  # noqa: S602 - fixed commands of this benchmark
        best = min(best, time.perf_counter() - started)
    return best


def curl_seconds(url: str, repeat: int, expected_size: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        result = subprocess.run(
            ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
            check=True,
            capture_output=True,
            text=True,
        )
        size, seconds = result.stdout.split()
        if int(float(size)) != expected_size:
            raise SystemExit(f"curl got {size} bytes, expected {expected_size}")
        best = min(best, float(seconds))
    return best


def sha256_of_download(url: str) -> str:
    digest = hashlib.sha256()
    with subprocess.Popen(["curl", "-sS", "-f", url], stdout=subprocess.PIPE) as curl:
        for block in iter(lambda: curl.stdout.read(4 * MIB), b""):
            digest.update(block)
    if curl.returncode:
        raise SystemExit(f"curl failed with {curl.returncode}")
    return digest.hexdigest()


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", url], capture_output=True)
        if probe.returncode == 0:
            return
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer at {url}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--smoke", action="store_true", help="4 MiB, one download each (seconds; make bench-smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.size_mib, args.repeat = 4, 1
    size = args.size_mib * MIB

    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-links-"))
    source_dir = workdir / "import"
    source_dir.mkdir()
    source = source_dir / "disk.raw"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "custodia.settings.test",
        "CUSTODIA_DATA_DIR": str(workdir / "data"),
        "CUSTODIA_IMPORT_ROOTS": str(source_dir),
        "CUSTODIA_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(REPO_ROOT))
    servers: list[subprocess.Popen] = []
    try:
        print(f"writing {args.size_mib} MiB to {source} …", flush=True)
        write_file(source, size)

        import django

        django.setup()
        from django.core.management import call_command

        from cases.models import Case, User
        from evidence.services.intake import evidence_import
        from evidence.services.links import link_issue

        call_command("migrate", verbosity=0)
        call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
        custodian = User.objects.get(username="custodian")
        case = Case.objects.get(reference="DEMO-2026-001")
        print("importing and sealing …", flush=True)
        started = time.perf_counter()
        evidence = evidence_import(actor=custodian, case=case, paths=[str(source)], label="bench image")
        evidence.refresh_from_db()
        seal_seconds = time.perf_counter() - started
        if not evidence.is_sealed:
            raise SystemExit(f"the evidence is {evidence.state}: {evidence.failure_reason}")
        issued = link_issue(evidence=evidence, actor=custodian, recipient="prosecutor", reason="benchmark")
        from django.db import connections

        connections.close_all()

        rows = []
        cat = best_seconds(f"cat {source} > /dev/null", args.repeat)
        rows.append(("cat FILE > /dev/null", cat))
        commands = {
            "link via gunicorn (1 sync worker), curl": [
                str(REPO_ROOT / ".venv/bin/gunicorn"),
                "custodia.wsgi:application",
                "--workers",
                "1",
                "--timeout",
                "600",
                "--log-level",
                "warning",
                "--bind",
            ],
            "link via manage.py runserver --noreload, curl": [
                sys.executable,
                str(REPO_ROOT / "manage.py"),
                "runserver",
                "--noreload",
            ],
        }
        checked = False
        for name, command in commands.items():
            port = free_port()
            process = subprocess.Popen(
                [*command, f"127.0.0.1:{port}"],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers.append(process)
            url = f"http://127.0.0.1:{port}/l/{issued.token}"
            wait_for(url + "/hashes.txt", process)
            if not checked:
                digest = sha256_of_download(url)
                if digest != evidence.sha256:
                    raise SystemExit(f"downloaded SHA-256 {digest} differs from the sealed {evidence.sha256}")
                checked = True
            rows.append((name, curl_seconds(url, args.repeat, size)))
            process.terminate()
            process.wait(timeout=30)

        print()
        print(f"{args.size_mib} MiB image (half random, half zeros), sealed in {seal_seconds:.1f} s")
        print(f"best of {args.repeat} runs each")
        print(f"download SHA-256 checked: {'yes' if checked else 'no'} ({evidence.sha256[:16]}…)")
        print()
        print(f"| {'read':<48} | {'seconds':>8} | {'MB/s':>8} | {'vs cat':>7} |")
        print(f"|{'-' * 50}|{'-' * 9}:|{'-' * 9}:|{'-' * 8}:|")
        for name, seconds in rows:
            print(f"| {name:<48} | {seconds:8.2f} | {size / seconds / 1e6:8.0f} | {cat / seconds:7.2f} |")
        print()
        print(f"{os.cpu_count()} CPUs; MB = 10^6 bytes; 'vs cat' is the link's throughput as a fraction of cat's.")
    finally:
        for process in servers:
            if process.poll() is None:
                process.kill()
                process.wait()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
