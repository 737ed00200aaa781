from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _

from payments.money import (
    COMMISSION_RATE_MAX,
    COMMISSION_RATE_MIN,
    DEFAULT_CURRENCY,
    MINOR_UNITS,
    PERCENT,
)
from project.singleton import SingletonModel

MONEY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 5, "decimal_places": 2}
RATE_VALIDATORS = [
    MinValueValidator(COMMISSION_RATE_MIN),
    MaxValueValidator(COMMISSION_RATE_MAX),
]
SESSION_TIMEOUT_HOURS_MIN = 1
SESSION_TIMEOUT_HOURS_MAX = 24 * 7

# The rules the database holds on these tables are named ``payments_<table>_<rule>``: the
# CHECK constraints below (every database knows them, and ``validate_constraints`` too),
# and the triggers and composite foreign keys of payments/database_rules.py (PostgreSQL).


def one_of(field: str, values) -> Q:
    """``field`` holds one of ``values`` (a TextChoices' values, a dict's keys): the CHECK
    is built from the choices, so the two cannot drift apart."""
    return Q(**{f"{field}__in": sorted(values)})


def rate_in_bounds(field: str) -> Q:
    return Q(**{f"{field}__gte": COMMISSION_RATE_MIN, f"{field}__lte": COMMISSION_RATE_MAX})


class SystemConfiguration(SingletonModel):
    """Singleton (pk=1) edited in the admin."""

    session_timeout_hours = models.PositiveIntegerField(
        default=12,
        validators=[
            MinValueValidator(SESSION_TIMEOUT_HOURS_MIN),
            MaxValueValidator(SESSION_TIMEOUT_HOURS_MAX),
        ],
        help_text=_("An open session older than this is expired and gets closed automatically."),
        verbose_name=_("session timeout (hours)"),
    )
    default_commission_rate = models.DecimalField(
        **RATE,
        default=Decimal("2.00"),
        validators=RATE_VALIDATORS,
        help_text=_("Percent of the tax amount, for agents without a rate of their own."),
        verbose_name=_("default commission rate"),
    )
    reconciliation_tolerance = models.DecimalField(
        **MONEY,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("A larger discrepancy needs an explanation before the session is reconciled."),
        verbose_name=_("reconciliation tolerance"),
    )
    currency_code = models.CharField(
        max_length=3,
        default=DEFAULT_CURRENCY,
        choices=[(code, code) for code in MINOR_UNITS],
        verbose_name=_("currency"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("system configuration")
        verbose_name_plural = _("system configuration")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="payments_configuration_singleton_pk_1"),
            models.CheckConstraint(
                condition=one_of("currency_code", MINOR_UNITS),
                name="payments_configuration_currency_code_valid",
            ),
            models.CheckConstraint(
                condition=Q(reconciliation_tolerance__gte=0),
                name="payments_configuration_tolerance_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    session_timeout_hours__gte=SESSION_TIMEOUT_HOURS_MIN,
                    session_timeout_hours__lte=SESSION_TIMEOUT_HOURS_MAX,
                ),
                name="payments_configuration_timeout_hours_in_bounds",
            ),
            models.CheckConstraint(
                condition=rate_in_bounds("default_commission_rate"),
                name="payments_configuration_default_rate_in_bounds",
            ),
        ]

    def __str__(self) -> str:
        return "System configuration"


