"""factory_boy factories for tests that need more than the demo organisation."""

from __future__ import annotations

import itertools

import factory

from cases import services
from cases.models import Case, Organization, User


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Agency {n}")
    slug = factory.Sequence(lambda n: f"agency-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    organization = factory.SubFactory(OrganizationFactory)
    display_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "a-long-test-password")


_case_numbers = itertools.count(1)


def case_with_team(*, organization: Organization | None = None, **roles: User) -> Case:
    """A case opened through the service (so its audit row and permissions are real), with members by role."""
    organization = organization or OrganizationFactory()
    opener = UserFactory(organization=organization, is_org_admin=True)
    case = services.case_create(actor=opener, reference=f"CASE-{next(_case_numbers):05d}", title="Factory case")
    for role, user in roles.items():
        services.membership_add(actor=opener, case=case, user=user, role=role)
    return case
