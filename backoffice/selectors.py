"""What the dashboard on the admin index shows.

A constant number of queries whatever the data size (about fifteen with every panel):
each figure is an aggregate computed in the database, and the only rows read are a few
sessions, the last verification run, the chain head, the last checkpoint and one row per
schedule. Only the panels asked for are read: a person who may not see a panel does not
pay for its queries.
"""

import datetime as dt
import enum
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from auditing.models import Checkpoint, VerificationRun
from auditing.selectors import ChainHead, audit_chain_head
from mailing.models import EmailMessage, EmailStatus
from payments.models import (
    CashSession,
    CashTransaction,
    Commission,
    CommissionStatus,
    SessionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from payments.money import DEFAULT_CURRENCY, DiscrepancyStanding, discrepancy_standing
from payments.selectors import ZERO
from tasks.health.selectors import (
    BeatStatus,
    JobStatus,
    OutboxBacklog,
    beat_status,
    jobs_status,
    outbox_backlog,
)

# The unreconciled sessions listed by name; the count and the totals cover all of them.
OLDEST_LISTED = 5
CHART_DAYS = 30
# The chart's two big aggregates read every payment and commission of 30 days (half a
# million rows when a million payments span two months: over a second on a busy
# machine). A trend drawn five minutes late misleads nobody; the figures to act on are
# always read fresh.
CHART_FRESH_FOR = dt.timedelta(minutes=5)
# The verification runs daily (with an hour's grace): a day without a finished run is one
# missed run (amber), two days are two (red).
VERIFICATION_LATE_AFTER = dt.timedelta(days=1)
VERIFICATION_MISSING_AFTER = dt.timedelta(days=2)


class Panel(enum.StrEnum):
    CASH = "cash"
    TRUST = "trust"
    JOBS = "jobs"
    MAIL = "mail"
    CHART = "chart"


class Level(enum.StrEnum):
    """How a panel reads at a glance: the CSS class of its colour."""

    OK = "ok"
    WARNING = "warning"
    DANGER = "danger"


# To act on ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UnreconciledRow:
    pk: int
    number: str
    agent_code: str
    agent_name: str
    closed_at: dt.datetime
    auto_closed: bool
    expected_balance: Decimal
    counted_balance: Decimal | None  # None: nobody counted the cash
    discrepancy: Decimal | None
    level: Level  # short beyond the tolerance: danger; over beyond it: warning


def discrepancy_level(discrepancy: Decimal | None, *, tolerance: Decimal) -> Level:
    """As the session list colours it: within the configured tolerance reads plain."""
    if discrepancy is None:
        return Level.OK
    return {
        DiscrepancyStanding.WITHIN: Level.OK,
        DiscrepancyStanding.SHORT: Level.DANGER,
        DiscrepancyStanding.OVER: Level.WARNING,
    }[discrepancy_standing(discrepancy, tolerance=tolerance)]


@dataclass(frozen=True)
class CashFigures:
    to_reconcile: int  # closed, not reconciled
    to_reconcile_expected: Decimal
    to_reconcile_discrepancy: Decimal | None  # None when none of them was counted
    oldest: tuple[UnreconciledRow, ...]  # the OLDEST_LISTED closed the longest ago
    past_timeout: int  # open for longer than the configured timeout
    not_counted: int  # closed without a count (waiting for reconciliation)
    timeout_hours: int

    @property
    def discrepancy_level(self) -> Level:
        # A total has no tolerance: any net short reads red, any net over amber.
        return discrepancy_level(self.to_reconcile_discrepancy, tolerance=ZERO)


def cash_figures(*, now: dt.datetime, config: SystemConfiguration) -> CashFigures:
    """Two queries: the counts and totals in one aggregate, and the oldest sessions."""
    cutoff = now - dt.timedelta(hours=config.session_timeout_hours)
    closed = Q(status=SessionStatus.CLOSED)
    figures = CashSession.objects.filter(
        status__in=[SessionStatus.OPEN, SessionStatus.CLOSED]
    ).aggregate(
        to_reconcile=Count("pk", filter=closed),
        expected=Sum("expected_balance", filter=closed),
        discrepancy=Sum("discrepancy", filter=closed),
        not_counted=Count("pk", filter=closed & Q(counted_balance__isnull=True)),
        past_timeout=Count("pk", filter=Q(status=SessionStatus.OPEN, opened_at__lte=cutoff)),
    )
    oldest = (
        CashSession.objects.filter(closed)
        .order_by("closed_at", "pk")
        .values(
            "pk",
            "number",
            "agent__code",
            "agent__full_name",
            "closed_at",
            "auto_closed",
            "expected_balance",
            "counted_balance",
            "discrepancy",
        )[:OLDEST_LISTED]
    )
    return CashFigures(
        to_reconcile=figures["to_reconcile"],
        to_reconcile_expected=figures["expected"] or ZERO,
        to_reconcile_discrepancy=figures["discrepancy"],
        oldest=tuple(
            UnreconciledRow(
                pk=row["pk"],
                number=row["number"],
                agent_code=row["agent__code"],
                agent_name=row["agent__full_name"],
                closed_at=row["closed_at"],
                auto_closed=row["auto_closed"],
                expected_balance=row["expected_balance"],
                counted_balance=row["counted_balance"],
                discrepancy=row["discrepancy"],
                level=discrepancy_level(
                    row["discrepancy"], tolerance=config.reconciliation_tolerance
                ),
            )
            for row in oldest
        ),
        past_timeout=figures["past_timeout"],
        not_counted=figures["not_counted"],
        timeout_hours=config.session_timeout_hours,
    )


# Trust -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastVerification:
    pk: int
    started_at: dt.datetime
    finished_at: dt.datetime
    full: bool
    intact: bool | None  # None: the run could not complete (see error)
    issue_count: int
    error: str


@dataclass(frozen=True)
class LastCheckpoint:
    pk: int
    sequence: int
    head_hash: str
    signed_at: dt.datetime


@dataclass(frozen=True)
class TrustFigures:
    last_run: LastVerification | None  # the last run that finished
    head: ChainHead | None
    checkpoint: LastCheckpoint | None
    level: Level
    late: bool  # no run finished within VERIFICATION_LATE_AFTER


def trust_figures(*, now: dt.datetime) -> TrustFigures:
    """Three queries: the last finished run, the chain head, the last checkpoint. A run
    still going says nothing yet, so the last finished one is the verdict."""
    run = (
        VerificationRun.objects.filter(finished_at__isnull=False)
        .order_by("-started_at", "-pk")
        .values("pk", "started_at", "finished_at", "full", "intact", "issue_count", "error")
        .first()
    )
    checkpoint = (
        Checkpoint.objects.order_by("-sequence", "-signed_at")
        .values("pk", "sequence", "head_hash", "signed_at")
        .first()
    )
    last_run = LastVerification(**run) if run else None
    age = now - last_run.finished_at if last_run else None
    if last_run is not None and last_run.intact is False:
        level = Level.DANGER
    elif age is None or age > VERIFICATION_MISSING_AFTER:
        level = Level.DANGER if last_run else Level.WARNING
    elif age > VERIFICATION_LATE_AFTER or last_run.intact is None:
        level = Level.WARNING
    else:
        level = Level.OK
    return TrustFigures(
        last_run=last_run,
        head=audit_chain_head(),
        checkpoint=LastCheckpoint(**checkpoint) if checkpoint else None,
        level=level,
        late=age is None or age > VERIFICATION_LATE_AFTER,
    )


# Jobs and mail -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobsFigures:
    jobs: tuple[JobStatus, ...]
    beat: BeatStatus

    @property
    def overdue(self) -> int:
        return sum(job.failing for job in self.jobs)

    @property
    def level(self) -> Level:
        return Level.DANGER if self.overdue or self.beat.silent else Level.OK


def jobs_figures(*, now: dt.datetime) -> JobsFigures:
    """Three queries: the schedules, their run records, beat's heartbeat."""
    return JobsFigures(jobs=tuple(jobs_status(now=now)), beat=beat_status(now=now))


@dataclass(frozen=True)
class MailFigures:
    outbox: OutboxBacklog
    failed: int  # every message whose last attempt failed, as the log's status filter counts

    @property
    def level(self) -> Level:
        if self.outbox.stuck or self.outbox.gave_up:
            return Level.DANGER
        return Level.WARNING if self.failed or self.outbox.sweeper_late else Level.OK


def mail_figures(*, now: dt.datetime) -> MailFigures:
    """Three queries: the outbox's backlog and last sweep, and the failed mail."""
    return MailFigures(
        outbox=outbox_backlog(now=now),
        failed=EmailMessage.objects.filter(status=EmailStatus.FAILED).count(),
    )


# Chart ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartFigures:
    computed_at: dt.datetime
    days: tuple["ChartDay", ...]


@dataclass(frozen=True)
class ChartDay:
    day: dt.date
    collected: Decimal  # tax of the completed payments made that day
    commissions: Decimal  # commissions earned that day (cancelled ones excluded)
    shortages: Decimal  # sum of the short sessions closed that day (zero or negative)
    overages: Decimal  # sum of the over sessions closed that day (zero or positive)


def chart_days(*, now: dt.datetime, days: int = CHART_DAYS) -> tuple[ChartDay, ...]:
    """The last ``days`` local days, today included, oldest first, every day present.

    Three grouped queries (each reads only the window, through the (status, date)
    indexes). Days are local dates in settings.TIME_ZONE: a payment at 23:30 in
    Antananarivo counts for that day, not for UTC's."""
    zone = ZoneInfo(settings.TIME_ZONE)
    today = timezone.localdate(now, timezone=zone)
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=zone)

    collected = dict(
        CashTransaction.objects.filter(
            status=TransactionStatus.COMPLETED, created_at__gte=start, created_at__lt=end
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(total=Sum("tax_amount"))
        .order_by()
        .values_list("day", "total")
    )
    # Earned: pending or paid. Named rather than "not cancelled", so that the
    # (status, created_at) index serves it.
    commissions = dict(
        Commission.objects.filter(
            status__in=[CommissionStatus.PENDING, CommissionStatus.PAID],
            created_at__gte=start,
            created_at__lt=end,
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("day", "total")
    )
    discrepancies = {
        row["day"]: row
        for row in CashSession.objects.filter(
            status__in=[SessionStatus.CLOSED, SessionStatus.RECONCILED],
            closed_at__gte=start,
            closed_at__lt=end,
            discrepancy__isnull=False,
        )
        .annotate(day=TruncDate("closed_at", tzinfo=zone))
        .values("day")
        .annotate(
            shortages=Sum("discrepancy", filter=Q(discrepancy__lt=0)),
            overages=Sum("discrepancy", filter=Q(discrepancy__gt=0)),
        )
        .order_by()
    }
    rows = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        discrepancy = discrepancies.get(day, {})
        rows.append(
            ChartDay(
                day=day,
                collected=collected.get(day) or ZERO,
                commissions=commissions.get(day) or ZERO,
                shortages=discrepancy.get("shortages") or ZERO,
                overages=discrepancy.get("overages") or ZERO,
            )
        )
    return tuple(rows)


def chart_recent(*, now: dt.datetime) -> ChartFigures:
    """``chart_days``, computed at most once per CHART_FRESH_FOR (per process: the
    default cache), and afresh when the local day changes."""
    key = f"backoffice:chart:{settings.TIME_ZONE}:{timezone.localdate(now).isoformat()}"
    return cache.get_or_set(
        key,
        lambda: ChartFigures(computed_at=now, days=chart_days(now=now)),
        CHART_FRESH_FOR.total_seconds(),
    )


# The whole dashboard -----------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    """Each panel is None when it was not asked for (the person may not see it)."""

    now: dt.datetime
    currency: str
    cash: CashFigures | None = None
    trust: TrustFigures | None = None
    jobs: JobsFigures | None = None
    mail: MailFigures | None = None
    chart: ChartFigures | None = None


def dashboard_figures(*, now: dt.datetime, panels: Collection[Panel]) -> Dashboard:
    # Read, never created here: a dashboard is no reason to write the configuration row,
    # and its defaults are the configuration until an administrator saves one.
    config = SystemConfiguration.peek()
    return Dashboard(
        now=now,
        currency=config.currency_code or DEFAULT_CURRENCY,
        cash=cash_figures(now=now, config=config) if Panel.CASH in panels else None,
        trust=trust_figures(now=now) if Panel.TRUST in panels else None,
        jobs=jobs_figures(now=now) if Panel.JOBS in panels else None,
        mail=mail_figures(now=now) if Panel.MAIL in panels else None,
        chart=chart_recent(now=now) if Panel.CHART in panels else None,
    )
