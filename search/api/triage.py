"""Triage over the API (issue #20): the folder tree (item 3), ``GET /api/evidence/{id}/tree?parent=<trace
uid>``, a folder's entries, ``GET /api/evidence/{id}/tree/entries?folder=<trace uid>&page=N``, and a case
at a glance (item 12), ``GET /api/cases/{id}/overview``."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import permissions as perms
from cases.selectors import case_get
from custodia.api import evidence_for_request
from custodia.errors import ServiceError
from search import overview, tree

MAX_UID_LENGTH = 400  # Trace.uid's column


class TreeNodeSerializer(serializers.Serializer):
    uid = serializers.CharField()
    name = serializers.CharField()
    path = serializers.CharField()
    kind = serializers.CharField(help_text="image, volume, encryptedVolume, fileSystem or folder")
    deleted = serializers.BooleanField()
    entries = serializers.IntegerField(help_text="Direct children: files and folders")
    deleted_entries = serializers.IntegerField()
    branches = serializers.IntegerField(help_text="Direct children that are branches themselves")
    query = serializers.CharField(help_text="The search query for everything below this branch")


class TreeLevelSerializer(serializers.Serializer):
    parent = serializers.CharField(allow_null=True)
    nodes = TreeNodeSerializer(many=True)
    more = serializers.BooleanField(help_text=f"More than {tree.TREE_LEVEL_LIMIT} branches: list the folder")


class FolderEntrySerializer(serializers.Serializer):
    uid = serializers.CharField()
    name = serializers.CharField()
    size = serializers.FloatField(allow_null=True)
    modified = serializers.CharField()
    created = serializers.CharField()
    accessed = serializers.CharField()
    type = serializers.CharField()
    is_folder = serializers.BooleanField()
    deleted = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField())


class FolderPageSerializer(serializers.Serializer):
    folder = serializers.CharField()
    path = serializers.CharField()
    query = serializers.CharField()
    page = serializers.IntegerField()
    has_next = serializers.BooleanField()
    entries = FolderEntrySerializer(many=True)


def trace_uid_parameter(value: str | None, *, name: str, required: bool) -> str:
    """A trace uid from the query string: bounded, printable; a clear 400 otherwise."""
    value = (value or "").strip()
    if not value:
        if required:
            raise ServiceError(f"{name}: give a trace uid.")
        return ""
    if len(value) > MAX_UID_LENGTH or not value.isprintable():
        raise ServiceError(f"{name}: not a trace uid.")
    return value


def page_parameter(value: str | None) -> int:
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise ServiceError("page: a whole number from 1.")
    return int(value)


class EvidenceTreeView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(
        parameters=[OpenApiParameter("parent", str, description="A branch's trace uid; none: the top level")],
        responses=TreeLevelSerializer,
    )
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.SEARCH_TRACES)
        parent = trace_uid_parameter(request.query_params.get("parent"), name="parent", required=False)
        nodes, more = tree.tree_nodes(evidence=evidence, parent_uid=parent)
        body = {"parent": parent or None, "nodes": [{**asdict(n), "query": n.query} for n in nodes], "more": more}
        return Response(TreeLevelSerializer(body).data)


class EvidenceFolderEntriesView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(
        parameters=[
            OpenApiParameter("folder", str, required=True, description="The branch's trace uid"),
            OpenApiParameter("page", int, description=f"Pages of {tree.FOLDER_PAGE_SIZE} entries, from 1"),
        ],
        responses=FolderPageSerializer,
    )
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id, perms.SEARCH_TRACES)
        folder = trace_uid_parameter(request.query_params.get("folder"), name="folder", required=True)
        listing = tree.folder_entries(
            evidence=evidence, uid=folder, page=page_parameter(request.query_params.get("page"))
        )
        body = {
            "folder": listing["folder"].uid,
            "path": listing["folder"].path,
            "query": listing["query"],
            "page": listing["page"],
            "has_next": listing["has_next"],
            "entries": [asdict(entry) for entry in listing["entries"]],
        }
        return Response(FolderPageSerializer(body).data)


class AttentionSerializer(serializers.Serializer):
    text = serializers.CharField()
    url = serializers.CharField(help_text="The page where it is done (empty for a 'more like these' line)")
    kind = serializers.CharField()


class CaseOverviewSerializer(serializers.Serializer):
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="evidence, traces, tagged, pending_approvals, locked_volumes: those the caller's role shows",
    )
    attention = AttentionSerializer(many=True)


class CaseOverviewView(APIView):
    required_permission = perms.VIEW_CASE

    @extend_schema(responses=CaseOverviewSerializer)
    def get(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.VIEW_CASE)
        body = overview.case_overview(user=request.user, case=case)
        return Response(
            CaseOverviewSerializer({"counts": body["counts"], "attention": [asdict(a) for a in body["attention"]]}).data
        )
