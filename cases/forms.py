from django import forms

from cases.models import CasePriority, CaseStatus, Role


class CaseCreateForm(forms.Form):
    reference = forms.CharField(max_length=60, help_text="Your organisation's case number, e.g. 2026-0042.")
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    priority = forms.ChoiceField(choices=CasePriority.choices, initial=CasePriority.NORMAL)
    retention_until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    legal_hold = forms.BooleanField(required=False)


class CaseEditForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    status = forms.ChoiceField(choices=CaseStatus.choices)
    priority = forms.ChoiceField(choices=CasePriority.choices)
    retention_until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    legal_hold = forms.BooleanField(required=False)


class MemberAddForm(forms.Form):
    user = forms.ChoiceField(label="User")
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].choices = [(u.username, f"{u} ({u.username})") for u in candidates]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.CharField(required=False, help_text="An action or a prefix, e.g. case.")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any"), ("ok", "ok"), ("denied", "denied"), ("failed", "failed")]
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
