"""The public side of download links, at ``/l/<token>``: no session, no login; the token is the credential.

- ``GET /l/<token>``: the original acquired bytes, decrypted on the fly from the sealed container, with
  one HTTP range (206/416) for resumable downloads, and headers to check them against
  (``X-Content-SHA256``, ``X-Content-MD5``, ``Repr-Digest``, ``ETag``).
- ``GET /l/<token>/hashes.txt``: the hashes and custody facts, as text (``sha256sum -c`` reads its
  first lines).
- ``GET /l/<token>/``: a plain page for the recipient with the hashes and the download.

Any other method, and any link that is unknown, tampered with, expired, revoked, waiting for approval or
used from outside its networks, gets 403 and an audit row, never a byte (evidence/services/links.py); a
link to evidence whose verification found a mismatch gets 409. An address that keeps guessing gets 429
(evidence/services/link_guesses.py).
"""

from __future__ import annotations

import base64
import logging
import re
import unicodedata
from pathlib import PurePath
from urllib.parse import quote

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from audit import context
from audit.middleware import client_address
from audit.text import visible_text
from custodia.access import PUBLIC, requires
from custodia.errors import ServiceError
from custodia.http_range import RangeNotSatisfiable, parse_range
from evidence.container.errors import ContainerError
from evidence.container.reader import ContainerReader
from evidence.models import DownloadLink, Evidence
from evidence.reading import FORMAT_SUFFIXES
from evidence.services import link_guesses, links
from evidence.services.registration import data_key_for
from evidence.storage.base import StoreError, get_store

logger = logging.getLogger(__name__)

BLOCK_SIZE = 4 << 20  # bytes handed to the server per write: big blocks keep loopback above 200 MB/s
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
# Characters a saved file's name cannot carry (folders, controls, and what Windows refuses), and the
# Unicode categories that hide or reorder text (a right-to-left override turning "fdp.exe" into "exe.pdf").
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def _plain(status: int, text: str, **headers) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)
    response["Cache-Control"] = "no-store"
    return response


_STATUS_TEXT = {403: "403 Forbidden", 409: "409 Conflict"}


def _resolve(request, token: str) -> DownloadLink | HttpResponse:
    address = client_address(request)
    retry_after = link_guesses.link_guess_throttled(client_address=address)
    if retry_after is not None:
        return _plain(
            429,
            "429 Too Many Requests: too many invalid links from your address; try again later.",
            **{"Retry-After": str(retry_after)},
        )
    try:
        link = links.link_resolve(token=token, method=request.method, client_address=address)
    except links.LinkRefused as refused:
        if refused.link is not None:
            _note_for_audit(refused.link)
        status = refused.status_code
        return _plain(status, f"{_STATUS_TEXT.get(status, status)}: {refused.detail}")
    _note_for_audit(link)
    return link


def _note_for_audit(link: DownloadLink) -> None:
    # For the middleware's own row, should one be needed: the link's id, never the token.
    context.note_target(
        link_id=link.pk, case_id=link.evidence.case_id, organization_id=link.evidence.case.organization_id
    )


def download_name(evidence: Evidence) -> str:
    """The name a link download is saved under: the evidence's label (or, without one, the name it was
    acquired under) with its real extension: the detected format's (``FORMAT_SUFFIXES``: ``.E01``, ``.vhd``…),
    else the one it was acquired with (``.dd``, ``.mbox``), else ``.bin``. Examiners' tools need the extension (libewf
    refuses an E01 under another). Folders and control characters are replaced, so it is one file name."""
    names = [name.strip() for name in (evidence.original_name or "").split(",") if name.strip()]
    acquired = PurePath(names[0].replace("\\", "/")) if len(names) == 1 else None
    # Several segments are served as one concatenation, which is no format's file: .bin then.
    suffix = FORMAT_SUFFIXES.get(evidence.format, "") if len(names) <= 1 else ""
    if not suffix and acquired is not None and _SUFFIX.match(acquired.suffix):
        suffix = acquired.suffix
    suffix = suffix or ".bin"
    stem = evidence.label.strip() or (acquired.stem if acquired is not None else "") or f"evidence-{evidence.pk}"
    stem = "".join("_" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in stem)
    stem = _UNSAFE_IN_NAME.sub("_", stem)[:200].strip(". ") or f"evidence-{evidence.pk}"
    return stem if stem.lower().endswith(suffix.lower()) else stem + suffix