class Agent(models.Model):
    """An agent partenaire who collects taxes in cash."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="agent",
        verbose_name=_("user"),
    )
    code = models.CharField(max_length=20, unique=True, verbose_name=_("code"))
    full_name = models.CharField(max_length=150, verbose_name=_("full name"))
    phone = models.CharField(max_length=32, blank=True, verbose_name=_("phone"))
    email = models.EmailField(blank=True, verbose_name=_("email"))
    location = models.CharField(max_length=150, blank=True, verbose_name=_("collection location"))
    commission_rate = models.DecimalField(
        **RATE,
        null=True,
        blank=True,
        validators=RATE_VALIDATORS,
        help_text=_("Percent. Empty means the configured default rate."),
        verbose_name=_("commission rate"),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(commission_rate__isnull=True) | rate_in_bounds("commission_rate"),
                name="payments_agent_commission_rate_in_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.full_name}"


class SessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")
    RECONCILED = "reconciled", _("Reconciled")


class CashSession(models.Model):
    number = models.CharField(max_length=32, unique=True, editable=False, verbose_name=_("number"))
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="sessions", verbose_name=_("agent")
    )
    status = models.CharField(
        max_length=16,
        choices=SessionStatus.choices,
        default=SessionStatus.OPEN,
        verbose_name=_("status"),
    )
    opened_at = models.DateTimeField(verbose_name=_("opened at"))
    opening_balance = models.DecimalField(**MONEY, verbose_name=_("opening float"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("Empty when the system closed the session."),
        verbose_name=_("closed by"),
    )
    auto_closed = models.BooleanField(default=False, verbose_name=_("closed automatically"))
    counted_balance = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text=_("Empty when nobody counted the cash."),
        verbose_name=_("counted closing balance"),
    )
    expected_balance = models.DecimalField(
        **MONEY, null=True, blank=True, verbose_name=_("expected cash")
    )
    discrepancy = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text=_("Counted minus expected; empty when not counted."),
        verbose_name=_("discrepancy"),
    )
    closing_notes = models.TextField(blank=True, verbose_name=_("closing notes"))
    reconciled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reconciled at"))
    reconciled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reconciled by"),
    )
    reconciliation_notes = models.TextField(blank=True, verbose_name=_("reconciliation notes"))
    expiry_notified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the agent was told the session expired and must be closed with a count."),
        verbose_name=_("expiry notified at"),
    )

    class Meta:
        verbose_name = _("cash session")
        verbose_name_plural = _("cash sessions")
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"],
                condition=Q(status="open"),
                name="payments_one_open_session_per_agent",
                violation_error_message=_("This agent already has an open session."),
            ),
            models.CheckConstraint(
                condition=Q(opening_balance__gte=0), name="payments_session_opening_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(discrepancy__isnull=True) | Q(counted_balance__isnull=False),
                name="payments_session_discrepancy_needs_count",
            ),
            models.CheckConstraint(
                condition=one_of("status", SessionStatus.values),
                name="payments_session_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[SessionStatus.CLOSED, SessionStatus.RECONCILED])
                | Q(closed_at__isnull=False, expected_balance__isnull=False),
                name="payments_session_closed_has_closed_at_and_expected",
            ),
            models.CheckConstraint(
                condition=~Q(status=SessionStatus.OPEN)
                | Q(
                    closed_at__isnull=True,
                    closed_by__isnull=True,
                    auto_closed=False,
                    expected_balance__isnull=True,
                    counted_balance__isnull=True,
                    discrepancy__isnull=True,
                    reconciled_at__isnull=True,
                    reconciled_by__isnull=True,
                ),
                name="payments_session_open_has_no_closing_fields",
            ),
            models.CheckConstraint(
                condition=~Q(status=SessionStatus.RECONCILED)
                | Q(
                    counted_balance__isnull=False,
                    reconciled_at__isnull=False,
                    reconciled_by__isnull=False,
                ),
                name="payments_session_reconciled_has_count_and_reconciler",
            ),
            models.CheckConstraint(
                condition=Q(status=SessionStatus.RECONCILED)
                | Q(reconciled_at__isnull=True, reconciled_by__isnull=True),
                name="payments_session_unreconciled_has_no_reconciler",
            ),
            models.CheckConstraint(
                condition=Q(counted_balance__isnull=True)
                | Q(
                    expected_balance__isnull=False,
                    discrepancy__isnull=False,
                    # Round: SQLite (the demo) subtracts in floating point; on PostgreSQL
                    # the numeric difference is exact and round() changes nothing.
                    discrepancy=Round(F("counted_balance") - F("expected_balance"), precision=2),
                ),
                name="payments_session_discrepancy_is_counted_minus_expected",
            ),
            models.CheckConstraint(
                condition=Q(counted_balance__isnull=True) | Q(counted_balance__gte=0),
                name="payments_session_counted_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(closed_at__gte=F("opened_at")),
                name="payments_session_closed_after_opened",
            ),
            models.CheckConstraint(
                condition=Q(auto_closed=False) | Q(closed_by__isnull=True),
                name="payments_session_auto_closed_has_no_closer",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "opened_at"]),
            models.Index(fields=["status", "closed_at"]),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_counted(self) -> bool:
        return self.counted_balance is not None


class TransactionStatus(models.TextChoices):
    COMPLETED = "completed", _("Completed")
    VOIDED = "voided", _("Voided")


class CashTransaction(models.Model):
    """One cash payment of a tax, with the receipt handed to the payer."""

    receipt_number = models.CharField(
        max_length=40, unique=True, editable=False, verbose_name=_("receipt number")
    )
    session = models.ForeignKey(
        CashSession,
        on_delete=models.PROTECT,
        related_name="transactions",
        verbose_name=_("cash session"),
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("agent")
    )
    payer_reference = models.CharField(max_length=100, verbose_name=_("payer reference"))
    tax_amount = models.DecimalField(**MONEY, verbose_name=_("tax amount"))
    amount_tendered = models.DecimalField(**MONEY, verbose_name=_("amount tendered"))
    change_given = models.DecimalField(**MONEY, verbose_name=_("change given"))
    status = models.CharField(
        max_length=16,
        choices=TransactionStatus.choices,
        default=TransactionStatus.COMPLETED,
        verbose_name=_("status"),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    voided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("voided at"))
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("voided by"),
    )
    void_reason = models.TextField(blank=True, verbose_name=_("void reason"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(tax_amount__gt=0), name="payments_tax_positive"),
            models.CheckConstraint(
                condition=Q(amount_tendered__gte=F("tax_amount")),
                name="payments_tendered_covers_tax",
            ),
            models.CheckConstraint(
                condition=Q(
                    change_given=Round(F("amount_tendered") - F("tax_amount"), precision=2)
                ),
                name="payments_change_is_tendered_minus_tax",
            ),
            models.CheckConstraint(
                condition=one_of("status", TransactionStatus.values),
                name="payments_payment_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status=TransactionStatus.VOIDED)
                | (Q(voided_at__isnull=False) & ~Q(void_reason="")),
                name="payments_payment_voided_has_time_and_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status=TransactionStatus.COMPLETED)
                | Q(voided_at__isnull=True, voided_by__isnull=True, void_reason=""),
                name="payments_payment_completed_has_no_void_fields",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["session", "status"]),
        ]

    def __str__(self) -> str:
        return self.receipt_number


class CommissionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PAID = "paid", _("Paid")
    CANCELLED = "cancelled", _("Cancelled")


class Commission(models.Model):
    cash_transaction = models.OneToOneField(
        CashTransaction,
        on_delete=models.PROTECT,
        related_name="commission",
        verbose_name=_("payment"),
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="commissions", verbose_name=_("agent")
    )
    session = models.ForeignKey(
        CashSession,
        on_delete=models.PROTECT,
        related_name="commissions",
        verbose_name=_("cash session"),
    )
    base_amount = models.DecimalField(**MONEY, verbose_name=_("base amount"))
    rate = models.DecimalField(
        **RATE, help_text=_("Percent of the base amount."), verbose_name=_("rate")
    )
    amount = models.DecimalField(**MONEY, verbose_name=_("amount"))
    status = models.CharField(
        max_length=16,
        choices=CommissionStatus.choices,
        default=CommissionStatus.PENDING,
        verbose_name=_("status"),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"))
    paid_at = models.DateTimeField(null=True, blank=True, verbose_name=_("paid at"))
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("paid by"),
    )
    cancelled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("cancelled at"))

    class Meta:
        verbose_name = _("commission")
        verbose_name_plural = _("commissions")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="payments_commission_not_negative"
            ),
            models.CheckConstraint(
                condition=one_of("status", CommissionStatus.values),
                name="payments_commission_status_valid",
            ),
            models.CheckConstraint(
                condition=rate_in_bounds("rate"), name="payments_commission_rate_in_bounds"
            ),
            # Half away from zero, which is half-up for these non-negative amounts; 0
            # places for the currencies without a minor unit. On PostgreSQL the trigger
            # payments_commission_amount_rounded_for_currency says which of the two the
            # configured currency takes, so the amount is exact.
            models.CheckConstraint(
                condition=Q(amount=Round(F("base_amount") * F("rate") / PERCENT, precision=2))
                | Q(amount=Round(F("base_amount") * F("rate") / PERCENT, precision=0)),
                name="payments_commission_amount_is_base_times_rate",
            ),
            models.CheckConstraint(
                condition=~Q(status=CommissionStatus.PENDING)
                | Q(paid_at__isnull=True, paid_by__isnull=True, cancelled_at__isnull=True),
                name="payments_commission_pending_has_no_paid_or_cancelled_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=CommissionStatus.PAID)
                | Q(paid_at__isnull=False, cancelled_at__isnull=True),
                name="payments_commission_paid_has_paid_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=CommissionStatus.CANCELLED)
                | Q(cancelled_at__isnull=False, paid_at__isnull=True),
                name="payments_commission_cancelled_has_cancelled_at",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"Commission on {self.cash_transaction_id}"


class DailyCounter(models.Model):
    """Per-day counters behind human-readable numbers such as CS-20261124-0007."""

    scope = models.CharField(max_length=16, verbose_name=_("scope"))
    day = models.DateField(verbose_name=_("day"))
    value = models.PositiveIntegerField(default=0, verbose_name=_("value"))

    class Meta:
        verbose_name = _("daily counter")
        verbose_name_plural = _("daily counters")
        constraints = [
            models.UniqueConstraint(fields=["scope", "day"], name="payments_daily_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.day}: {self.value}"


class NotificationKind(models.TextChoices):
    SESSION_AUTO_CLOSED = "session_auto_closed", _("Session closed automatically")
    SESSION_EXPIRED = "session_expired", _("Session expired")
    RECONCILIATION_REMINDER = "reconciliation_reminder", _("Reconciliation reminder")


class Notification(models.Model):
    """An in-app message to an agent. Email, when the agent has an address, is extra."""

    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="notifications", verbose_name=_("agent")
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices, verbose_name=_("kind"))
    session = models.ForeignKey(
        CashSession,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
        verbose_name=_("cash session"),
    )
    title = models.CharField(max_length=200, verbose_name=_("title"))
    message = models.TextField(verbose_name=_("message"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    read_at = models.DateTimeField(null=True, blank=True, verbose_name=_("read at"))

    class Meta:
        verbose_name = _("agent notification")
        verbose_name_plural = _("agent notifications")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["agent", "read_at"])]
        constraints = [
            models.CheckConstraint(
                condition=one_of("kind", NotificationKind.values),
                name="payments_notification_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.code}: {self.title}"


class ReminderKind(models.TextChoices):
    AGENT = "agent", _("Agent reminder")
    ADMIN_SUMMARY = "admin_summary", _("Administrators' summary")


class ReconciliationReminder(models.Model):
    """One reminder sent on one local day: to an agent, listing the sessions it reminded
    them of (its ``SessionReminder`` rows), or the administrators' daily summary.

    An agent may get several reminders a day (a session closed after the morning's
    reminder is reminded by the next run), but each session at most once a day: the
    database holds that on ``SessionReminder``. ``session_numbers`` keeps what the
    message listed, as it was sent (reminders written before sessions were keyed have
    only this)."""

    kind = models.CharField(max_length=16, choices=ReminderKind.choices, verbose_name=_("kind"))
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reminders",
        verbose_name=_("agent"),
    )
    day = models.DateField(
        help_text=_("Local date the reminder was sent for."), verbose_name=_("day")
    )
    session_numbers = models.JSONField(default=list, verbose_name=_("session numbers"))
    sessions = models.ManyToManyField(
        CashSession,
        through="SessionReminder",
        related_name="reconciliation_reminders",
        blank=True,
        verbose_name=_("cash sessions"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("reconciliation reminder")
        verbose_name_plural = _("reconciliation reminders")
        ordering = ["-day", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["day"],
                condition=Q(kind="admin_summary"),
                name="payments_one_admin_summary_a_day",
            ),
            models.CheckConstraint(
                condition=Q(kind="agent", agent__isnull=False)
                | Q(kind="admin_summary", agent__isnull=True),
                name="payments_reminder_agent_matches_kind",
            ),
            models.CheckConstraint(
                condition=one_of("kind", ReminderKind.values), name="payments_reminder_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        who = self.agent.code if self.agent_id else "administrators"
        return f"Reminder to {who} on {self.day}"


class SessionReminder(models.Model):
    """One session reminded to its agent on one local day, by one reminder.

    ``day`` repeats the reminder's day because a unique constraint cannot reach through a
    join: (session, day) unique is what stops two runs, or a retried one, from reminding
    a session twice the same day."""

    reminder = models.ForeignKey(
        ReconciliationReminder,
        on_delete=models.PROTECT,
        related_name="session_reminders",
        verbose_name=_("reconciliation reminder"),
    )
    session = models.ForeignKey(
        CashSession,
        on_delete=models.PROTECT,
        related_name="session_reminders",
        verbose_name=_("cash session"),
    )
    day = models.DateField(
        help_text=_("Local date the session was reminded on."), verbose_name=_("day")
    )

    class Meta:
        verbose_name = _("session reminder")
        verbose_name_plural = _("session reminders")
        ordering = ["-day", "session"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "day"], name="payments_one_reminder_per_session_a_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session} reminded on {self.day}"
