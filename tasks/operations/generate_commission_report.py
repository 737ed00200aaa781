"""generate_commission_report: one complete month's commissions (default: the previous
month, in TIME_ZONE), checked against their parts, stored and emailed with a CSV.

A scheduled (beat) run whose month already has a report sends nothing again; a manual or
enqueued run always generates and sends. A dry run stores and sends nothing.
"""

import datetime as dt
import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from mailing.selectors import EmailOutcomes, email_outcomes, staff_email_addresses
from reporting.figures import CommissionFigures, commission_figures_checks
from reporting.models import CommissionReport
from reporting.periods import (
    ReportPeriodError,
    local_today,
    period_bounds,
    period_key,
    period_label,
    report_period_resolve,
)
from reporting.selectors import (
    commission_figures_select,
    commission_report_figures,
    commission_report_scheduled_get,
)
from reporting.services import commission_report_store
from tasks.inputs import InvalidInput, email_option
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation

logger = logging.getLogger(__name__)

NAME = "generate_commission_report"


@dataclass(frozen=True)
class Options:
    year: int
    month: int
    email: str | None = None
    dry_run: bool = False

    def task_arguments(self) -> dict[str, Any]:
        """The task's plain arguments, with the month already resolved."""
        return {
            "year": self.year,
            "month": self.month,
            "email": self.email,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class Totals:
    transactions: int
    voided_transactions: int
    tax_collected: Decimal
    commissions_total: Decimal


@dataclass(frozen=True)
class StatusFigures:
    count: int
    amount: Decimal


@dataclass(frozen=True)
class ByStatus:
    pending: StatusFigures
    paid: StatusFigures
    cancelled: StatusFigures


@dataclass(frozen=True)
class AgentRow:
    agent: str
    agent_name: str
    transactions: int
    tax_collected: Decimal
    commission_earned: Decimal
    pending_amount: Decimal
    paid_amount: Decimal
    cancelled_amount: Decimal


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    total: Decimal
    parts: Decimal
    agents: tuple[str, ...] | None = omitted_when_none()


@dataclass(frozen=True)
class CommissionReportResult:
    operation: str
    trigger: Trigger
    dry_run: bool
    status: OperationStatus
    period: str
    period_label: str
    period_start: dt.datetime
    period_end: dt.datetime
    time_zone: str
    generated_at: dt.datetime
    already_generated: bool
    report_id: int | None
    recipients: tuple[str, ...]
    emails: EmailOutcomes
    currency: str
    totals: Totals
    by_status: ByStatus
    agents: tuple[AgentRow, ...]
    checks: tuple[Check, ...]
    message: str | None = omitted_when_none()
    warning: str | None = omitted_when_none()


def _whole_number(value: Any, *, option: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InvalidInput(f"{option} must be a whole number, not {value!r:.40}.")


def options_parse(
    *,
    year: Any = None,
    month: Any = None,
    email: Any = None,
    dry_run: Any = False,
) -> Options:
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dry_run must be true or false, not {dry_run!r:.40}.")
    try:
        year, month = report_period_resolve(
            year=_whole_number(year, option="--year"),
            month=_whole_number(month, option="--month"),
            today=local_today(),
        )
    except ReportPeriodError as error:
        raise InvalidInput(str(error)) from error
    return Options(year=year, month=month, email=email_option(email), dry_run=dry_run)


def generate_commission_report(*, options: Options, trigger: Trigger) -> CommissionReportResult:
    year, month, dry_run = options.year, options.month, options.dry_run
    label = period_label(year=year, month=month)
    recipients = (options.email,) if options.email is not None else tuple(staff_email_addresses())
    if trigger == Trigger.BEAT and not dry_run:
        existing = commission_report_scheduled_get(year=year, month=month)
        if existing is not None:
            return _already_generated(options=options, trigger=trigger, report=existing)

    start, end = period_bounds(year=year, month=month)
    now = timezone.now()
    figures = commission_figures_select(start=start, end=end)
    result = _result(
        options=options,
        trigger=trigger,
        figures=figures,
        generated_at=now,
        recipients=recipients,
    )
    failed = [check.check for check in result.checks if not check.ok]
    if failed:
        logger.error("Commission report %s does not add up: %s", result.period, failed)
        return replace(
            result,
            status=OperationStatus.FAILED,
            message=(
                f"The {label} report does not add up ({'; '.join(failed)}); "
                "nothing was stored or sent."
            ),
        )
    if dry_run:
        return result

    try:
        report, email = commission_report_store(
            year=year,
            month=month,
            trigger=trigger.value,
            generated_at=now,
            figures=figures,
            recipients=recipients,
        )
    except IntegrityError:
        # The partial unique index is the last word when two scheduled runs race.
        existing = (
            commission_report_scheduled_get(year=year, month=month)
            if trigger == Trigger.BEAT
            else None
        )
        if existing is None:
            raise
        return _already_generated(options=options, trigger=trigger, report=existing)

    # After the commit: "sent" only once the mail server has accepted the message.
    result = replace(
        result,
        report_id=report.pk,
        emails=email_outcomes([email.pk] if email is not None else []),
    )
    if not recipients:
        result = replace(
            result,
            warning=(
                "Nobody to send the report to: no --email was given and no active staff user "
                "has an email address. The report was stored but not emailed."
            ),
        )
        logger.warning("Commission report %s stored but not emailed: no recipients", report.pk)
    logger.info(
        "Commission report %s (%s, %s) stored as #%s; emails %s",
        result.period,
        trigger,
        result.totals.commissions_total,
        report.pk,
        result.emails,
    )
    return result


def _already_generated(
    *, options: Options, trigger: Trigger, report: CommissionReport
) -> CommissionReportResult:
    """What the first scheduled run stored and sent; this run sends nothing."""
    generated_at = timezone.localtime(report.generated_at)
    result = _result(
        options=options,
        trigger=trigger,
        figures=commission_report_figures(report=report),
        generated_at=report.generated_at,
        recipients=tuple(report.recipients),
    )
    logger.info("Commission report %s already generated as #%s", result.period, report.pk)
    return replace(
        result,
        already_generated=True,
        report_id=report.pk,
        warning=(
            f"The scheduled {result.period_label} report was already generated at "
            f"{generated_at:%Y-%m-%d %H:%M} (report #{report.pk}); it was not sent again."
        ),
    )


def _result(
    *,
    options: Options,
    trigger: Trigger,
    figures: CommissionFigures,
    generated_at: dt.datetime,
    recipients: tuple[str, ...],
) -> CommissionReportResult:
    """The report as it would be sent, stored and sent nothing yet."""
    start, end = period_bounds(year=options.year, month=options.month)
    totals = figures.totals
    return CommissionReportResult(
        operation=NAME,
        trigger=trigger,
        dry_run=options.dry_run,
        status=OperationStatus.OK,
        period=period_key(year=options.year, month=options.month),
        period_label=period_label(year=options.year, month=options.month),
        period_start=start,
        period_end=end,
        time_zone=settings.TIME_ZONE,
        generated_at=generated_at,
        already_generated=False,
        report_id=None,
        recipients=recipients,
        emails=EmailOutcomes(),
        currency=figures.currency,
        totals=Totals(
            transactions=totals.transactions,
            voided_transactions=totals.voided_transactions,
            tax_collected=totals.tax_collected,
            commissions_total=totals.commissions_total,
        ),
        by_status=ByStatus(
            pending=StatusFigures(count=totals.pending_count, amount=totals.pending_amount),
            paid=StatusFigures(count=totals.paid_count, amount=totals.paid_amount),
            cancelled=StatusFigures(count=totals.cancelled_count, amount=totals.cancelled_amount),
        ),
        agents=tuple(
            AgentRow(
                agent=row.agent_code,
                agent_name=row.agent_name,
                transactions=row.transactions,
                tax_collected=row.tax_collected,
                commission_earned=row.commission_earned,
                pending_amount=row.pending_amount,
                paid_amount=row.paid_amount,
                cancelled_amount=row.cancelled_amount,
            )
            for row in figures.agents
        ),
        checks=tuple(
            Check(
                check=check.name,
                ok=check.ok,
                total=check.total,
                parts=check.parts,
                agents=check.agents or None,
            )
            for check in commission_figures_checks(figures=figures)
        ),
    )


OPERATION = Operation(
    name=NAME,
    parse=options_parse,
    run=generate_commission_report,
    takes_lock=lambda options: not options.dry_run,
)
