"""Demo data: idempotent, so `make run` can call it every time."""

import os
import secrets

from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from cases.models import Case, CaseMembership, Role, User
from cases.services import case_create, membership_add, organization_get_or_create

DEMO_CASE = "DEMO-2026-001"
OTHER_CASE = "OA-2026-017"
ROLE_USERS = [
    ("custodian", "Casey Custodian", Role.CUSTODIAN),
    ("investigator", "Ivy Investigator", Role.INVESTIGATOR),
    ("detective", "Dev Detective", Role.DETECTIVE),
    ("prosecutor", "Pat Prosecutor", Role.PROSECUTOR),
]


class Command(BaseCommand):
    help = "Create the demo organisations, users and cases (safe to run again)."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        created = self._seed(password)
        if created:
            self.stdout.write(self.style.SUCCESS("Demo data created."))
            self.stdout.write("Demo logins (all share one password):")
            for username in ["custodian", "investigator", "detective", "prosecutor", "orgadmin", "outsider"]:
                self.stdout.write(f"  {username}")
            self.stdout.write(
                f"  password: {password}" + ("  (generated; set DEMO_PASSWORD to choose it)" if generated else "")
            )
        else:
            self.stdout.write("Demo data already present; passwords unchanged.")

    @transaction.atomic
    def _seed(self, password: str) -> bool:
        if User.objects.filter(username="custodian").exists():
            return False
        demo = organization_get_or_create(name="Demo Police", slug="demo-police")
        other = organization_get_or_create(name="Other Agency", slug="other-agency")
        add_case = Permission.objects.get(codename="add_case", content_type__app_label="cases")

        def user(username, display_name, organization, **extra):
            account = User(username=username, display_name=display_name, organization=organization, **extra)
            account.set_password(password)
            account.save()
            return account

        users = {name: user(name, display, demo) for name, display, _ in ROLE_USERS}
        users["custodian"].user_permissions.add(add_case)
        orgadmin = user("orgadmin", "Olga Orgadmin", demo, is_org_admin=True)
        outsider = user("outsider", "Otto Outsider", other)
        outsider.user_permissions.add(add_case)

        if not Case.objects.filter(organization=demo, reference=DEMO_CASE).exists():
            case = case_create(
                actor=users["custodian"],
                reference=DEMO_CASE,
                title="Fraud at Example Ltd — seized laptop and mailbox",
                description="Demo case. The custodian registers the seized images; the investigator extracts; "
                "the detective searches; the prosecutor reviews the custody trail.",
                priority="high",
            )
            for username, _, role in ROLE_USERS[1:]:
                membership_add(actor=orgadmin, case=case, user=users[username], role=role)
        if not Case.objects.filter(organization=other, reference=OTHER_CASE).exists():
            case_create(actor=outsider, reference=OTHER_CASE, title="Other agency's own case")
        assert CaseMembership.objects.filter(case__reference=DEMO_CASE).count() == 4  # nosec B101 # demo data self-check
        return True
