"""Job health in the admin, read only: the watchdog and the runs write it."""

from django.contrib import admin

from project.admin_mixins import ReadOnlyAdminMixin
from tasks.models import Heartbeat, Incident, JobHealth


@admin.register(JobHealth)
class JobHealthAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "last_success_at",
        "last_started_at",
        "last_status",
        "last_trigger",
        "last_duration",
        "dispatch_failed_at",
        "catch_up_enqueued_at",
    )


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "beat_at", "host")


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("kind", "subject", "opened_at", "resolved_at", "alert_email", "recovery_email")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    date_hierarchy = "opened_at"
