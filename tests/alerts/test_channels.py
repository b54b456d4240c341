"""The channels against real listeners on loopback: an SMTP server (aiosmtpd), a TCP syslog collector
(socketserver) and a webhook receiver (http.server). Each event leaves as the privacy model transformed it:
no clear username, case reference or client address where the policy forbids them."""

from __future__ import annotations

import http.server
import json
import re
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from django.db import DatabaseError
from django.utils import timezone

from alerts import channels, services, tasks
from alerts.models import Alert, Delivery, DeliveryStatus
from audit import context
from audit.services import audit_record
from tests.servers import free_port

CLEAR_VALUES = ("detective", "198.51.100.7", "DEMO-2026-001")
WEBHOOK_SECRET = "webhook-secret-for-tests-only"


def raise_alerts(demo, django_capture_on_commit_callbacks) -> list[Delivery]:
    """A login lockout (names a user and an address) and an integrity mismatch (names the case), through the
    audit writer; returns their deliveries once the transaction's callbacks ran (queued, not yet sent)."""
    # The mock outlives the captured callbacks, which run as their block ends.
    with (
        mock.patch.object(tasks.deliver_alert, "delay") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        token = context.activate(context.AuditContext(client_address="198.51.100.7"))
        try:
            audit_record(
                action="auth.lockout", outcome="denied", details={"username": "detective", "client": "198.51.100.7"}
            )
            audit_record(
                action="evidence.verify",
                outcome="failed",
                target_type="evidence",
                target_id="7",
                case_id=demo.case.pk,
                details={"mismatches": [1]},
            )
        finally:
            context.deactivate(token)
    deliveries = list(Delivery.objects.order_by("id"))
    assert sorted(call.args[0] for call in queued.call_args_list) == [d.pk for d in deliveries]
    return deliveries


def assert_no_clear_values(payload: bytes | str) -> None:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    for value in CLEAR_VALUES:
        assert value not in text, value


# --- e-mail through Django's SMTP backend to aiosmtpd ------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_email_reaches_each_recipient_through_a_real_smtp_server(
    demo, settings, strict_privacy, smtp_server, django_capture_on_commit_callbacks
):
    inbox, port = smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.CUSTODIA_ALERTS_EMAIL = True
    demo.orgadmin.email = "olga@police.example"
    demo.orgadmin.save()
    demo.custodian.email = "casey@police.example"
    demo.custodian.save()
    for delivery in raise_alerts(demo, django_capture_on_commit_callbacks):
        assert services.delivery_send(delivery_id=delivery.pk) == DeliveryStatus.SENT
    assert sorted(tuple(m.rcpt_tos) for m in inbox.messages) == [
        ("custodia@localhost", "casey@police.example"),
        ("custodia@localhost", "olga@police.example"),
    ]
    for message in inbox.messages:
        assert b"Subject: [Custodia " in message.content
        assert_no_clear_values(message.content)
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_an_unreachable_mail_server_leaves_the_delivery_pending_for_a_retry(
    demo, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.CUSTODIA_ALERTS_EMAIL = True
    demo.orgadmin.email = "olga@police.example"
    demo.orgadmin.save()
    delivery = raise_alerts(demo, django_capture_on_commit_callbacks)[0]
    with pytest.raises(channels.ChannelError):
        services.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.last_error == "e-mail: ConnectionRefusedError"
    # The task retries on the decorator; what its retries give up on, the sweep queues again.
    assert channels.ChannelError in tasks.deliver_alert.autoretry_for
    assert DatabaseError in tasks.deliver_alert.autoretry_for
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=2))
    with mock.patch.object(tasks.deliver_alert, "delay") as queued:
        assert services.deliveries_requeue() == 1  # the other is fresh: its own task still has it
    assert delivery.pk in [call.args[0] for call in queued.call_args_list]


# --- syslog: RFC 5424 over TCP, octet-counted --------------------------------------------------------------


class Collector(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[bytes] = []
        super().__init__(("127.0.0.1", 0), CollectorHandler)

    def wait_for(self, count: int) -> None:
        """Until ``count`` connections were read to their end (the handler thread ends after the sender)."""
        deadline = time.monotonic() + 10
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)


class CollectorHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = b""
        while chunk := self.request.recv(65536):
            data += chunk
        self.server.received.append(data)


