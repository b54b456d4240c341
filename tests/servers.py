"""Real servers for the tests: PostgreSQL, Redis and Azurite, each on loopback, its own port and temp folder.

Each helper starts the server, waits until it answers, yields what a client needs, and stops it by pid.
Nothing here is a mock: the suite talks to the same programs production does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, published in Microsoft's documentation; not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ServerUnavailable(RuntimeError):
    """The program is not installed or did not start; tests that need it skip with this reason."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"process exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServerUnavailable(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root; when we are root, run the server as the postgres system user.
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if not runuser:
        raise ServerUnavailable("running as root without runuser: cannot start PostgreSQL as another user")
    return [runuser, "-u", "postgres", "--"]


@dataclass(frozen=True)
class PostgresServer:
    port: int
    socket_dir: str
    url: str


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    if not POSTGRES_BIN_DIRS:
        raise ServerUnavailable("PostgreSQL server binaries not found under /usr/lib/postgresql (apt: postgresql)")
    bindir = POSTGRES_BIN_DIRS[0]
    prefix = _as_postgres_user()
    workdir = tempfile.mkdtemp(prefix="custodia-pg-")
    os.chmod(workdir, 0o777)  # noqa: S103 - temp folder of a throwaway test server, run as another user
    datadir = os.path.join(workdir, "data")
    port = free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", datadir, "-U", "custodia", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            datadir,
            "-o",
            options,
            "-l",
            os.path.join(workdir, "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer(port=port, socket_dir=workdir, url=f"postgres://custodia@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", datadir, "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    port: int
    url: str


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if not binary:
        raise ServerUnavailable("redis-server is not installed (apt: redis-server)")
    workdir = tempfile.mkdtemp(prefix="custodia-redis-")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        yield RedisServer(port=port, url=f"redis://127.0.0.1:{port}/0")
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class AzuriteServer:
    port: int
    account_url: str
    connection_string: str


def azurite_binary() -> Path:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise ServerUnavailable("Azurite is not installed: run `npm ci` (make test does)")
    return binary


@contextlib.contextmanager
def azurite_server() -> Iterator[AzuriteServer]:
    binary = azurite_binary()
    workdir = tempfile.mkdtemp(prefix="custodia-azurite-")
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            workdir,
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    account_url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    try:
        wait_for_port(port, process=process, timeout=60)
        yield AzuriteServer(
            port=port,
            account_url=account_url,
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={account_url};"
            ),
        )
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
