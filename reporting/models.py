from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

MONEY = {"max_digits": 16, "decimal_places": 2}


class CommissionReport(models.Model):
    """A generated monthly commission report, as it was emailed."""

    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    trigger = models.CharField(
        max_length=16, help_text="Who stored it: beat, manual, manual-enqueue or task."
    )
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
    recipients = models.JSONField(
        default=list,
        blank=True,
        help_text="Whom the run that stored it addressed; every delivery since is in the log.",
    )
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="duplicates",
        help_text=(
            "Set on a second report of a month stored before reports became one per month: "
            "the month's report is the one it points to."
        ),
    )

    class Meta:
        ordering = ["-year", "-month", "-generated_at"]
        constraints = [
            # One report per month whoever asks: a redelivered, retried, repeated or racing
            # run finds this row and reuses it. Older duplicates stay readable, set aside.
            models.UniqueConstraint(
                fields=["year", "month"],
                condition=Q(duplicate_of__isnull=True),
                name="reporting_one_report_per_month",
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


class CommissionReportDelivery(models.Model):
    """One address a report was queued for, with the email that carries it: a run sends the
    report only to its recipients not yet in this log (or again, logged, with --resend)."""

    report = models.ForeignKey(
        CommissionReport, on_delete=models.PROTECT, related_name="deliveries"
    )
    address = models.CharField(max_length=254)
    email = models.ForeignKey("mailing.EmailMessage", on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=16, help_text="Who asked: beat, manual, task...")
    requested_at = models.DateTimeField()
    resend = models.BooleanField(
        default=False, help_text="Sent again on purpose (--resend) to an address that had it."
    )

    class Meta:
        ordering = ["requested_at", "pk"]
        constraints = [
            # Only a deliberate resend may send a report twice to one address.
            models.UniqueConstraint(
                F("report"),
                Lower("address"),
                condition=Q(resend=False),
                name="reporting_one_delivery_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.report} -> {self.address}"
