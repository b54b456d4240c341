from django import forms
from django.utils.html import format_html, format_html_join

from audit.actions import filter_choices
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
    reason = forms.CharField(
        max_length=500,
        required=False,
        help_text="Needed to shorten the retention date or lift the legal hold; it goes into the audit trail.",
    )

    PROTECTION_FIELDS = ("retention_until", "legal_hold", "reason")

    def __init__(self, *args, may_change_protection: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not may_change_protection:
            # Retention and hold are the custodian's: the form of anyone else neither shows nor sends them.
            for name in self.PROTECTION_FIELDS:
                del self.fields[name]


class MemberAddForm(forms.Form):
    user = forms.ChoiceField(label="User")
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].choices = [(u.username, f"{u} ({u.username})") for u in candidates]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SuggestingTextInput(forms.TextInput):
    """A text box that offers a list of values (an HTML datalist) and still takes any text, such as a prefix."""

    def __init__(self, *, list_id: str, suggestions, attrs=None):
        super().__init__(attrs={**(attrs or {}), "list": list_id})
        self.list_id = list_id
        self.suggestions = suggestions

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, value, attrs, renderer)
        options = format_html_join("", '<option value="{}">', ((value,) for value in self.suggestions()))
        return format_html('{}<datalist id="{}">{}</datalist>', box, self.list_id, options)


def _action_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in filter_choices()]


class AuditFilterForm(forms.Form):
    events = forms.ChoiceField(
        required=False,
        choices=[("", "custody events"), ("all", "all events")],
        help_text="Custody events and every refusal, or every event (reads included).",
    )
    actions = forms.MultipleChoiceField(
        required=False,
        choices=_action_choices,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Any of these actions (the registered ones).",
    )
    actor = forms.CharField(required=False)
    action = forms.CharField(
        required=False,
        label="Action prefix",
        help_text="An action or a prefix, e.g. case.",
        widget=SuggestingTextInput(list_id="audit-actions", suggestions=filter_choices),
    )
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any"), ("ok", "ok"), ("denied", "denied"), ("failed", "failed")]
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class UserCreateForm(forms.Form):
    """A new user of the administrator's organisation. Without a password, the page gives a one-time link
    where the user sets their own."""

    username = forms.RegexField(
        regex=r"^[\w.@+-]{2,150}$",
        max_length=150,
        help_text="What they sign in with: letters, digits and . @ + - _",
        error_messages={"invalid": "Use 2 to 150 letters, digits or . @ + - _"},
    )
    display_name = forms.CharField(max_length=200, required=False, label="Name")
    email = forms.EmailField(required=False)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to give them a one-time link where they choose their own.",
    )
    is_org_admin = forms.BooleanField(required=False, label="Organisation administrator")
    can_open_cases = forms.BooleanField(required=False, label="May open cases")