def content_disposition(file_name: str) -> str:
    """``attachment`` with the name twice (RFC 6266): ``filename`` in ASCII for old clients, ``filename*``
    in UTF-8 for the rest, which prefer it."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def _digest_headers(evidence: Evidence) -> dict[str, str]:
    headers = {
        "X-Content-SHA256": evidence.sha256,
        "X-Content-MD5": evidence.md5,
        "ETag": f'"{evidence.sha256}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "Content-Disposition": content_disposition(download_name(evidence)),
        "X-Content-Type-Options": "nosniff",
    }
    if evidence.sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(evidence.sha256)).decode()}:"
    return headers


def _stream(*, reader: ContainerReader, start: int, end: int, on_end):
    """Plaintext of [start, end] in blocks of about BLOCK_SIZE, whole chunks passed on without copying."""
    sent = 0
    try:
        position = start
        chunk_size = reader.chunk_size
        while position <= end:
            parts: list[bytes] = []
            length = 0
            while position <= end and length < BLOCK_SIZE:
                number, within = divmod(position, chunk_size)
                plaintext = reader.read_chunk(number)
                take = min(len(plaintext) - within, end + 1 - position)
                parts.append(plaintext if within == 0 and take == len(plaintext) else plaintext[within : within + take])
                position += take
                length += take
            block = parts[0] if len(parts) == 1 else b"".join(parts)
            sent += len(block)  # handed to the server (it may still fail to reach a client that went away)
            yield block
    except ContainerError as error:
        # Headers are out: all we can do is stop short (the client sees a truncated body) and say why.
        logger.error("download of evidence %s stopped at byte %d: %s", reader.evidence_id, start + sent, error)
    finally:
        reader.close()
        try:
            on_end(sent)
        except ServiceError:
            logger.error("the end of a download of evidence %s could not be audited", reader.evidence_id)


@requires(PUBLIC)  # the token is the credential: link_resolve refuses (and audits) any other
@csrf_exempt
def link_download(request, token: str):
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    evidence = link.evidence
    size = evidence.size or 0
    headers = _digest_headers(evidence)
    if request.method == "HEAD":
        links.link_use_record(link=link, what="content", method="HEAD", byte_range="", status=200)
        return HttpResponse(
            status=200, content_type="application/octet-stream", headers={**headers, "Content-Length": str(size)}
        )
    range_header = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range", "")
    if if_range and if_range != headers["ETag"]:
        range_header = ""  # the client's partial copy is of something else: send it all
    try:
        byte_range = parse_range(header=range_header, size=size, what="evidence")
    except RangeNotSatisfiable as exc:
        links.link_use_record(link=link, what="content", method="GET", byte_range=range_header[:100], status=416)
        return _plain(416, exc.detail, **{"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    start, end = byte_range if byte_range else (0, size - 1)
    status = 206 if byte_range else 200
    described = f"bytes {start}-{end}/{size}" if size else "bytes */0"
    try:
        reader = ContainerReader(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store())
    except (ContainerError, StoreError, ServiceError) as error:
        logger.error("evidence %s cannot be read for a download link: %s", evidence.pk, error)
        return _plain(503, "The evidence cannot be read at the moment; nothing was sent. Try again later.")
    links.link_use_record(link=link, what="content", method="GET", byte_range=described, status=status)
    audit_context = context.current()

    def on_end(sent: int) -> None:
        links.link_use_finish(
            link=link, audit_context=audit_context, byte_range=described, sent=sent, expected=end - start + 1
        )

    response = StreamingHttpResponse(
        _stream(reader=reader, start=start, end=end, on_end=on_end),
        status=status,
        content_type="application/octet-stream",
        headers={**headers, "Content-Length": str(max(0, end - start + 1))},
    )
    if status == 206:
        response["Content-Range"] = described
    return response


def hashes_text(*, link: DownloadLink) -> str:
    evidence = link.evidence
    name = download_name(evidence)
    lines = [
        f"SHA256 ({name}) = {evidence.sha256}",
        f"MD5 ({name}) = {evidence.md5}",
        f"SHA1 ({name}) = {evidence.sha1}",
        "",
        "# Custodia: hashes and custody facts of one evidence item, given out through a download link.",
        f"# evidence: {evidence.pk}",
        f"# label: {visible_text(evidence.label)}",
        f"# kind: {evidence.get_kind_display()}",
        f"# size: {evidence.size} bytes",
        f"# seized by: {visible_text(evidence.seized_by) or '-'}",
        f"# seized at: {evidence.seized_at.isoformat() if evidence.seized_at else '-'}",
        f"# registered: {evidence.created_at.isoformat()} by {visible_text(evidence.registered_by)}",
        f"# sealed: {evidence.sealed_at.isoformat() if evidence.sealed_at else '-'}",
        f"# manifest sha256: {evidence.manifest_sha256}",
        f"# integrity: {evidence.get_integrity_display()}"
        + (f", last verified {evidence.last_verified_at.isoformat()}" if evidence.last_verified_at else ""),
        f"# link: {link.pk}, issued {link.created_at.isoformat()} by {visible_text(link.issued_by)}",
        f"# recipient: {visible_text(link.recipient_display)}",
        f"# reason: {visible_text(' '.join(link.reason.split()))}",
    ]
    if link.approved_by_id:
        lines.append(f"# approved: {link.approved_at.isoformat()} by {visible_text(link.approved_by)}")
    lines.append(f"# expires: {link.expires_at.isoformat()}")
    lines.append("# Every use of this link is recorded in the evidence's audit trail.")
    return "\n".join(lines) + "\n"


@requires(PUBLIC)  # the token is the credential, as for link_download
@csrf_exempt
def link_hashes(request, token: str):
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    links.link_use_record(link=link, what="hashes", method=request.method, byte_range="", status=200)
    return HttpResponse(
        hashes_text(link=link),
        content_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@requires(PUBLIC)  # the token is the credential, as for link_download
@csrf_exempt
def link_page(request, token: str):
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    links.link_use_record(link=link, what="page", method=request.method, byte_range="", status=200)
    context_ = {
        "link": link,
        "evidence": link.evidence,
        "token": token,
        "file_name": download_name(link.evidence),
        "download_url": request.build_absolute_uri(reverse("link-download", kwargs={"token": token})),
    }
    response = render(request, "evidence/link_download.html", context_)
    response["Cache-Control"] = "no-store"
    return response
