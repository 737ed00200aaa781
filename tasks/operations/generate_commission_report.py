"""generate_commission_report: one complete month's commissions (default: the previous
month, in TIME_ZONE), checked against their parts, stored once and emailed with a CSV.

A month has one report, whoever asks. The first run stores it; every later run (a
redelivered or retried task, beat after a manual run, a manual run after beat) reuses it
with its figures as stored, and sends it only to those of its own recipients it was never
sent to: the delivery log says who had it. ``resend`` sends it again, on purpose, and is
logged too. A dry run stores and sends nothing and says what a run would do.
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
from reporting.models import CommissionReport, CommissionReportDelivery
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
    commission_report_get,
    commission_report_recipients_plan,
)
from reporting.services import ReportSending, commission_report_send, commission_report_store
from tasks.inputs import (
    InvalidInput,
    email_option,
    flag_option,
    no_unknown_arguments,
    whole_number_option,
)
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation

logger = logging.getLogger(__name__)

NAME = "generate_commission_report"
ARGUMENTS = ("year", "month", "email", "dry_run", "resend")


@dataclass(frozen=True)
class Options:
    year: int
    month: int
    email: str | None = None
    dry_run: bool = False
    resend: bool = False

    def task_arguments(self) -> dict[str, Any]:
        """The task's plain arguments, with the month already resolved."""
        return {name: getattr(self, name) for name in ARGUMENTS}


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
class EarlierDelivery:
    """A recipient of this run that the month's report had already been sent to."""

    address: str
    email_id: int
    email_status: str
    requested_at: dt.datetime
    trigger: str

    @classmethod
    def of(cls, delivery: CommissionReportDelivery) -> "EarlierDelivery":
        return cls(
            address=delivery.address,
            email_id=delivery.email_id,
            email_status=delivery.email.status,
            requested_at=delivery.requested_at,
            trigger=delivery.trigger,
        )


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
    resend: bool
    # This run's recipients: --email, or every active staff address.
    recipients: tuple[str, ...]
    # Those this run sent the report to (a dry run: would send it to).
    new_recipients: tuple[str, ...]
    # Those that already had it: not sent again (unless resend).
    already_had: tuple[EarlierDelivery, ...]
    emails: EmailOutcomes
    currency: str
    totals: Totals
    by_status: ByStatus
    agents: tuple[AgentRow, ...]
    checks: tuple[Check, ...]
    message: str | None = omitted_when_none()
    warning: str | None = omitted_when_none()


def options_parse(
    *,
    year: Any = None,
    month: Any = None,
    email: Any = None,
    dry_run: Any = False,
    resend: Any = False,
    **unknown: Any,
) -> Options:
    no_unknown_arguments(unknown, operation=NAME, known=(*ARGUMENTS, "trigger"))
    dry_run = flag_option(dry_run, option="dry_run")
    resend = flag_option(resend, option="resend")
    try:
        year, month = report_period_resolve(
            year=None if year is None else whole_number_option(year, option="--year"),
            month=None if month is None else whole_number_option(month, option="--month"),
            today=local_today(),
        )
    except ReportPeriodError as error:
        raise InvalidInput(str(error)) from error
    return Options(
        year=year, month=month, email=email_option(email), dry_run=dry_run, resend=resend
    )


def generate_commission_report(*, options: Options, trigger: Trigger) -> CommissionReportResult:
    year, month = options.year, options.month
    recipients = (options.email,) if options.email is not None else tuple(staff_email_addresses())
    report = commission_report_get(year=year, month=month)
    if report is None:
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
                    f"The {result.period_label} report does not add up ({'; '.join(failed)}); "
                    "nothing was stored or sent."
                ),
            )
        if options.dry_run:
            return replace(result, new_recipients=recipients)
        try:
            report, sending = commission_report_store(
                year=year,
                month=month,
                trigger=trigger.value,
                generated_at=now,
                figures=figures,
                recipients=recipients,
            )
        except IntegrityError:
            # The unique constraint is the last word when two runs race to store the month.
            report = commission_report_get(year=year, month=month)
            if report is None:
                raise
        else:
            return _sent(result, report=report, sending=sending)
    return _reused(options=options, trigger=trigger, report=report, recipients=recipients)


def _reused(
    *, options: Options, trigger: Trigger, report: CommissionReport, recipients: tuple[str, ...]
) -> CommissionReportResult:
    """The month's stored report, as it was stored, sent to whoever of this run's
    recipients never had it."""
    result = replace(
        _result(
            options=options,
            trigger=trigger,
            figures=commission_report_figures(report=report),
            generated_at=report.generated_at,
            recipients=recipients,
        ),
        already_generated=True,
        report_id=report.pk,
    )
    logger.info("Commission report %s already stored as #%s", result.period, report.pk)
    if options.dry_run:
        plan = commission_report_recipients_plan(
            year=report.year, month=report.month, addresses=recipients
        )
        return replace(
            result,
            new_recipients=plan.send_to(resend=options.resend),
            already_had=tuple(
                EarlierDelivery.of(delivery) for delivery in plan.skipped(resend=options.resend)
            ),
        )
    sending = commission_report_send(
        report=report,
        recipients=recipients,
        trigger=trigger.value,
        resend=options.resend,
        requested_at=timezone.now(),
    )
    return _sent(result, report=report, sending=sending)


def _sent(
    result: CommissionReportResult, *, report: CommissionReport, sending: ReportSending
) -> CommissionReportResult:
    """After the commit: "sent" only once the mail server has accepted the message."""
    result = replace(
        result,
        report_id=report.pk,
        new_recipients=sending.new_recipients,
        already_had=tuple(EarlierDelivery.of(delivery) for delivery in sending.already_had),
        emails=email_outcomes([sending.email.pk] if sending.email is not None else []),
    )
    if not result.recipients:
        result = replace(
            result,
            warning=(
                "Nobody to send the report to: no --email was given and no active staff user "
                "has an email address. "
                + (
                    "The report was not emailed."
                    if result.already_generated
                    else "The report was stored but not emailed."
                )
            ),
        )
        logger.warning("Commission report %s not emailed: no recipients", report.pk)
    logger.info(
        "Commission report %s (%s) #%s%s; emailed now to %s, already had it: %s",
        result.period,
        result.trigger,
        report.pk,
        " reused" if result.already_generated else " stored",
        list(result.new_recipients),
        [earlier.address for earlier in result.already_had],
    )
    return result


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
        resend=options.resend,
        recipients=recipients,
        new_recipients=(),
        already_had=(),
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
