"""Thin API views for extraction runs and traces."""

from __future__ import annotations

import re
from contextlib import ExitStack

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from custodia.errors import error_body
from evidence import selectors as evidence_selectors
from evidence.services.links import RangeNotSatisfiable, parse_range
from search import data as trace_data
from search import selectors, services
from search.api import serializers as s


def _evidence(request, evidence_id):
    request._request.audit_case_id = evidence_selectors.evidence_case_id(evidence_id=evidence_id)
    return evidence_selectors.evidence_get(user=request.user, evidence_id=evidence_id)


class EvidenceExtractView(APIView):
    @extend_schema(request=None, responses={202: s.ExtractionRunSerializer})
    def post(self, request, evidence_id):
        evidence = _evidence(request, evidence_id)
        run = services.extraction_start(actor=request.user, evidence=evidence)
        return Response(s.ExtractionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvidenceExtractionsView(APIView):
    @extend_schema(responses=s.ExtractionRunSerializer(many=True))
    def get(self, request, evidence_id):
        evidence = _evidence(request, evidence_id)
        return Response(s.ExtractionRunSerializer(selectors.extraction_runs(evidence=evidence), many=True).data)


class TraceDetailView(APIView):
    @extend_schema(responses=s.TraceSerializer)
    def get(self, request, case_id: int, trace_uid: str):
        return Response(s.TraceSerializer(selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)).data)


class TraceChildrenView(APIView):
    @extend_schema(responses=s.TraceSerializer(many=True))
    def get(self, request, case_id: int, trace_uid: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        return Response(s.TraceSerializer(selectors.trace_children(trace=trace), many=True).data)


class TraceSearchView(APIView):
    @extend_schema(request=s.SearchRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request, case_id: int):
        serializer = s.SearchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The query text goes into this request's audit row (the privacy model may transform it later).
        request._request.audit_details = {"query": data["query"][:2000]}
        return Response(selectors.traces_search(user=request.user, case_id=case_id, **data))


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

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The stream's bytes")})
    def get(self, request, case_id: int, trace_uid: str, stream: str):
        trace = selectors.trace_get(user=request.user, case_id=case_id, uid=trace_uid)
        entry = trace_data.stream_entry(trace=trace, stream=stream)
        range_header = request.headers.get("Range", "")
        details = {"stream": stream, "range": range_header[:100]}
        request._request.audit_details = details
        stack = ExitStack()
        try:
            file_object, size = stack.enter_context(trace_data.open_trace_stream(trace=trace, stream=stream))
            byte_range = parse_range(header=range_header, size=size)
        except RangeNotSatisfiable as exc:
            stack.close()
            return Response(
                error_body(exc.code, exc.detail.replace("evidence", "stream")),
                status=416,
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
        except BaseException:
            stack.close()
            raise
        start, end = byte_range if byte_range else (0, size - 1)
        length = max(0, end - start + 1)
        details["bytes"] = f"{start}-{end}/{size}" if size else "*/0"
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
