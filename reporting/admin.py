from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from project.admin_mixins import ReadOnlyAdminMixin
from reporting.models import CommissionReport, CommissionReportDelivery, CommissionReportLine


class CommissionReportLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CommissionReportLine
    fields = (
        "agent_code",
        "agent_name",
        "transactions",
        "tax_collected",
        "commission_earned",
        "pending_amount",
        "paid_amount",
        "cancelled_amount",
    )
    extra = 0


class CommissionReportDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Who the report was sent to, by which run, with the email that carried it (its status
    is on the email's page)."""

    model = CommissionReportDelivery
    fields = ("address", "trigger", "requested_at", "resend", "email")
    verbose_name = _("delivery")
    verbose_name_plural = _("Sent to (each address once, unless resent on purpose)")
    extra = 0


@admin.register(CommissionReport)
class CommissionReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "trigger",
        "generated_at",
        "transactions",
        "tax_collected",
        "commissions_total",
        "pending_amount",
        "paid_amount",
        "cancelled_amount",
        "currency",
        "duplicate_of",
    )
    list_filter = ("year", "month", "trigger")
    date_hierarchy = "generated_at"
    inlines = [CommissionReportDeliveryInline, CommissionReportLineInline]
