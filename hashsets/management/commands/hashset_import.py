"""python manage.py hashset_import --organisation SLUG --name NAME --kind known-good|known-bad FILE"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cases.models import Organization
from custodia.errors import ServiceError
from hashsets.models import HashKind
from hashsets.services import hashset_import


class Command(BaseCommand):
    help = (
        "Import a hash set for an organisation: NSRL RDSv3 (SQLite) or legacy NSRLFile.txt, a CSV with md5/sha1/"
        "sha256 columns, or a plain list of hex digests. Traces already extracted are marked by a worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The hash set file")
        parser.add_argument("--organisation", "--organization", dest="organisation", required=True, help="Its slug")
        parser.add_argument("--name", required=True, help="The set's name, searched as hashset:<name>")
        parser.add_argument("--kind", required=True, choices=HashKind.values)

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["organisation"]).first()
        if organization is None:
            raise CommandError(f"No organisation has the slug {options['organisation']!r}.")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        try:
            with path.open("rb") as stream:
                hash_set = hashset_import(
                    actor=None,
                    organization=organization,
                    name=options["name"],
                    kind=options["kind"],
                    stream=stream,
                    path=str(path),
                    source_name=path.name,
                )
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"{hash_set.name}: {hash_set.entries} digests ({hash_set.source_format}), {hash_set.kind}")
