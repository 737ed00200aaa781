from django.contrib import admin

from auditing.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the chain is append-only."""

    list_display = ("sequence", "timestamp", "action", "actor_name", "subject", "short_hash")
    list_filter = ("action", "actor_name", "timestamp")
    search_fields = ("=sequence", "action", "actor_name", "subject_id", "current_hash")
    date_hierarchy = "timestamp"
    ordering = ("-sequence",)
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="subject")
    def subject(self, entry: AuditEntry) -> str:
        return f"{entry.subject_type} {entry.subject_id}".strip()

    @admin.display(description="hash")
    def short_hash(self, entry: AuditEntry) -> str:
        return entry.current_hash[:12]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
