"""Thin API views for capture runs of Azure VM disks (#16): start one, follow it, list a case's runs."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.context import note_target
from cases import permissions as perms
from cases.selectors import case_get
from custodia.api import StrictSerializer, validated
from evidence.capture import selectors, services
from evidence.models import CaptureRun, CaptureStep


class CaptureStartSerializer(StrictSerializer):
    subscription_id = serializers.CharField(max_length=64)
    resource_group = serializers.CharField(max_length=90)
    vm_name = serializers.CharField(max_length=80)


class CaptureStepSerializer(serializers.ModelSerializer):
    disk = serializers.CharField(source="disk.name", default=None, read_only=True)
    label = serializers.SerializerMethodField()
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = CaptureStep
        fields = ["key", "label", "disk", "state", "started_at", "finished_at", "progress", "outcome", "error"]
        read_only_fields = fields

    def get_label(self, step: CaptureStep) -> str:
        return services.STEP_LABELS.get(step.key, step.key)


class CaptureRunSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    disks = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    class Meta:
        model = CaptureRun
        fields = [
            "id", "case", "subscription_id", "resource_group", "vm_name", "vm_id", "state", "error", "attempts",
            "requested_by", "created_at", "started_at", "finished_at", "disks", "steps",
        ]  # fmt: skip
        read_only_fields = fields

    def get_disks(self, run: CaptureRun) -> list[dict]:
        return [
            {"name": disk.name, "lun": disk.lun, "os_disk": disk.is_os_disk, "disk_id": disk.disk_id,
             "encrypted": bool(disk.encryption), "evidence": str(disk.evidence_id) if disk.evidence_id else None}
            for disk in selectors.capture_run_disks(run=run)
        ]  # fmt: skip

    def get_steps(self, run: CaptureRun) -> list[dict]:
        return CaptureStepSerializer(selectors.capture_run_steps(run=run), many=True).data


class CaseCapturesView(APIView):
    required_permission = perms.VIEW_EVIDENCE
    permission_by_method = {"post": perms.REGISTER_EVIDENCE}

    @extend_schema(responses=CaptureRunSerializer(many=True))
    def get(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.VIEW_EVIDENCE)
        runs = selectors.capture_runs_for_case(user=request.user, case=case)
        return Response(CaptureRunSerializer(runs, many=True).data)

    @extend_schema(request=CaptureStartSerializer, responses={202: CaptureRunSerializer})
    def post(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.REGISTER_EVIDENCE)
        run = services.capture_start(actor=request.user, case=case, **validated(CaptureStartSerializer, request.data))
        return Response(CaptureRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class CaseCaptureVmsView(APIView):
    """The pick list: the VMs of a resource group, when the organisation's identity may list them."""

    required_permission = perms.REGISTER_EVIDENCE

    @extend_schema(
        parameters=[OpenApiParameter("subscription_id", str), OpenApiParameter("resource_group", str)],
        responses={200: {"type": "object", "properties": {"vms": {"type": "array", "items": {"type": "string"}}}}},
    )
    def get(self, request, case_id: int):
        case = case_get(user=request.user, case_id=case_id, permission=perms.REGISTER_EVIDENCE)
        choices = services.capture_vm_choices(
            actor=request.user,
            case=case,
            subscription_id=request.query_params.get("subscription_id", ""),
            resource_group=request.query_params.get("resource_group", ""),
        )
        return Response({"vms": choices})


class CaptureDetailView(APIView):
    required_permission = perms.VIEW_EVIDENCE

    @extend_schema(responses=CaptureRunSerializer)
    def get(self, request, run_id):
        note_target(case_id=selectors.capture_case_id(run_id=run_id))
        run = selectors.capture_run_get(user=request.user, run_id=run_id)
        return Response(CaptureRunSerializer(run).data)
