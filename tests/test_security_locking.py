"""Issue #17, finding 2: one slow request must not lock everyone out.

A real server (the live-server thread, a file SQLite database in WAL mode) takes an upload whose client
sends 1 MiB of an 8 MiB range and then stalls. While it stalls, three other users browse a case page,
search and download an export: each answers 200 (503 with Retry-After would be allowed under true
contention; a 500 never is).
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.test import Client

from cases.services import token_issue

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1 << 20


def bearer(user) -> str:
    _, raw = token_issue(user=user, name="locking-test", scope="write")
    return f"Bearer {raw}"


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def get(base_url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


def start_stalled_upload(base_url: str, evidence_id: str, authorization: str) -> socket.socket:
    """Send the headers of an 8 MiB range and its first MiB, then nothing more until it is closed."""
    parts = urllib.parse.urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    total = 8 * MIB
    head = (
        f"PUT /api/evidence/{evidence_id}/content HTTP/1.1\r\n"
        f"Host: {parts.hostname}\r\n"
        f"Authorization: {authorization}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Range: bytes 0-{total - 1}/{total}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"\0" * MIB)
    return sock


def test_a_stalled_upload_blocks_no_other_user(demo, live_server, api):
    api.as_user(demo.custodian)
    registered = api.post(
        f"/api/cases/{demo.case.pk}/evidence/", {"label": "Stalled upload", "kind": "disk_image"}, format="json"
    )
    assert registered.status_code == 201, registered.content
    upload = start_stalled_upload(live_server.url, registered.json()["id"], bearer(demo.custodian))
    try:
        case = demo.case.pk
        requests = [
            (f"/cases/{case}/", {"Cookie": session_cookie(demo.detective)}),
            (f"/cases/{case}/traces/?q=invoice", {"Cookie": session_cookie(demo.investigator)}),
            (f"/api/cases/{case}/traces/export.csv?q=invoice", {"Authorization": bearer(demo.investigator)}),
            (f"/api/cases/{case}/", {"Authorization": bearer(demo.prosecutor)}),
            ("/healthz", {}),
        ]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            answers = list(pool.map(lambda item: (item[0], *get(live_server.url, *item)), requests))
        for path, status, headers in answers:
            assert status != 500, path
            if status == 503:
                assert headers.get("retry-after"), path
            else:
                assert status == 200, (path, status)
    finally:
        upload.close()


def test_no_request_runs_in_one_transaction_and_sqlite_queues_writers():
    database = settings.DATABASES["default"]
    assert not database.get("ATOMIC_REQUESTS", False)
    if database["ENGINE"].endswith("sqlite3"):
        options = database["OPTIONS"]
        assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] >= 5
        assert "journal_mode=WAL" in options["init_command"]
