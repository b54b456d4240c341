"""Hash set reads: an organisation's sets, and the look-up extraction and marking make per batch."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from cases.models import User
from custodia.errors import NotFound
from hashsets.models import HashEntry, HashSet, HashSetState

# Digests per look-up query: within every database's limit on parameters (SQLite's is 32766).
LOOKUP_CHUNK = 5_000


def hashsets_for_user(*, user: User) -> QuerySet[HashSet]:
    """The sets of the user's organisation (every member sees them; only administrators change them)."""
    if not user.is_authenticated or user.organization_id is None:
        return HashSet.objects.none()
    return HashSet.objects.filter(organization_id=user.organization_id).order_by("name")


def hashset_get(*, user: User, hash_set_id: int) -> HashSet:
    try:
        return hashsets_for_user(user=user).get(pk=hash_set_id)
    except (HashSet.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such hash set.") from None


def ready_hash_sets(*, organization_id: int) -> list[HashSet]:
    """The organisation's sets a look-up consults: those imported."""
    return list(
        HashSet.objects.filter(organization_id=organization_id, state=HashSetState.READY).only(
            "id", "kind", "algorithms"
        )
    )


def hash_sets_holding(
    *, hash_set_ids: Iterable[int], digests: Iterable[tuple[int, bytes]], algorithms: Iterable[int] | None = None
) -> dict[tuple[int, bytes], set[int]]:
    """Which of the sets hold each digest: ``(algorithm, digest)`` → set ids, for the digests some set
    holds. One query per algorithm and ``LOOKUP_CHUNK`` digests, each answered by the (algorithm, digest,
    set) index alone; ``algorithms``: the only ones the sets hold digests of (None: any)."""
    set_ids = list(hash_set_ids)
    asked = None if algorithms is None else set(algorithms)
    by_algorithm: dict[int, set[bytes]] = {}
    for algorithm, digest in digests:
        if asked is None or algorithm in asked:
            by_algorithm.setdefault(algorithm, set()).add(digest)
    found: dict[tuple[int, bytes], set[int]] = {}
    if not set_ids:
        return found
    for algorithm, wanted in by_algorithm.items():
        ordered = sorted(wanted)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            rows = HashEntry.objects.filter(
                algorithm=algorithm, digest__in=ordered[start : start + LOOKUP_CHUNK], hash_set_id__in=set_ids
            ).values_list("digest", "hash_set_id")
            for digest, hash_set_id in rows:
                found.setdefault((algorithm, bytes(digest)), set()).add(hash_set_id)
    return found
