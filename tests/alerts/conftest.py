"""Shared by the alerts tests: a privacy policy that forbids clear names, cases and addresses, whatever the
test settings' default (so that "no clear value leaves" is tested against a policy that says so)."""

from __future__ import annotations

import pytest

STRICT_POLICY = {
    "user": "ER",
    "actor": "ER",
    "case": "ER",
    "client_address": "ER",
    "query": "SR",
    "evidence": "PR",
}


@pytest.fixture
def strict_privacy(settings) -> dict:
    settings.CUSTODIA_PRIVACY_POLICY = dict(STRICT_POLICY)
    return settings.CUSTODIA_PRIVACY_POLICY
