from django import forms

from evidence.models import RECORDED_FIELDS, EvidenceKind, SecretKind


class EvidenceRegisterForm(forms.Form):
    label = forms.CharField(max_length=200, help_text="A de-identified label, e.g. 'Laptop 1, internal SSD'.")
    kind = forms.ChoiceField(choices=EvidenceKind.choices)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    seized_from = forms.CharField(max_length=200, required=False)
    seized_by = forms.CharField(max_length=200, required=False)
    seized_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
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

    def service_arguments(self) -> dict:
        """The cleaned data as evidence_register's keyword arguments (the registration facts as ``recorded``)."""
        data = dict(self.cleaned_data)
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
