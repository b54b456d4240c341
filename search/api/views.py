"""Thin API views for extraction runs and traces."""

from __future__ import annotations

import re
from contextlib import ExitStack

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.context import add_details
from audit.privacy import Tagged
from cases import permissions as perms
from cases.selectors import case_get
from custodia.api import evidence_for_request, validated
from custodia.errors import error_body
from custodia.http_range import RangeNotSatisfiable, parse_range
from custodia.pagination import Pagination
from search import collaboration, completion, events, selectors, services
from search import data as trace_data
from search.api import serializers as s


class EvidenceExtractView(APIView):
    required_permission = perms.EXTRACT_EVIDENCE  # checked by extraction_start

    @extend_schema(request=None, responses={202: s.ExtractionRunSerializer})
    def post(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id)
        run = services.extraction_start(actor=request.user, evidence=evidence)
        return Response(s.ExtractionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvidenceExtractionsView(APIView):
    required_permission = perms.VIEW_EVIDENCE

    @extend_schema(responses=s.ExtractionRunSerializer(many=True))
    def get(self, request, evidence_id):
        evidence = evidence_for_request(request, evidence_id)
        return Response(s.ExtractionRunSerializer(selectors.extraction_runs(evidence=evidence), many=True).data)


class TraceDetailView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(responses=s.TraceSerializer)
    def get(self, request, case_id: int, trace_uid: str):
        return Response(s.TraceSerializer(selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)).data)


