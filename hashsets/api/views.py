"""Thin API views of hash sets: list and read (any member of the organisation), import and delete
(its administrators)."""

from __future__ import annotations

import shutil
import tempfile

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from custodia.access import LOGGED_IN, ORG_ADMIN
from custodia.api import validated
from custodia.errors import Forbidden
from hashsets import selectors, services
from hashsets.api import serializers as s

COPY_CHUNK = 1 << 20


class RawBytesParser(BaseParser):
    """Accepts any body for the import; the view copies it from the request itself."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class HashSetsView(APIView):
    required_permission = LOGGED_IN  # the caller's own organisation's sets
    permission_by_method = {"post": ORG_ADMIN}
    parser_classes = [RawBytesParser]
    # The audit middleware spools the body before the view runs: no transaction waits on the client.
    audit_access = True

    @extend_schema(responses=s.HashSetSerializer(many=True))
    def get(self, request):
        return Response(s.HashSetSerializer(selectors.hashsets_for_user(user=request.user), many=True).data)

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[
            OpenApiParameter("name", str, required=True, description="searched as hashset:<name>"),
            OpenApiParameter("kind", str, required=True, enum=["known-good", "known-bad"]),
            OpenApiParameter("source_name", str, required=False, description="the file's name, for the record"),
        ],
        responses={201: s.HashSetSerializer},
    )
    def post(self, request):
        if not (request.user.is_org_admin and request.user.organization_id):
            raise Forbidden("Only an organisation administrator may import hash sets.")
        data = validated(s.HashSetImportSerializer, request.query_params.dict())
        # The body (already spooled) is copied to a file of its own: formats read it more than once, and an
        # NSRL RDSv3 database is opened by its name.
        with tempfile.NamedTemporaryFile(prefix="custodia-hashset-") as copy:
            shutil.copyfileobj(request._request, copy, COPY_CHUNK)
            copy.flush()
            hash_set = services.hashset_import(
                actor=request.user,
                organization=request.user.organization,
                name=data["name"],
                kind=data["kind"],
                stream=copy,
                path=copy.name,
                source_name=data["source_name"],
            )
        return Response(s.HashSetSerializer(hash_set).data, status=status.HTTP_201_CREATED)


class HashSetDetailView(APIView):
    required_permission = LOGGED_IN
    permission_by_method = {"delete": ORG_ADMIN}

    @extend_schema(responses=s.HashSetSerializer)
    def get(self, request, hash_set_id: int):
        return Response(s.HashSetSerializer(selectors.hashset_get(user=request.user, hash_set_id=hash_set_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, hash_set_id: int):
        hash_set = selectors.hashset_get(user=request.user, hash_set_id=hash_set_id)
        services.hashset_delete(actor=request.user, hash_set=hash_set)
        return Response(status=status.HTTP_204_NO_CONTENT)
