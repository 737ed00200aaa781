from django.contrib import admin

from auditing.models import AuditEntry, VerificationRun
from project.admin_mixins import ReadOnlyAdminMixin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every verify_audit_trail run, read-only: a record of what was checked and found."""

    list_display = (
        "started_at",
        "trigger",
        "checked_range",
        "entries_checked",
        "intact",
        "violation_count",
    )
    list_filter = ("intact", "trigger")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)

    @admin.display(description="range")
    def checked_range(self, run: VerificationRun) -> str:
        if run.full:
            return "entire chain"
        return f"{run.range_start} to {run.range_end}"

    @admin.display(description="violations")
    def violation_count(self, run: VerificationRun) -> int:
        return len(run.violations)
