from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from payments.money import format_money
from project.admin_mixins import ReadOnlyAdminMixin, WideListMixin
from reporting.exports import commission_report_csv_download, commission_report_xlsx
from reporting.figures import LINE_AMOUNTS
from reporting.models import CommissionReport, CommissionReportDelivery
from reporting.periods import period_key
from reporting.selectors import commission_report_figures

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class CommissionReportDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Who the report was sent to, by which run, with the email that carried it (its status
    is on the email's page)."""

    model = CommissionReportDelivery
    fields = ("address", "trigger", "requested_at", "resend", "email")
    verbose_name = _("delivery")
    verbose_name_plural = _("Sent to (each address once, unless resent on purpose)")
    extra = 0


@admin.register(CommissionReport)
class CommissionReportAdmin(WideListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Counts and amounts by status are on the report's page; the list finds the month.
    list_display = (
        "__str__",
        "trigger",
        "generated",
        "transactions",
        "tax_shown",
        "commissions_shown",
        "pending_shown",
        "duplicate_of",
    )
    list_filter = ("year", "month", "trigger")
    date_hierarchy = "generated_at"
    fields = ("trigger", "generated_at", "recipients_shown", "duplicate_of")

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description=_("recipients"))
    def recipients_shown(self, report: CommissionReport) -> str:
        return ", ".join(report.recipients) or "-"

    inlines = [CommissionReportDeliveryInline]
    change_form_template = "admin/reporting/commissionreport/change_form.html"

    class Media:
        css = {"all": ["reporting/admin/report.css"]}

    @admin.display(description=_("generated"), ordering="generated_at")
    def generated(self, report: CommissionReport) -> str:
        return formats.date_format(timezone.localtime(report.generated_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description=_("tax collected"), ordering="tax_collected")
    def tax_shown(self, report: CommissionReport) -> str:
        return format_money(report.tax_collected, currency=report.currency)

    @admin.display(description=_("commissions"), ordering="commissions_total")
    def commissions_shown(self, report: CommissionReport) -> str:
        return format_money(report.commissions_total, currency=report.currency)

    @admin.display(description=_("pending"), ordering="pending_amount")
    def pending_shown(self, report: CommissionReport) -> str:
        return format_money(report.pending_amount, currency=report.currency)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/download/csv/",
                self.admin_site.admin_view(self.csv_view),
                name="reporting_commissionreport_csv",
            ),
            path(
                "<path:object_id>/download/xlsx/",
                self.admin_site.admin_view(self.xlsx_view),
                name="reporting_commissionreport_xlsx",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, unquote(object_id))
        if report is not None:
            extra_context = {**(extra_context or {}), **self._figures_context(report)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _figures_context(self, report: CommissionReport) -> dict:
        lines = list(report.lines.order_by("agent_code"))
        # The totals row adds up the lines shown, in the database; the report's own totals
        # are above it, and reporting.figures checks at generation that the two agree.
        lines_total = report.lines.aggregate(
            transactions=Sum("transactions"), **{name: Sum(name) for name in LINE_AMOUNTS}
        )
        return {
            "report": report,
            "lines": lines,
            "lines_total": lines_total,
            "by_status": [
                ("pending", report.pending_count, report.pending_amount),
                ("paid", report.paid_count, report.paid_amount),
                ("cancelled", report.cancelled_count, report.cancelled_amount),
            ],
            "csv_url": reverse("admin:reporting_commissionreport_csv", args=[report.pk]),
            "xlsx_url": reverse("admin:reporting_commissionreport_xlsx", args=[report.pk]),
        }

    def _report_to_download(self, request: HttpRequest, object_id: str) -> CommissionReport:
        if not request.user.has_perm("reporting.view_commissionreport"):
            raise PermissionDenied
        report = self.get_object(request, unquote(object_id))
        if report is None:
            raise Http404
        return report

    def _attachment(self, report: CommissionReport, content: bytes, *, kind: str, mime: str):
        period = period_key(year=report.year, month=report.month)
        response = HttpResponse(content, content_type=mime)
        response["Content-Disposition"] = (
            f'attachment; filename="commission-report-{period}.{kind}"'
        )
        return response

    def csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        report = self._report_to_download(request, object_id)
        content = commission_report_csv_download(figures=commission_report_figures(report=report))
        return self._attachment(report, content, kind="csv", mime="text/csv; charset=utf-8")

    def xlsx_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        report = self._report_to_download(request, object_id)
        content = commission_report_xlsx(
            figures=commission_report_figures(report=report),
            title=period_key(year=report.year, month=report.month),
        )
        return self._attachment(report, content, kind="xlsx", mime=XLSX)
