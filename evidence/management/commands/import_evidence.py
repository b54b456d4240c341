"""python manage.py import_evidence --case REF [--as USER] [--label L] PATH..."""

from django.core.management.base import BaseCommand, CommandError

from cases.models import Case, User
from custodia.errors import ServiceError
from evidence.services.intake import evidence_import


class Command(BaseCommand):
    help = "Import an image from below CUSTODIA_IMPORT_ROOTS into a case: hashed and sealed in one read."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="The image, or all segments of a split image")
        parser.add_argument("--case", required=True, help="Case reference")
        parser.add_argument("--as", dest="username", required=True, help="The custodian doing the import")
        parser.add_argument("--label", default="")
        parser.add_argument("--kind", default="")
        parser.add_argument("--seized-from", default="")
        parser.add_argument("--seized-by", default="")
        parser.add_argument("--declared-md5", default="")
        parser.add_argument("--declared-sha1", default="")
        parser.add_argument("--declared-sha256", default="")

    def handle(self, *args, **options):
        try:
            user = User.objects.get(username=options["username"], is_active=True)
            case = Case.objects.get(reference=options["case"], organization_id=user.organization_id)
        except (User.DoesNotExist, Case.DoesNotExist):
            raise CommandError("No such user, or no such case in the user's organisation.") from None
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
            )
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"sealed {evidence.pk} {evidence.size} bytes format={evidence.format or 'unknown'}")
        self.stdout.write(f"md5    {evidence.md5}\nsha1   {evidence.sha1}\nsha256 {evidence.sha256}")
