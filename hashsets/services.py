"""Hash set services: the only code that writes hash sets (import, delete), each with its audit row.

An import reads the file once, inserting its digests in batches of ``BATCH_ENTRIES``, each batch its own
short transaction (no transaction spans the reading of the file, which on SQLite would hold the one write
lock); the set is ``importing`` meanwhile and found by no look-up, ``ready`` once its last batch and its
audit row commit. A file that turns out not to be a hash set drops what was inserted and is refused.
"""

from __future__ import annotations

from typing import BinaryIO

from django.db import connection, transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit_record
from cases.models import Organization, User
from custodia.errors import Conflict, Forbidden, ServiceError
from hashsets.formats import HashFileError, open_hash_file
from hashsets.models import HASH_SET_NAME_MAX_LENGTH, HashEntry, HashKind, HashSet, HashSetState
from hashsets.signals import hashset_imported

# Digests per transaction: large enough that commits cost little, small enough to hold the lock briefly.
BATCH_ENTRIES = 50_000


def _check_admin(*, actor: User | None, organization: Organization) -> None:
    # None: the management command, run by whoever runs the server.
    if actor is not None and not (actor.is_org_admin and actor.organization_id == organization.pk):
        raise Forbidden("Only an administrator of the organisation may import or delete hash sets.")


def hashset_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a hash set (it is what ``hashset:<name>`` searches by), or None."""
    if not name or len(name) > HASH_SET_NAME_MAX_LENGTH:
        return f"A hash set's name is 1 to {HASH_SET_NAME_MAX_LENGTH} characters long."
    if not all(character.isalnum() or character in "-_." for character in name):
        return "A hash set's name holds letters, digits, '-', '_' and '.' only (it is searched as hashset:<name>)."
    return None


def _insert_batch(*, hash_set_id: int, batch: list[tuple[int, bytes]]) -> None:
    table = HashEntry._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: one round trip for the batch, no statement per row.
            with (
                connection.wrap_database_errors,
                connection.connection.cursor() as raw,
                raw.copy(f"COPY {table} (hash_set_id, algorithm, digest) FROM STDIN") as copy,
            ):
                for algorithm, digest in batch:
                    copy.write_row((hash_set_id, algorithm, digest))
        else:
            cursor.executemany(
                f"INSERT INTO {table} (hash_set_id, algorithm, digest) VALUES (%s, %s, %s)",  # noqa: S608 - our table
                [(hash_set_id, algorithm, digest) for algorithm, digest in batch],
            )


def hashset_import(
    *,
    actor: User | None,
    organization: Organization,
    name: str,
    kind: str,
    stream: BinaryIO,
    path: str | None = None,
    source_name: str = "",
) -> HashSet:
    """Import a hash set file (NSRL RDSv3 or legacy CSV, a CSV with hash columns, or a plain list) as the
    organisation's set ``name`` of ``kind`` (known-good or known-bad); ``path``, where the stream's bytes are
    on disk if they are (formats.open_hash_file). Traces already extracted in the
    organisation's cases are marked afterwards, by a task (``hashset_imported``)."""
    _check_admin(actor=actor, organization=organization)
    if error := hashset_name_error(name):
        raise ServiceError(error, code="invalid_name")
    if kind not in HashKind.values:
        raise ServiceError(f"kind must be one of {', '.join(HashKind.values)}.", code="invalid_kind")
    with transaction.atomic():
        if HashSet.objects.filter(organization=organization, name__iexact=name).exists():
            raise Conflict(f"The organisation already has a hash set named {name}.", code="name_taken")
        hash_set = HashSet.objects.create(
            organization=organization, name=name, kind=kind, created_by=actor, source_name=source_name[:300]
        )
    entries = 0
    algorithms: set[int] = set()
    try:
        hash_file = open_hash_file(stream, path=path)
        batch: list[tuple[int, bytes]] = []
        for digest in hash_file.digests:
            batch.append(digest)
            if len(batch) >= BATCH_ENTRIES:
                _insert_batch(hash_set_id=hash_set.pk, batch=batch)
                entries += len(batch)
                algorithms.update(algorithm for algorithm, _ in batch)
                batch = []
        if batch:
            _insert_batch(hash_set_id=hash_set.pk, batch=batch)
            entries += len(batch)
            algorithms.update(algorithm for algorithm, _ in batch)
        if not entries:
            raise HashFileError("the file lists no digest")
    except HashFileError as error:
        _discard(hash_set=hash_set, actor=actor, reason=str(error))
        raise ServiceError(f"This is not a hash set Custodia reads: {error}.", code="invalid_hash_set") from None
    except BaseException:
        _discard(hash_set=hash_set, actor=actor, reason="the import was interrupted")
        raise
    with transaction.atomic():
        hash_set.entries = entries
        hash_set.algorithms = sorted(algorithms)
        hash_set.source_format = hash_file.format
        hash_set.state = HashSetState.READY
        hash_set.imported_at = timezone.now()
        hash_set.save(update_fields=["entries", "algorithms", "source_format", "state", "imported_at"])
        audit_record(
            action="hashset.import",
            actor=actor,
            organization_id=organization.pk,
            target_type="hashset",
            target_id=hash_set.pk,
            details={"name": name, "kind": kind, "entries": entries, "format": hash_file.format},
        )
        transaction.on_commit(lambda: hashset_imported.send(sender=HashSet, hash_set=hash_set))
    return hash_set


def _discard(*, hash_set: HashSet, actor: User | None, reason: str) -> None:
    """A failed import leaves no digest behind, and a row in the trail saying it failed."""
    with transaction.atomic():
        HashEntry.objects.filter(hash_set=hash_set).delete()
        audit_record(
            action="hashset.import",
            actor=actor,
            outcome=Outcome.FAILED,
            organization_id=hash_set.organization_id,
            target_type="hashset",
            target_id=hash_set.pk,
            details={"name": hash_set.name, "kind": hash_set.kind, "failure": reason[:300]},
        )
        hash_set.delete()


def hashset_delete(*, actor: User | None, hash_set: HashSet) -> None:
    """Delete a set, its digests and (by cascade, in search) its marks on traces."""
    _check_admin(actor=actor, organization=hash_set.organization)
    with transaction.atomic():
        HashEntry.objects.filter(hash_set=hash_set).delete()
        audit_record(
            action="hashset.delete",
            actor=actor,
            organization_id=hash_set.organization_id,
            target_type="hashset",
            target_id=hash_set.pk,
            details={"name": hash_set.name, "kind": hash_set.kind, "entries": hash_set.entries},
        )
        hash_set.delete()
