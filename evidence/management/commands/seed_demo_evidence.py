"""Import a real disk image from the test corpus into the demo case (idempotent; skipped without the corpus)."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from cases.models import Case, User
from evidence.models import Evidence
from evidence.services.intake import evidence_import

DEMO_IMAGE = "files/dfvfs/ext2.E01"


class Command(BaseCommand):
    help = "Seal the corpus's ext2.E01 into the demo case, as the demo custodian (needs CUSTODIA_TESTDATA)."

    def handle(self, *args, **options):
        testdata = Path(os.environ.get("CUSTODIA_TESTDATA", settings.BASE_DIR.parent / "shared" / "testdata"))
        image = testdata / DEMO_IMAGE
        if not image.is_file():
            self.stdout.write(f"No demo image at {image}: the demo case stays without evidence.")
            return
        case = Case.objects.filter(reference="DEMO-2026-001").first()
        custodian = User.objects.filter(username="custodian").first()
        if case is None or custodian is None:
            self.stdout.write("Run seed_demo first.")
            return
        if Evidence.objects.filter(case=case).exists():
            self.stdout.write("The demo case already has evidence.")
            return
        settings.CUSTODIA_IMPORT_ROOTS = [image.parent]  # as given: the path below it is given the same way
        evidence = evidence_import(
            actor=custodian,
            case=case,
            paths=[str(image)],
            label="Laptop 1, internal disk (E01)",
            seized_from="Office 2, desk",
            seized_by="DC Jones",
        )
        self.stdout.write(f"Sealed the demo image as {evidence.pk} (sha256 {evidence.sha256}).")
