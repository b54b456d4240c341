"""python manage.py acquire_device --case REF --as USER [--now | --wait] [--label L] DEVICE

Reads a block device named in CUSTODIA_ACQUIRE_DEVICES, or an image file below CUSTODIA_IMPORT_ROOTS,
strictly read-only into a sealed evidence item (docs/acquisition.md)."""

from django.core.management.base import BaseCommand, CommandError

from custodia.errors import ServiceError
from evidence.management.intake_command import (
    add_intake_options,
    finish_intake,
    registration_fields,
    resolve_actor_and_case,
)
from evidence.services.acquisition import evidence_acquire
from evidence.services.intake import intake_run


class Command(BaseCommand):
    help = (
        "Acquire a local block device or image file read-only into a case: queued for a worker on this machine "
        "(--wait waits for it, --now reads in this process); read errors are retried, then zero-filled and logged."
    )

    def add_arguments(self, parser):
        parser.add_argument("device", help="The block device (/dev/sdX, /dev/disk/by-id/…) or image file")
        add_intake_options(parser)

    def handle(self, *args, **options):
        user, case = resolve_actor_and_case(options)
        try:
            evidence = evidence_acquire(
                actor=user,
                case=case,
                device=options["device"],
                **registration_fields(options),
                queue=not options["now"],
            )
            if options["now"]:
                evidence = intake_run(evidence_id=evidence.pk)
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        finish_intake(self, evidence=evidence, options=options)
        for error in evidence.acquisition_log:
            self.stdout.write(
                f"zero-filled bytes {error['start']}-{error['end'] - 1} ({error['error']}, {error['attempts']} tries)"
            )
