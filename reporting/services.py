"""Writes of the commission report: a month's figures stored once, and each send of them
logged per recipient together with its email."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from mailing.addresses import email_address_validate
from mailing.models import EmailMessage
from mailing.services import email_queue
from reporting.csv import commission_report_csv
from reporting.figures import CommissionFigures
from reporting.models import CommissionReport, CommissionReportDelivery, CommissionReportLine
from reporting.periods import period_bounds, period_key
from reporting.selectors import commission_report_figures, commission_report_recipients_plan

EMAIL_PURPOSE = "commission_report"
EMAIL_TEMPLATE = "reporting/email/commission_report"
STATUSES = ("pending", "paid", "cancelled")


@dataclass(frozen=True)
class ReportSending:
    """What one run's send did: the email it queued (None: nobody new to send to), the
    addresses it queued the report for, and those of its recipients that already had it
    (their latest logged delivery), which it did not send it to again."""

    email: EmailMessage | None
    new_recipients: tuple[str, ...]
    already_had: tuple[CommissionReportDelivery, ...]


def commission_report_store(
    *,
    year: int,
    month: int,
    trigger: str,
    generated_at: dt.datetime,
    figures: CommissionFigures,
    recipients: Sequence[str],
) -> tuple[CommissionReport, ReportSending]:
    """Store the month's report and its lines, queue its email (HTML and text, with the
    CSV) and log each recipient, all in one transaction; delivery follows the commit. No
    recipients: no email.

    The month already has its report (whatever stored it): IntegrityError, nothing written.
    """
    with transaction.atomic():
        report = CommissionReport.objects.create(
            year=year,
            month=month,
            trigger=trigger,
            generated_at=generated_at,
            currency=figures.currency,
            recipients=_unique_addresses(recipients),
            **asdict(figures.totals),
        )
        CommissionReportLine.objects.bulk_create(
            CommissionReportLine(report=report, **asdict(row)) for row in figures.agents
        )
        sending = _send(
            report=report,
            figures=figures,
            recipients=recipients,
            trigger=trigger,
            resend=False,
            requested_at=generated_at,
        )
    return report, sending


def commission_report_send(
    *,
    report: CommissionReport,
    recipients: Sequence[str],
    trigger: str,
    resend: bool,
    requested_at: dt.datetime,
) -> ReportSending:
    """Send the stored report, its figures as stored, to those of ``recipients`` that the
    month's report was never sent to, or with ``resend`` to all of them again; log each
    address with the email in the same transaction.

    The report row is locked first: a second run waits, then finds the first one's log.
    """
    with transaction.atomic():
        locked = CommissionReport.objects.select_for_update().get(pk=report.pk)
        return _send(
            report=locked,
            figures=commission_report_figures(report=locked),
            recipients=recipients,
            trigger=trigger,
            resend=resend,
            requested_at=requested_at,
        )


def _send(
    *,
    report: CommissionReport,
    figures: CommissionFigures,
    recipients: Sequence[str],
    trigger: str,
    resend: bool,
    requested_at: dt.datetime,
) -> ReportSending:
    plan = commission_report_recipients_plan(
        year=report.year,
        month=report.month,
        addresses=[email_address_validate(address) for address in recipients],
    )
    send_to = plan.send_to(resend=resend)
    if not send_to:
        return ReportSending(email=None, new_recipients=(), already_had=plan.skipped(resend=resend))
    period = period_key(year=report.year, month=report.month)
    email = email_queue(
        purpose=EMAIL_PURPOSE,
        recipients=send_to,
        template=EMAIL_TEMPLATE,
        context=_email_context(report=report, figures=figures),
        about=period,
        subject_object=report,
        attachments=[
            {
                "filename": f"commission-report-{period}.csv",
                "mimetype": "text/csv",
                "content": commission_report_csv(figures=figures),
            }
        ],
    )
    CommissionReportDelivery.objects.bulk_create(
        CommissionReportDelivery(
            report=report,
            address=address,
            email=email,
            trigger=trigger,
            requested_at=requested_at,
            # Only an address that had it may have a second row: the log's constraint.
            resend=address not in plan.new,
        )
        for address in send_to
    )
    return ReportSending(
        email=email, new_recipients=send_to, already_had=plan.skipped(resend=resend)
    )


def _unique_addresses(recipients: Sequence[str]) -> list[str]:
    """Each address checked and stripped once, in order; the same address in another case
    is the same mailbox."""
    unique: dict[str, str] = {}
    for recipient in recipients:
        address = email_address_validate(recipient)
        unique.setdefault(address.lower(), address)
    return list(unique.values())


def _email_context(*, report: CommissionReport, figures: CommissionFigures) -> dict[str, Any]:
    start, end = period_bounds(year=report.year, month=report.month)
    totals = figures.totals
    return {
        "report": report,
        "first_day": start.date(),
        "last_day": (end - dt.timedelta(days=1)).date(),
        "generated_at": report.generated_at,
        "time_zone": settings.TIME_ZONE,
        "currency": figures.currency,
        "totals": totals,
        "by_status": [
            {
                "name": status,
                "count": getattr(totals, f"{status}_count"),
                "amount": getattr(totals, f"{status}_amount"),
            }
            for status in STATUSES
        ],
        "agents": figures.agents,
    }