@pytest.fixture
def syslog_collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]{1,255}) "
    rb"(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"(?P<sd>\[custodia@32473(?: [a-z]+=\"(?:[^\"\\\]]|\\.)*\")+\]) \xef\xbb\xbf(?P<msg>.*)$",
    re.DOTALL,
)


def frames(data: bytes) -> list[bytes]:
    """Split an RFC 6587 octet-counted stream into its messages (and check the counts)."""
    messages = []
    while data:
        length, _, rest = data.partition(b" ")
        assert length.isdigit(), data[:40]
        messages.append(rest[: int(length)])
        assert len(messages[-1]) == int(length)
        data = rest[int(length) :]
    return messages


def test_syslog_frames_rfc5424_messages_over_tcp(
    demo, settings, strict_privacy, syslog_collector, django_capture_on_commit_callbacks
):
    host, port = syslog_collector.server_address
    settings.CUSTODIA_ALERTS_SYSLOG = f"{host}:{port}"
    for delivery in raise_alerts(demo, django_capture_on_commit_callbacks):
        services.delivery_send(delivery_id=delivery.pk)
    syslog_collector.wait_for(2)
    messages = [message for data in syslog_collector.received for message in frames(data)]
    assert len(messages) == 2
    by_kind = {}
    for message in messages:
        match = RFC5424.match(message)
        assert match, message[:200]
        event = json.loads(match["msg"].decode())
        by_kind[event["kind"]] = (int(match["pri"]), match, event)
        assert match["app"] == b"custodia" and match["msgid"] == b"alert"
        assert f'id="{event["id"]}"'.encode() in match["sd"]
        assert_no_clear_values(message)
    pri, _, lockout = by_kind["auth.lockout"]
    assert pri == 13 * 8 + 4  # log audit, warning
    assert by_kind["evidence.integrity_mismatch"][0] == 13 * 8 + 2  # log audit, critical
    assert lockout["details"]["user"].startswith("[user>") and lockout["details"]["user"] != "[user>detective]"
    assert by_kind["evidence.integrity_mismatch"][2]["details"]["case"].startswith("[case>")


def test_structured_data_values_are_escaped(demo):
    alert = Alert(pk=1, kind='x"]\\y', title="t", message="m", raised_at=timezone.now())
    message = channels.syslog_message(alert, hostname="host name")
    assert b'kind="x\\"\\]\\\\y"' in message
    assert b" hostname " in message  # the space is not printable US-ASCII of a HOSTNAME: dropped


def test_syslog_unreachable_is_a_channel_error(settings):
    settings.CUSTODIA_ALERTS_SYSLOG = f"127.0.0.1:{free_port()}"
    alert = Alert(pk=1, kind="k", title="t", message="m", raised_at=timezone.now())
    with pytest.raises(channels.ChannelError, match="syslog: ConnectionRefusedError"):
        channels.send_syslog(alert)
    settings.CUSTODIA_ALERTS_SYSLOG = "no-port"
    with pytest.raises(channels.ChannelError, match="host:port"):
        channels.send_syslog(alert)


# --- the signed webhook ------------------------------------------------------------------------------------


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.status = 204
        super().__init__(("127.0.0.1", 0), ReceiverHandler)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers), body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_signed_json_per_event(
    demo, settings, strict_privacy, webhook_receiver, django_capture_on_commit_callbacks
):
    host, port = webhook_receiver.server_address
    settings.CUSTODIA_ALERTS_WEBHOOK_URL = f"http://{host}:{port}/siem"
    settings.CUSTODIA_ALERTS_WEBHOOK_SECRET = WEBHOOK_SECRET
    deliveries = raise_alerts(demo, django_capture_on_commit_callbacks)
    webhook_receiver.status = 503  # the SIEM is down: the delivery stays pending, to be retried
    with pytest.raises(channels.ChannelError, match="HTTP 503"):
        services.delivery_send(delivery_id=deliveries[0].pk)
    webhook_receiver.status = 204
    for delivery in deliveries:
        assert tasks.deliver_alert.apply(args=[delivery.pk]).get() == DeliveryStatus.SENT
    assert len(webhook_receiver.requests) == 3
    for headers, body in webhook_receiver.requests:
        assert headers["Content-Type"] == "application/json"
        signature = headers[channels.WEBHOOK_SIGNATURE_HEADER]
        assert channels.webhook_signature_valid(secret=WEBHOOK_SECRET, header=signature, body=body)
        assert not channels.webhook_signature_valid(secret="another secret", header=signature, body=body)
        assert not channels.webhook_signature_valid(secret=WEBHOOK_SECRET, header=signature, body=body + b" ")
        event = json.loads(body)
        assert event["category"] == "alert" and event["kind"] in ("auth.lockout", "evidence.integrity_mismatch")
        assert_no_clear_values(body)
        assert WEBHOOK_SECRET not in body.decode()
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
