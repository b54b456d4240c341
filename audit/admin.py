from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only, and only as stored: actor, address and tagged details replaced by the privacy model
    (docs/privacy.md). Nothing here decrypts; the clear value is re-identification's, with a second person."""

    list_display = ["sequence", "occurred_at", "actor", "action", "target_type", "target_id", "outcome"]
    list_filter = ["outcome", "action"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
