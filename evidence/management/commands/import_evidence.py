"""python manage.py import_evidence --case REF --as USER [--now | --wait] [--label L] PATH..."""

from django.core.management.base import BaseCommand, CommandError

from custodia.errors import ServiceError
from evidence.management.intake_command import (
    add_intake_options,
    finish_intake,
    registration_fields,
    resolve_actor_and_case,
)
from evidence.services.intake import evidence_import


class Command(BaseCommand):
    help = (
        "Import an image from below CUSTODIA_IMPORT_ROOTS into a case: queued for a worker (--wait waits for "
        "it, --now seals in this process), hashed and sealed in one read."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="The image, or all segments of a split image")
        add_intake_options(parser)

    def handle(self, *args, **options):
        user, case = resolve_actor_and_case(options)
        try:
            evidence = evidence_import(
                actor=user,
                case=case,
                paths=options["paths"],
                **registration_fields(options),
                mode="now" if options["now"] else "auto",
            )
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        finish_intake(self, evidence=evidence, options=options)
