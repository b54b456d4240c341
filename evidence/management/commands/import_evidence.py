"""python manage.py import_evidence --case REF --as USER [--now | --wait] [--label L] PATH..."""

from django.core.management.base import BaseCommand, CommandError

from custodia.errors import ServiceError
from evidence.management.intake_command import add_intake_options, finish_intake, resolve_actor_and_case
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
                label=options["label"],
                kind=options["kind"],
                seized_from=options["seized_from"],
                seized_by=options["seized_by"],
                declared_md5=options["declared_md5"],
                declared_sha1=options["declared_sha1"],
                declared_sha256=options["declared_sha256"],
                mode="now" if options["now"] else "auto",
            )
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        finish_intake(self, evidence=evidence, options=options)