class TraceChildrenView(APIView):
    """A folder may hold a hundred thousand traces: its children come a page at a time (limit, offset)."""

    required_permission = perms.SEARCH_TRACES

    pagination_class = Pagination

    @extend_schema(responses=s.TraceSerializer(many=True))
    def get(self, request, case_id: int, trace_uid: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        paginator = self.pagination_class()
        children = selectors.trace_children(trace=trace).prefetch_related("tags")
        page = paginator.paginate_queryset(children, request, view=self)
        return paginator.get_paginated_response(s.TraceSerializer(page, many=True).data)


class TraceSearchView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(request=s.SearchRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        data = validated(s.SearchRequestSerializer, request.data)
        # The query text goes into this request's audit row (the privacy model may transform it later).
        add_details(query=Tagged("query", data["query"][:2000]))
        return Response(selectors.traces_search(user=request.user, case_id=case_id, **data))


class TraceValuesView(APIView):
    """The unique values of one property over the hits of a query, with their counts (issue #20 item 7)."""

    required_permission = perms.SEARCH_TRACES

    @extend_schema(request=s.TraceValuesRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        data = validated(s.TraceValuesRequestSerializer, request.data)
        add_details(query=Tagged("query", data["query"][:2000]), property=data["property"])
        case = case_get(user=request.user, case_id=case_id, permission=perms.SEARCH_TRACES)
        node = selectors.query_parse(data["query"])
        values = selectors.property_values(case_id=case.pk, node=node, name=data["property"], limit=data["limit"])
        return Response({"property": data["property"], "values": values})


class TraceCompleteView(APIView):
    """What the search box's current term may become: fields, the case's property names and tags."""

    required_permission = perms.SEARCH_TRACES

    @extend_schema(
        parameters=[OpenApiParameter("prefix", str, description="The term being typed, e.g. email.s or tag:rel")],
        responses={200: {"type": "object"}},
    )
    def get(self, request, case_id: int):
        prefix = request.query_params.get("prefix", "")
        add_details(prefix=prefix[:200])
        found = completion.trace_completions(user=request.user, case_id=case_id, prefix=prefix)
        return Response({"prefix": prefix, "completions": found})


_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_BLOCK = 1 << 20


def _stream_bytes(*, stack: ExitStack, file_object, start: int, length: int):
    with stack:
        file_object.seek(start)
        left = length
        while left > 0:
            block = file_object.read(min(_BLOCK, left))
            if not block:
                break
            left -= len(block)
            yield block


def _download_name(*, trace, stream: str) -> str:
    name = trace.name or "trace"
    return name if stream == "raw" else f"{name}.{stream}"


class TraceDataView(APIView):
    """The bytes of one stream of a trace, from the sealed container (one HTTP range: 206, or 416).

    Always an attachment with ``nosniff``: nothing read from evidence is rendered or run by the browser."""

    required_permission = perms.SEARCH_TRACES

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The stream's bytes")})
    def get(self, request, case_id: int, trace_uid: str, stream: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        entry = trace_data.stream_entry(trace=trace, stream=stream)
        range_header = request.headers.get("Range", "")
        add_details(stream=stream, range=range_header[:100])
        stack = ExitStack()
        try:
            file_object, size = stack.enter_context(trace_data.open_trace_stream(trace=trace, stream=stream))
            byte_range = parse_range(header=range_header, size=size, what="stream")
        except RangeNotSatisfiable as exc:
            stack.close()
            return Response(
                error_body(exc.code, exc.detail),
                status=416,
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
        except BaseException:
            stack.close()
            raise
        start, end = byte_range if byte_range else (0, size - 1)
        length = max(0, end - start + 1)
        add_details(bytes=f"{start}-{end}/{size}" if size else "*/0")
        mime_type = (entry.get("mime_type") or "").split(";")[0].strip().lower()
        response = StreamingHttpResponse(
            _stream_bytes(stack=stack, file_object=file_object, start=start, length=length),
            status=206 if byte_range else 200,
            content_type=mime_type if _MIME.match(mime_type) else "application/octet-stream",
            headers={
                "Content-Length": str(length),
                "Accept-Ranges": "bytes",
                "Content-Disposition": content_disposition_header(
                    as_attachment=True, filename=_download_name(trace=trace, stream=stream)
                ),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-store",
            },
        )
        if entry.get("sha256"):
            response["X-Content-SHA256"] = entry["sha256"]
        if byte_range:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response


# Collaboration: tags, notes, bulk tagging, saved searches and CSV export (search/collaboration.py).


class TraceTagView(APIView):
    required_permission = perms.ANNOTATE_TRACES

    @extend_schema(request=None, responses={200: {"type": "object"}})
    def put(self, request, case_id: int, trace_uid: str, tag: str):
        found = collaboration.tag_add(actor=request.user, case_id=case_id, uid=trace_uid, tag=tag)
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        return Response({"tag": found.name, "tags": selectors.trace_tags(trace=trace)})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, case_id: int, trace_uid: str, tag: str):
        collaboration.tag_remove(actor=request.user, case_id=case_id, uid=trace_uid, tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TraceNotesView(APIView):
    required_permission = perms.SEARCH_TRACES
    permission_by_method = {"post": perms.ANNOTATE_TRACES}

    @extend_schema(responses=s.TraceNoteSerializer(many=True))
    def get(self, request, case_id: int, trace_uid: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        return Response(s.TraceNoteSerializer(selectors.trace_notes(trace=trace), many=True).data)

    @extend_schema(request=s.NoteRequestSerializer, responses={201: s.TraceNoteSerializer})
    def post(self, request, case_id: int, trace_uid: str):
        data = validated(s.NoteRequestSerializer, request.data)
        note = collaboration.note_add(actor=request.user, case_id=case_id, uid=trace_uid, text=data["text"])
        return Response(s.TraceNoteSerializer(note).data, status=status.HTTP_201_CREATED)


class TraceBulkTagView(APIView):
    required_permission = perms.ANNOTATE_TRACES

    @extend_schema(request=s.BulkTagRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        data = validated(s.BulkTagRequestSerializer, request.data)
        result = collaboration.tags_bulk_add(
            actor=request.user, case_id=case_id, tag=data["tag"], query=data.get("query"), uids=data.get("uids")
        )
        return Response(result)


class SavedSearchesView(APIView):
    required_permission = perms.SEARCH_TRACES
    permission_by_method = {"post": perms.ANNOTATE_TRACES}

    @extend_schema(responses=s.SavedSearchSerializer(many=True))
    def get(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.SEARCH_TRACES)
        return Response(s.SavedSearchSerializer(selectors.saved_searches(case=case), many=True).data)

    @extend_schema(request=s.SavedSearchSerializer, responses={201: s.SavedSearchSerializer})
    def post(self, request, case_id: int):
        data = validated(s.SavedSearchSerializer, request.data)
        saved = collaboration.saved_search_save(actor=request.user, case_id=case_id, **data)
        return Response(s.SavedSearchSerializer(saved).data, status=status.HTTP_201_CREATED)


class SavedSearchDetailView(APIView):
    required_permission = perms.ANNOTATE_TRACES

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, case_id: int, saved_search_id: int):
        collaboration.saved_search_delete(actor=request.user, case_id=case_id, saved_search_id=saved_search_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TraceExportView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="The query; empty exports every trace")],
        responses={(200, "text/csv"): str},
    )
    def get(self, request, case_id: int):
        content = collaboration.traces_export_csv(actor=request.user, case_id=case_id, query=request.GET.get("q", ""))
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="case-{int(case_id)}-traces.csv"'
        return response


# The events timeline (issue #20 item 5, search/events.py).


class EventsSearchView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(request=s.EventsSearchRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        data = validated(s.EventsSearchRequestSerializer, request.data)
        add_details(query=Tagged("query", data["query"][:2000]))
        order = data.pop("order")
        return Response(events.events_search(user=request.user, case_id=case_id, descending=order == "desc", **data))


class EventsExportView(APIView):
    required_permission = perms.SEARCH_TRACES

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="The query; empty: the events of every trace"),
            OpenApiParameter("start", str, description="From this day or moment (UTC), included"),
            OpenApiParameter("end", str, description="To this day (included) or moment (excluded)"),
            OpenApiParameter("kind", str, many=True, description="Only these kinds (modified, sent, …)"),
        ],
        responses={(200, "text/csv"): str},
    )
    def get(self, request, case_id: int):
        content = events.events_export_csv(
            actor=request.user,
            case_id=case_id,
            query=request.GET.get("q", "")[:4096],
            start=request.GET.get("start") or None,
            end=request.GET.get("end") or None,
            kinds=[kind[:60] for kind in request.GET.getlist("kind")[:20]] or None,
        )
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="case-{int(case_id)}-events.csv"'
        return response
