"""The folder tree of one evidence item (issue #20, item 3): its volumes, file systems and folders, read a
level at a time, and a folder's entries listed as a file manager lists them.

The traces already form the tree: each names its parent (``parent_uid``, indexed) and a child's uid is its
parent's plus ``-<ordinal>``, so "everything below a folder" is the query ``uid:<folder uid>-*`` (a prefix
match: linear, no backtracking), which the search page takes as is (:func:`folder_query`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from custodia.errors import NotFound
from evidence.models import Evidence
from search.models import Trace

# The trace types the tree shows: what holds other entries of the file system. Files (even an archive,
# whose members the content tools list) are entries of a folder, not branches of the tree.
TREE_TYPES = ("image", "volume", "encryptedVolume", "fileSystem", "folder")
# A level of the tree shows at most this many branches (a folder with more sub-folders says so; its
# listing pages through them all).
TREE_LEVEL_LIMIT = 1000
FOLDER_PAGE_SIZE = 100
# The word the tree shows for each kind of branch, by the first tree type a trace carries.
KIND_TITLES = {
    "image": "Image",
    "volume": "Volume",
    "encryptedVolume": "Encrypted volume",
    "fileSystem": "File system",
    "folder": "Folder",
}
ONLY_FILE = ["file"]


@dataclass(frozen=True)
class TreeNode:
    """One branch: ``entries`` its direct children (files and folders), ``deleted_entries`` those of them
    marked deleted, ``branches`` those that are branches themselves (it can be opened)."""

    uid: str
    name: str
    path: str
    kind: str
    deleted: bool
    entries: int
    deleted_entries: int
    branches: int

    @property
    def kind_title(self) -> str:
        return KIND_TITLES.get(self.kind, self.kind)

    @property
    def query(self) -> str:
        return folder_query(uid=self.uid)


def folder_query(*, uid: str) -> str:
    """The search query for everything below the trace ``uid`` (its descendants, at any depth)."""
    return f"uid:{uid}-*"


def _evidence_traces(evidence: Evidence) -> QuerySet[Trace]:
    return Trace.objects.filter(case_id=evidence.case_id, evidence=evidence)


def tree_trace(*, evidence: Evidence, uid: str) -> Trace:
    """A trace of ``evidence`` by uid (NotFound for another item's or an unknown uid)."""
    trace = _evidence_traces(evidence).filter(uid=uid).first()
    if trace is None:
        raise NotFound("No such trace in this evidence.")
    return trace


def tree_nodes(*, evidence: Evidence, parent_uid: str = "") -> tuple[list[TreeNode], bool]:
    """The branches directly below ``parent_uid`` (the root when empty), in the walk's order, with their
    counts; and whether the level had more than ``TREE_LEVEL_LIMIT``. The caller has checked access."""
    if parent_uid:
        tree_trace(evidence=evidence, uid=parent_uid)
    traces = _evidence_traces(evidence)
    # Files are most of a folder's entries: leaving them out in the database keeps a level's read small.
    rows = list(
        traces.filter(parent_uid=parent_uid)
        .exclude(types=ONLY_FILE)
        .order_by("ordinal")
        .values("uid", "name", "path", "types", "deleted")[: TREE_LEVEL_LIMIT * 2 + 1]
    )
    branches = [row for row in rows if any(kind in row["types"] for kind in TREE_TYPES)]
    more = len(branches) > TREE_LEVEL_LIMIT or len(rows) > TREE_LEVEL_LIMIT * 2
    branches = branches[:TREE_LEVEL_LIMIT]
    uids = [row["uid"] for row in branches]
    counts = {
        row["parent_uid"]: row
        for row in traces.filter(parent_uid__in=uids)
        .values("parent_uid")
        .annotate(entries=Count("pk"), deleted_entries=Count("pk", filter=Q(deleted=True)))
    }
    below = {
        row["parent_uid"]: row["n"]
        for row in traces.filter(parent_uid__in=uids)
        .exclude(types=ONLY_FILE)
        .values("parent_uid")
        .annotate(n=Count("pk"))
    }
    nodes = [
        TreeNode(
            uid=row["uid"],
            name=row["name"],
            path=row["path"],
            kind=next(kind for kind in TREE_TYPES if kind in row["types"]),
            deleted=row["deleted"],
            entries=counts.get(row["uid"], {}).get("entries", 0),
            deleted_entries=counts.get(row["uid"], {}).get("deleted_entries", 0),
            branches=below.get(row["uid"], 0),
        )
        for row in branches
    ]
    return nodes, more


@dataclass(frozen=True)
class FolderEntry:
    """One row of a folder listing: what a file manager shows."""

    uid: str
    name: str
    size: float | None
    modified: str
    created: str
    accessed: str
    type: str
    is_folder: bool
    deleted: bool
    tags: list[str]


def folder_entries(*, evidence: Evidence, uid: str, page: int = 1) -> dict[str, Any]:
    """One page of the entries of the folder (or volume, file system) ``uid``: name, size, times, type
    and tags, in the walk's order; with the folder itself, its ancestors for a breadcrumb and the paging."""
    folder = tree_trace(evidence=evidence, uid=uid)
    page = max(1, page)
    start = (page - 1) * FOLDER_PAGE_SIZE
    children = list(
        _evidence_traces(evidence)
        .filter(parent_uid=uid)
        .order_by("ordinal")
        .prefetch_related("tags")[start : start + FOLDER_PAGE_SIZE + 1]
    )
    entries = [
        FolderEntry(
            uid=child.uid,
            name=child.name,
            size=child.file_size if "folder" not in child.types else None,
            modified=str(child.properties.get("file.modifiedOn") or ""),
            created=str(child.properties.get("file.createdOn") or ""),
            accessed=str(child.properties.get("file.accessedOn") or ""),
            type=child.mime_type or ", ".join(child.types),
            is_folder=any(kind in child.types for kind in TREE_TYPES),
            deleted=child.deleted,
            tags=sorted(tag.name for tag in child.tags.all()),
        )
        for child in children[:FOLDER_PAGE_SIZE]
    ]
    return {
        "folder": folder,
        "ancestors": _ancestors(evidence=evidence, trace=folder),
        "entries": entries,
        "page": page,
        "has_next": len(children) > FOLDER_PAGE_SIZE,
        "query": folder_query(uid=folder.uid),
    }


def _ancestors(*, evidence: Evidence, trace: Trace) -> list[Trace]:
    """The traces above ``trace``, root first (one query: the uids are prefixes of its own)."""
    evidence_id, _, segments = trace.uid.partition(":")
    parts = segments.split("-")
    uids = [f"{evidence_id}:{'-'.join(parts[:depth])}" for depth in range(1, len(parts))]
    found = {t.uid: t for t in _evidence_traces(evidence).filter(uid__in=uids).only("uid", "name")}
    return [found[uid] for uid in uids if uid in found]
