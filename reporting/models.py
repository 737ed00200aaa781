from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 16, "decimal_places": 2}


class CommissionReport(models.Model):
    """A generated monthly commission report, as it was emailed."""

    year = models.PositiveSmallIntegerField(verbose_name=_("year"))
    month = models.PositiveSmallIntegerField(verbose_name=_("month"))
    trigger = models.CharField(
        max_length=16,
        help_text=_("Who stored it: beat, manual, manual-enqueue or task."),
        verbose_name=_("trigger"),
    )
    generated_at = models.DateTimeField(verbose_name=_("generated at"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    transactions = models.PositiveIntegerField(
        help_text=_("Completed payments."), verbose_name=_("payments")
    )
    voided_transactions = models.PositiveIntegerField(default=0, verbose_name=_("voided payments"))
    tax_collected = models.DecimalField(
        **MONEY, help_text=_("Completed payments only."), verbose_name=_("tax collected")
    )
    commissions_total = models.DecimalField(
        **MONEY, help_text=_("Earned: pending + paid."), verbose_name=_("commissions total")
    )
    pending_count = models.PositiveIntegerField(verbose_name=_("pending commissions"))
    pending_amount = models.DecimalField(**MONEY, verbose_name=_("pending amount"))
    paid_count = models.PositiveIntegerField(verbose_name=_("paid commissions"))
    paid_amount = models.DecimalField(**MONEY, verbose_name=_("paid amount"))
    cancelled_count = models.PositiveIntegerField(verbose_name=_("cancelled commissions"))
    cancelled_amount = models.DecimalField(**MONEY, verbose_name=_("cancelled amount"))
    recipients = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Whom the run that stored it addressed; every delivery since is in the log."),
        verbose_name=_("recipients"),
    )
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="duplicates",
        help_text=(
            _(
                "Set on a second report of a month stored before reports became one per month: "
                "the month's report is the one it points to."
            )
        ),
        verbose_name=_("duplicate of"),
    )

    class Meta:
        verbose_name = _("commission report")
        verbose_name_plural = _("commission reports")
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
    report = models.ForeignKey(
        CommissionReport,
        on_delete=models.CASCADE,
        related_name="lines",
        verbose_name=_("commission report"),
    )
    agent = models.ForeignKey(
        "payments.Agent", on_delete=models.PROTECT, related_name="+", verbose_name=_("agent")
    )
    agent_code = models.CharField(max_length=20, verbose_name=_("agent code"))
    agent_name = models.CharField(max_length=150, verbose_name=_("agent name"))
    transactions = models.PositiveIntegerField(verbose_name=_("payments"))
    tax_collected = models.DecimalField(**MONEY, verbose_name=_("tax collected"))
    commission_earned = models.DecimalField(**MONEY, verbose_name=_("commission earned"))
    pending_amount = models.DecimalField(**MONEY, verbose_name=_("pending amount"))
    paid_amount = models.DecimalField(**MONEY, verbose_name=_("paid amount"))
    cancelled_amount = models.DecimalField(**MONEY, verbose_name=_("cancelled amount"))

    class Meta:
        verbose_name = _("commission report line")
        verbose_name_plural = _("commission report lines")
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
        CommissionReport,
        on_delete=models.PROTECT,
        related_name="deliveries",
        verbose_name=_("commission report"),
    )
    address = models.CharField(max_length=254, verbose_name=_("address"))
    email = models.ForeignKey(
        "mailing.EmailMessage",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("email message"),
    )
    trigger = models.CharField(
        max_length=16, help_text=_("Who asked: beat, manual, task..."), verbose_name=_("trigger")
    )
    requested_at = models.DateTimeField(verbose_name=_("requested at"))
    resend = models.BooleanField(
        default=False,
        help_text=_("Sent again on purpose (--resend) to an address that had it."),
        verbose_name=_("resent"),
    )

    class Meta:
        verbose_name = _("report delivery")
        verbose_name_plural = _("report deliveries")
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
