import zoneinfo

from django import forms
from django.utils import timezone

from cases.times import time_zone_names
from evidence.models import RECORDED_FIELDS, EvidenceKind, SecretKind


class EvidenceRegisterForm(forms.Form):
    label = forms.CharField(max_length=200, help_text="A de-identified label, e.g. 'Laptop 1, internal SSD'.")
    kind = forms.ChoiceField(choices=EvidenceKind.choices)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    seized_from = forms.CharField(max_length=200, required=False)
    seized_by = forms.CharField(max_length=200, required=False)
    seized_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text="Read in the zone chosen below.",
    )
    seized_at_zone = forms.ChoiceField(
        label="Seized at, time zone",
        required=False,
        help_text="The zone the time above is read in; stored as an exact instant and shown with its zone.",
    )
    declared_md5 = forms.CharField(max_length=32, required=False, label="Declared MD5")
    declared_sha1 = forms.CharField(max_length=40, required=False, label="Declared SHA-1")
    declared_sha256 = forms.CharField(max_length=64, required=False, label="Declared SHA-256")
    exhibit_number = forms.CharField(max_length=100, required=False)
    bag_number = forms.CharField(max_length=100, required=False)
    seal_number = forms.CharField(max_length=100, required=False)
    make = forms.CharField(max_length=200, required=False)
    model = forms.CharField(max_length=200, required=False)
    serial_number = forms.CharField(max_length=200, required=False)
    acquisition_tool = forms.CharField(max_length=200, required=False, help_text="e.g. FTK Imager, ewfacquire")
    acquisition_tool_version = forms.CharField(max_length=100, required=False)
    examiner = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seized_at_zone"].choices = [(name, name) for name in time_zone_names()]
        # The signed-in user's zone (activated by cases.times.UserTimeZoneMiddleware) is the one offered.
        self.fields["seized_at_zone"].initial = timezone.get_current_timezone_name()

    def clean(self):
        data = super().clean()
        seized_at = data.get("seized_at")
        zone_name = data.get("seized_at_zone") or timezone.get_current_timezone_name()
        if seized_at is not None:
            # Django read the wall-clock time in the request's zone; read the same wall-clock time in the
            # zone the user chose instead.
            wall_clock = timezone.make_naive(seized_at, timezone.get_current_timezone())
            data["seized_at"] = timezone.make_aware(wall_clock, zoneinfo.ZoneInfo(zone_name))
        return data

    def service_arguments(self) -> dict:
        """The cleaned data as evidence_register's keyword arguments (the registration facts as ``recorded``)."""
        data = dict(self.cleaned_data)
        data.pop("seized_at_zone", None)
        recorded = {name: data.pop(name) for name in RECORDED_FIELDS}
        return {**data, "recorded": recorded}


class SecretEscrowForm(forms.Form):
    kind = forms.ChoiceField(choices=SecretKind.choices)
    name = forms.CharField(max_length=200, help_text="What it opens, e.g. 'C: volume'.")
    value = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), max_length=4096)
    key_file = forms.FileField(required=False, help_text="A BitLocker startup key (.BEK) instead of a value.")

    def clean(self):
        data = super().clean()
        if bool(data.get("value")) == bool(data.get("key_file")):
            raise forms.ValidationError("Give either a value or a key file.")
        return data
