"""The Django admin, for platform operators. It is deliberately narrow: case memberships and their object
permissions change only through the services (which audit them), and no staff member can grant
permissions — to themselves or anyone — from here."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction

from cases.models import ApiToken, Case, CaseMembership, IdentityProvider, Organization, SamlIdentity, User
from cases.saml.forms import EDITABLE_FIELDS, IdentityProviderForm
from cases.saml.services import identity_provider_saved


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "display_name", "organization", "is_org_admin", "is_active", "last_login"]
    list_filter = ["organization", "is_org_admin", "is_active"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Person", {"fields": ["display_name", "first_name", "last_name", "email"]}),
        ("Organisation", {"fields": ["organization", "is_org_admin", "is_active"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"fields": ["username", "organization", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined"]
    # No groups, user_permissions, is_staff or is_superuser here: permissions come from case roles.

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Organisation and administrator status lead to case permissions: only superusers set them.
            fields += ["organization", "is_org_admin"]
        return fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.pk == request.user.pk and not request.user.is_superuser:
            return False  # nobody edits their own account's powers here
        return super().has_change_permission(request, obj)


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["reference", "title", "organization", "status", "priority", "legal_hold"]
    list_filter = ["organization", "status"]


@admin.register(CaseMembership)
class CaseMembershipAdmin(ReadOnlyAdmin):
    list_display = ["case", "user", "role", "created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["user", "name", "prefix", "scope", "expires_at", "revoked_at"]
    exclude = ["key_hash"]


# Groups carry global permissions; Custodia grants permissions through case roles only.
admin.site.unregister(Group)


@admin.register(IdentityProvider)
class IdentityProviderAdmin(admin.ModelAdmin):
    """An organisation's SAML identity provider; every save is audited (``auth.saml.configure``)."""

    form = IdentityProviderForm
    fields = ["organization", *EDITABLE_FIELDS]
    list_display = ["name", "organization", "entity_id", "enabled"]
    list_select_related = ["organization"]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            identity_provider_saved(actor=request.user, idp=obj, changed=form.changed_data, created=not change)


@admin.register(SamlIdentity)
class SamlIdentityAdmin(ReadOnlyAdmin):
    list_display = ["name_id", "user", "identity_provider", "last_login_at"]
