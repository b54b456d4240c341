"""Seal demo evidence into the demo case: the generated demo disk always, the corpus's ext2.E01 when present.

Idempotent: an item whose label is already in the demo case is left alone, so `make run` calls it every
time. Both images are small and are sealed here, in the command: the import root is set in this process
only, and a worker, which re-checks the source against its own (empty) roots, would refuse them. The
worker extracts them once sealed (``CUSTODIA_EXTRACT_ON_SEAL``).
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from cases.models import Case, User
from evidence.demo_image import DEMO_FILE_NAME, DEMO_LABEL, DemoToolMissing, build_demo_image
from evidence.models import Evidence
from evidence.services.intake import evidence_import

DEMO_CASE = "DEMO-2026-001"
CORPUS_IMAGE = "files/dfvfs/ext2.E01"
CORPUS_LABEL = "Laptop 1, internal disk (E01)"


class Command(BaseCommand):
    help = (
        "Seal the generated demo disk (and the corpus's ext2.E01 when CUSTODIA_TESTDATA has it) into the demo "
        "case, as the demo custodian. Safe to run again."
    )

    def handle(self, *args, **options):
        case = Case.objects.filter(reference=DEMO_CASE).first()
        custodian = User.objects.filter(username="custodian").first()
        if case is None or custodian is None:
            self.stdout.write("Run seed_demo first.")
            return
        self._seal_generated_disk(case=case, custodian=custodian)
        self._seal_corpus_image(case=case, custodian=custodian)

    def _seal_generated_disk(self, *, case: Case, custodian: User) -> None:
        if Evidence.objects.filter(case=case, label=DEMO_LABEL).exists():
            self.stdout.write(f"The demo case already has {DEMO_LABEL!r}.")
            return
        # The image stays where it is read from: a queued or resumed seal reads the file again.
        destination = Path(settings.DATA_DIR) / "demo" / DEMO_FILE_NAME
        try:
            image = build_demo_image(destination=destination)
        except DemoToolMissing as exc:
            self.stdout.write(f"{exc}: the demo case gets no generated disk.")
            return
        evidence = self._import(
            case=case,
            custodian=custodian,
            path=image.path,
            label=DEMO_LABEL,
            seized_from="Suspect's home office, desk drawer",
        )
        self.stdout.write(f"Sealed the generated demo disk as {evidence.pk} (sha256 {evidence.sha256}).")

    def _seal_corpus_image(self, *, case: Case, custodian: User) -> None:
        testdata = Path(os.environ.get("CUSTODIA_TESTDATA", settings.BASE_DIR.parent / "shared" / "testdata"))
        image = testdata / CORPUS_IMAGE
        if not image.is_file():
            self.stdout.write(f"No corpus image at {image}: only the generated disk is in the demo case.")
            return
        if Evidence.objects.filter(case=case, label=CORPUS_LABEL).exists():
            self.stdout.write(f"The demo case already has {CORPUS_LABEL!r}.")
            return
        evidence = self._import(
            case=case, custodian=custodian, path=image, label=CORPUS_LABEL, seized_from="Office 2, desk"
        )
        self.stdout.write(f"Sealed the corpus image as {evidence.pk} (sha256 {evidence.sha256}).")

    @staticmethod
    def _import(*, case: Case, custodian: User, path: Path, label: str, seized_from: str) -> Evidence:
        # The import root is the image's own folder, in this process only: nothing else becomes importable.
        settings.CUSTODIA_IMPORT_ROOTS = [path.parent]
        return evidence_import(
            actor=custodian,
            case=case,
            paths=[str(path)],
            label=label,
            seized_from=seized_from,
            seized_by="DC Jones",
            mode="now",
        )
