from django.db import models
from django.db.models import Q

MONEY = {"max_digits": 16, "decimal_places": 2}


class CommissionReport(models.Model):
    """A generated monthly commission report, as it was emailed."""

    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=16, help_text="beat, manual or manual-enqueue")
    generated_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    transactions = models.PositiveIntegerField(help_text="Completed payments.")
    voided_transactions = models.PositiveIntegerField(default=0)
    tax_collected = models.DecimalField(**MONEY, help_text="Completed payments only.")
    commissions_total = models.DecimalField(**MONEY, help_text="Earned: pending + paid.")
    pending_count = models.PositiveIntegerField()
    pending_amount = models.DecimalField(**MONEY)
    paid_count = models.PositiveIntegerField()
    paid_amount = models.DecimalField(**MONEY)
    cancelled_count = models.PositiveIntegerField()
    cancelled_amount = models.DecimalField(**MONEY)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-year", "-month", "-generated_at"]
        constraints = [
            # A retried or duplicated scheduled run finds this row and sends nothing again.
            models.UniqueConstraint(
                fields=["year", "month"],
                condition=Q(trigger="beat"),
                name="reporting_one_scheduled_report_per_month",
            ),
            models.CheckConstraint(
                condition=Q(month__gte=1, month__lte=12), name="reporting_month_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"Commission report {self.year}-{self.month:02d}"


class CommissionReportLine(models.Model):
    report = models.ForeignKey(CommissionReport, on_delete=models.CASCADE, related_name="lines")
    agent = models.ForeignKey("payments.Agent", on_delete=models.PROTECT, related_name="+")
    agent_code = models.CharField(max_length=20)
    agent_name = models.CharField(max_length=150)
    transactions = models.PositiveIntegerField()
    tax_collected = models.DecimalField(**MONEY)
    commission_earned = models.DecimalField(**MONEY)
    pending_amount = models.DecimalField(**MONEY)
    paid_amount = models.DecimalField(**MONEY)
    cancelled_amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["agent_code"]
        constraints = [
            models.UniqueConstraint(fields=["report", "agent"], name="reporting_one_line_per_agent")
        ]

    def __str__(self) -> str:
        return f"{self.report} / {self.agent_code}"
