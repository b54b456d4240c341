"""#15: a link to evidence that failed verification is refused before any byte; anonymous guessing at links is
throttled per client address, folded in the trail, and kept out of the evidence's custody trail."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from evidence.models import Evidence, IntegrityStatus, LinkGuessWindow
from evidence.services.link_guesses import link_guess_windows_close
from tests.evidence.test_links import clock, issue, link_events, path_of, sealed  # noqa: F401 - fixtures


@pytest.fixture
def guess_limits(settings):
    settings.CUSTODIA_LINK_GUESS_WINDOW_SECONDS = 60
    settings.CUSTODIA_LINK_GUESS_LIMIT = 5


def test_a_link_to_mismatched_evidence_is_refused_before_any_byte(api, demo, sealed, client):  # noqa: F811
    body = issue(api, sealed, demo.custodian).json()
    url = path_of(body["url"])
    Evidence.objects.filter(pk=sealed).update(integrity=IntegrityStatus.MISMATCH, integrity_problem="chunk 1")
    for response in (client.get(url), client.head(url), client.get(url + "/hashes.txt")):
        assert response.status_code == 409
        assert not getattr(response, "streaming", False) and "X-Content-SHA256" not in response
    assert b"do not match its hashes" in client.get(url).content
    events = link_events(body["id"])
    assert {e.details["reason"] for e in events.filter(action="link.refused")} == {"integrity_mismatch"}
    assert not events.filter(action="link.use").exists()


def test_guessing_is_throttled_folded_and_kept_out_of_custody(
    api,
    demo,
    sealed,  # noqa: F811
    client,
    clock,  # noqa: F811
    guess_limits,
):
    real = path_of(issue(api, sealed, demo.custodian).json()["url"])
    lookup = real.removeprefix("/l/").split(".")[0]
    custody_before = AuditEvent.objects.filter(target_type="evidence", target_id=sealed).count()
    rows_before = AuditEvent.objects.count()
    guesses = [f"/l/{lookup}.{'x' * 43}"] + [f"/l/{index:016x}.{'y' * 43}" for index in range(4)]
    for guess in guesses:
        assert client.get(guess).status_code == 403
    # The fifth guess filled the window: from now on 429, before any lookup, even with the real token.
    throttled = client.get(f"/l/{'f' * 16}.{'z' * 43}")
    assert throttled.status_code == 429 and 1 <= int(throttled["Retry-After"]) <= 60
    assert client.get(real).status_code == 429
    # Seven requests, one audit row: the first guess.
    new_rows = AuditEvent.objects.order_by("sequence")[rows_before:]
    assert [(e.action, e.details.get("reason")) for e in new_rows] == [("link.refused", "tampered")]
    assert AuditEvent.objects.filter(target_type="evidence", target_id=sealed).count() == custody_before
    window = LinkGuessWindow.objects.get()
    assert (window.refusals, window.throttled, window.reasons) == (5, 2, {"tampered": 1, "unknown": 4})

    clock.advance(61)
    assert link_guess_windows_close() == 1
    burst = AuditEvent.objects.filter(action="link.refused.burst").get()
    assert burst.details["refusals"] == 5 and burst.details["folded"] == 4 and burst.details["throttled"] == 2
    assert burst.details["client_address"] == "127.0.0.1" and burst.case_id is None
    # A new window: the real link works again, and its use is in the custody trail.
    assert client.get(real, HTTP_RANGE="bytes=0-9").status_code == 206
    assert link_guess_windows_close() == 0


def test_the_next_guess_after_a_window_writes_the_count_of_the_last(client, clock, guess_limits, db):  # noqa: F811
    for _ in range(3):
        client.get(f"/l/{'a' * 16}.{'b' * 43}")
    clock.advance(120)
    client.get(f"/l/{'a' * 16}.{'b' * 43}")
    actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions == ["link.refused", "link.refused.burst", "link.refused"]
    assert AuditEvent.objects.get(action="link.refused.burst").details["refusals"] == 3
