"""The channels an alert leaves the system by: e-mail (Django's mail backend), and the SIEM feed — RFC 5424
syslog over TCP and a webhook signed with HMAC-SHA256. Each carries the alert as the privacy model
transformed it when it was raised (alerts/models.py), as one JSON event (``siem_event``).

A channel raises ``ChannelError`` when it could not hand the alert over; the delivery is then retried. The
error says what kind of failure it was, never an address's credentials or the webhook's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from alerts.models import Alert, Severity

# RFC 5424 section 6.2.1: the numeric severities; the facility is 13, "log audit".
SYSLOG_SEVERITY = {
    Severity.CRITICAL: 2,
    Severity.ERROR: 3,
    Severity.WARNING: 4,
    Severity.NOTICE: 5,
    Severity.INFO: 6,
}
SYSLOG_FACILITY = 13
# The structured-data id: "name@<private enterprise number>"; 32473 is the number RFC 5612 reserves for
# documentation and examples, until Custodia has one of its own.
SYSLOG_SD_ID = "custodia@32473"
# The webhook's signature header: "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>" (the time is signed
# with the body, so that a captured request cannot be replayed later as a new one).
WEBHOOK_SIGNATURE_HEADER = "X-Custodia-Signature"
WEBHOOK_EVENT_HEADER = "X-Custodia-Event"


class ChannelError(Exception):
    """A channel could not take the alert (the delivery is retried)."""


def siem_event(alert: Alert) -> dict:
    """The alert as one JSON event: the same for syslog and the webhook."""
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "category": alert.category,
        "severity": alert.severity,
        "title": alert.title,
        "message": alert.message,
        "details": alert.details,
        "organization": alert.organization_id,
        "occurrences": alert.occurrences,
        "raised_at": alert.raised_at.isoformat(),
        "audit_sequence": alert.audit_sequence,
    }


def event_json(alert: Alert) -> bytes:
    return json.dumps(siem_event(alert), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- e-mail ---------------------------------------------------------------------------------------------


def send_email(alert: Alert, *, addresses: list[str]) -> None:
    if not addresses:
        return
    body = f"{alert.title}\n\n{alert.message}\n\nOpen Custodia to acknowledge it (alert {alert.pk}, {alert.kind})."
    message = EmailMessage(
        subject=f"[Custodia {alert.severity}] {alert.title}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[settings.DEFAULT_FROM_EMAIL],
        bcc=addresses,  # recipients of one alert need not learn each other's addresses
    )
    try:
        message.send(fail_silently=False)
    except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
        raise ChannelError(f"e-mail: {type(exc).__name__}") from exc


# --- syslog (RFC 5424 over TCP, octet-counted framing of RFC 6587) ----------------------------------------


def _sd_param(value: object) -> str:
    # RFC 5424 section 6.3.3: '"', '\' and ']' are escaped inside a PARAM-VALUE.
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(value: str, limit: int) -> str:
    # HOSTNAME, APP-NAME and MSGID are PRINTUSASCII without spaces; "-" is the nil value.
    cleaned = "".join(ch for ch in value if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


def syslog_message(alert: Alert, *, now: datetime | None = None, hostname: str | None = None) -> bytes:
    """One RFC 5424 message: header, structured data naming the alert, and the JSON event (UTF-8, with BOM)."""
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY.get(Severity(alert.severity), 5)
    timestamp = (now or timezone.now()).astimezone(UTC).isoformat(timespec="microseconds")
    timestamp = timestamp.replace("+00:00", "Z")
    header = " ".join(
        [
            f"<{pri}>1",
            timestamp,
            _printable(hostname or socket.gethostname(), 255),
            _printable(settings.CUSTODIA_ALERTS_SYSLOG_APP_NAME, 48),
            "-",
            _printable(alert.category, 32),
        ]
    )
    sd = (
        f'[{SYSLOG_SD_ID} id="{_sd_param(alert.pk)}" kind="{_sd_param(alert.kind)}" '
        f'severity="{_sd_param(alert.severity)}"]'
    )
    return f"{header} {sd} ".encode() + b"\xef\xbb\xbf" + event_json(alert)


def syslog_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: the message's length in bytes, a space, the message."""
    return b"%d " % len(message) + message


def syslog_address() -> tuple[str, int]:
    host, _, port = settings.CUSTODIA_ALERTS_SYSLOG.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ChannelError("syslog: CUSTODIA_ALERTS_SYSLOG is not host:port")
    return host, int(port)


def send_syslog(alert: Alert) -> None:
    address = syslog_address()
    try:
        with socket.create_connection(address, timeout=settings.CUSTODIA_ALERTS_CHANNEL_TIMEOUT) as connection:
            connection.sendall(syslog_frame(syslog_message(alert)))
    except OSError as exc:
        raise ChannelError(f"syslog: {type(exc).__name__}") from exc


# --- the signed webhook --------------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_signature_valid(*, secret: str, header: str, body: bytes) -> bool:
    """What a receiver checks (and the tests do): the header's signature is the body's, under the secret."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit():
        return False
    expected = webhook_signature(secret=secret, timestamp=int(parts["t"]), body=body)
    return hmac.compare_digest(expected, header)


def send_webhook(alert: Alert, *, now: float | None = None) -> None:
    url = settings.CUSTODIA_ALERTS_WEBHOOK_URL
    if urlsplit(url).scheme not in ("http", "https"):
        raise ChannelError("webhook: CUSTODIA_ALERTS_WEBHOOK_URL is not an http(s) URL")
    body = event_json(alert)
    signature = webhook_signature(
        secret=settings.CUSTODIA_ALERTS_WEBHOOK_SECRET, timestamp=int(now or time.time()), body=body
    )
    request = urllib.request.Request(  # noqa: S310  (the scheme is checked above)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            WEBHOOK_SIGNATURE_HEADER: signature,
            WEBHOOK_EVENT_HEADER: alert.category,
        },
    )
    try:
        # The URL is the operator's setting and its scheme is checked to be http(s) above.
        timeout = settings.CUSTODIA_ALERTS_CHANNEL_TIMEOUT
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310 # scheme checked
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"webhook: HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise ChannelError(f"webhook: {type(exc).__name__}") from exc
    if not 200 <= status < 300:
        raise ChannelError(f"webhook: HTTP {status}")
