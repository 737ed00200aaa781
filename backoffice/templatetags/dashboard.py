"""``{% dashboard %}``: the panels on the admin index, each for whoever may see its data.

An inclusion tag called from ``admin/index.html`` rather than a custom AdminSite or a
context processor: every app registers on the stock ``admin.site``, which stays as it
is; a context processor would read the figures on every page, the tag only on the index.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from backoffice.selectors import ChartDay, Dashboard, Panel, dashboard_figures
from tasks.health.selectors import JobState

register = template.Library()

# The permission each panel needs: a panel shows only the data its reader may list.
PANEL_PERMISSIONS: dict[Panel, tuple[str, ...]] = {
    Panel.CASH: ("payments.view_cashsession",),
    Panel.TRUST: ("auditing.view_verificationrun",),
    Panel.JOBS: ("tasks.view_jobhealth",),
    Panel.MAIL: ("mailing.view_emailmessage",),
    # The chart adds up payments, commissions and sessions' discrepancies.
    Panel.CHART: (
        "payments.view_cashtransaction",
        "payments.view_commission",
        "payments.view_cashsession",
    ),
}

JOB_LABELS = {
    "close_expired_sessions": _("Close expired sessions"),
    "verify_audit_trail": _("Verify the audit trail"),
    "reconciliation_reminder": _("Reconciliation reminder"),
    "generate_commission_report": _("Monthly commission report"),
}
JOB_STATES = {
    JobState.OK: _("up to date"),
    JobState.PENDING: _("due, within its grace period"),
    JobState.RUNNING: _("running"),
    JobState.OVERDUE: _("overdue"),
    JobState.WAITING: _("nothing due yet"),
    JobState.DISABLED: _("disabled"),
    JobState.MISSING: _("no schedule (run sync_schedules)"),
    JobState.UNWATCHED: _("not watched"),
}
# JobHealth.last_status, as the runner records it.
RUN_OUTCOMES = {
    "ok": _("succeeded"),
    "failed": _("failed"),
    "tampering": _("tampering found"),
    "error": _("crashed"),
}


def panels_for(user) -> set[Panel]:
    return {panel for panel, needed in PANEL_PERMISSIONS.items() if user.has_perms(needed)}


def changelist(model: str, **filters: str) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


# The chart's geometry, in the SVG's own units (viewBox); the template draws it and
# writes its texts. Three bands, each on its own scale: commissions are a few percent of
# the collections and would be invisible on theirs.
CHART_WIDTH = 1000
BAND_HEIGHT = 64
BAND_TOP = 22  # room for the band's title above its bars
BAND_TITLE_Y = 14
BAND_GAP = 14
SLOT_PADDING = 3


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: dt.date
    value: Decimal


@dataclass(frozen=True)
class Band:
    title_y: float  # the baseline of its title
    baseline: float  # where its bars start (the zero line)
    maximum: Decimal
    bars: tuple[Bar, ...]
    down_bars: tuple[Bar, ...] = ()  # shortages, drawn below the zero line


@dataclass(frozen=True)
class ChartLayout:
    width: int
    height: float
    collections: Band
    commissions: Band
    discrepancies: Band
    days: tuple[ChartDay, ...]
    axis_y: float
    first_day: dt.date
    middle_day: dt.date
    last_day: dt.date
    middle_x: float


def _height(value: Decimal, maximum: Decimal, room: float) -> float:
    if not value or not maximum:
        return 0.0
    # At least one unit, so that a small amount is not mistaken for none.
    return max(round(float(abs(value) / maximum) * room, 1), 1.0)


def _bars(
    days: tuple[ChartDay, ...],
    values: list[Decimal],
    *,
    maximum: Decimal,
    baseline: float,
    room: float,
    up: bool = True,
) -> tuple[Bar, ...]:
    slot = CHART_WIDTH / len(days)
    drawn = []
    for index, (row, value) in enumerate(zip(days, values, strict=True)):
        height = _height(value, maximum, room)
        drawn.append(
            Bar(
                x=round(index * slot + SLOT_PADDING, 1),
                y=baseline - height if up else baseline,
                width=round(slot - 2 * SLOT_PADDING, 1),
                height=height,
                day=row.day,
                value=value,
            )
        )
    return tuple(drawn)


def _band_top(index: int) -> float:
    return index * (BAND_TOP + BAND_HEIGHT + BAND_GAP)


def _band(days: tuple[ChartDay, ...], index: int, values: list[Decimal]) -> Band:
    top = _band_top(index)
    baseline = top + BAND_TOP + BAND_HEIGHT
    maximum = max(values, default=Decimal(0))
    return Band(
        title_y=top + BAND_TITLE_Y,
        baseline=baseline,
        maximum=maximum,
        bars=_bars(days, values, maximum=maximum, baseline=baseline, room=BAND_HEIGHT),
    )


def chart_layout(days: tuple[ChartDay, ...]) -> ChartLayout:
    top = _band_top(2)
    zero = top + BAND_TOP + BAND_HEIGHT / 2
    shortages = [row.shortages for row in days]
    overages = [row.overages for row in days]
    # One scale for both directions, so that a short and an over of the same size look it.
    maximum = max((abs(value) for value in shortages + overages), default=Decimal(0))
    half = BAND_HEIGHT / 2
    axis_y = top + BAND_TOP + BAND_HEIGHT + 16
    middle = len(days) // 2
    return ChartLayout(
        width=CHART_WIDTH,
        height=axis_y + 6,
        collections=_band(days, 0, [row.collected for row in days]),
        commissions=_band(days, 1, [row.commissions for row in days]),
        discrepancies=Band(
            title_y=top + BAND_TITLE_Y,
            baseline=zero,
            maximum=maximum,
            bars=_bars(days, overages, maximum=maximum, baseline=zero, room=half),
            down_bars=_bars(days, shortages, maximum=maximum, baseline=zero, room=half, up=False),
        ),
        days=days,
        axis_y=axis_y,
        first_day=days[0].day,
        middle_day=days[middle].day,
        last_day=days[-1].day,
        middle_x=round((middle + 0.5) * CHART_WIDTH / len(days), 1),
    )


@dataclass(frozen=True)
class JobRow:
    name: str
    label: str
    state: JobState
    state_label: str
    overdue: bool
    last_started_at: dt.datetime | None
    last_status: str
    outcome: str
    last_success_at: dt.datetime | None


def links(figures: Dashboard) -> dict[str, str]:
    """The list behind each figure, for the panels shown (a hidden panel's admin may not
    be open to this person)."""
    found: dict[str, str] = {}
    if figures.cash is not None:
        for attention in ("to_reconcile", "past_timeout", "not_counted"):
            found[attention] = changelist("payments_cashsession", attention=attention)
    if figures.trust is not None:
        run = figures.trust.last_run
        found["verification"] = (
            reverse("admin:auditing_verificationrun_change", args=[run.pk])
            if run
            else changelist("auditing_verificationrun")
        )
        found["verifications"] = changelist("auditing_verificationrun")
    if figures.jobs is not None:
        found["jobs"] = changelist("tasks_jobhealth")
    if figures.mail is not None:
        found["failed_mail"] = changelist("mailing_emailmessage", status__exact="failed")
        found["undelivered_mail"] = changelist("mailing_emailmessage", delivery="undelivered")
    return found


@register.inclusion_tag("backoffice/dashboard.html", takes_context=True)
def dashboard(context) -> dict:
    request = context["request"]
    figures = dashboard_figures(now=timezone.now(), panels=panels_for(request.user))
    jobs = ()
    if figures.jobs is not None:
        jobs = tuple(
            JobRow(
                name=job.name,
                label=JOB_LABELS.get(job.name, job.name),
                state=job.state,
                state_label=JOB_STATES[job.state],
                overdue=job.failing,
                last_started_at=job.last_started_at,
                last_status=job.last_status,
                outcome=RUN_OUTCOMES.get(job.last_status, job.last_status),
                last_success_at=job.last_success_at,
            )
            for job in figures.jobs.jobs
        )
    return {
        "figures": figures,
        "currency": figures.currency,
        "cash": figures.cash,
        "trust": figures.trust,
        "jobs": jobs,
        "jobs_figures": figures.jobs,
        "mail": figures.mail,
        "chart": chart_layout(figures.chart.days) if figures.chart else None,
        "chart_computed_at": figures.chart.computed_at if figures.chart else None,
        "links": links(figures),
    }
