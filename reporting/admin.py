from django.contrib import admin

from project.admin_mixins import ReadOnlyAdminMixin
from reporting.models import CommissionReport, CommissionReportLine


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
    )
    list_filter = ("year", "month", "trigger")
    date_hierarchy = "generated_at"
    inlines = [CommissionReportLineInline]
