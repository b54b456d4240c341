"""Organisations are sealed off from each other, whatever their number and whoever asks."""

from __future__ import annotations

import pytest

from tests.factories import OrganizationFactory, UserFactory, case_with_team


@pytest.fixture
def two_agencies(db):
    north, south = OrganizationFactory(), OrganizationFactory()
    alice, bob = UserFactory(organization=north), UserFactory(organization=south)
    return {
        "alice": alice,
        "bob": bob,
        "north_case": case_with_team(organization=north, custodian=alice),
        "south_case": case_with_team(organization=south, custodian=bob),
    }


def test_each_user_sees_only_own_organisations_cases(two_agencies, api):
    for user, own, foreign in [
        ("alice", "north_case", "south_case"),
        ("bob", "south_case", "north_case"),
    ]:
        api.as_user(two_agencies[user])
        listed = [case["id"] for case in api.get("/api/cases/").json()["results"]]
        assert listed == [two_agencies[own].pk]
        assert api.get(f"/api/cases/{two_agencies[foreign].pk}/").status_code == 404
        assert api.get(f"/api/cases/{two_agencies[foreign].pk}/members/").status_code == 404


def test_wrongly_typed_fields_are_400_with_the_field_named(two_agencies, api):
    api.as_user(two_agencies["alice"])
    case = two_agencies["north_case"]
    response = api.patch(f"/api/cases/{case.pk}/", {"legal_hold": "perhaps", "retention_until": 7}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"legal_hold", "retention_until"}
