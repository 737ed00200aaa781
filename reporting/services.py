"""Writes of the commission report: a month's figures stored with their email, together."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import transaction

from mailing.models import EmailMessage
from mailing.services import email_queue
from reporting.csv import commission_report_csv
from reporting.figures import CommissionFigures
from reporting.models import CommissionReport, CommissionReportLine
from reporting.periods import period_bounds, period_key

EMAIL_PURPOSE = "commission_report"
EMAIL_TEMPLATE = "reporting/email/commission_report"
STATUSES = ("pending", "paid", "cancelled")


def commission_report_store(
    *,
    year: int,
    month: int,
    trigger: str,
    generated_at: dt.datetime,
    figures: CommissionFigures,
    recipients: Sequence[str],
) -> tuple[CommissionReport, EmailMessage | None]:
    """Store the report and its lines and queue its email (HTML and text, with the CSV),
    all in one transaction; delivery follows the commit. No recipients: no email.

    A second scheduled (``beat``) report of the same month raises IntegrityError.
    """
    with transaction.atomic():
        report = CommissionReport.objects.create(
            year=year,
            month=month,
            trigger=trigger,
            generated_at=generated_at,
            currency=figures.currency,
            recipients=list(recipients),
            **asdict(figures.totals),
        )
        CommissionReportLine.objects.bulk_create(
            CommissionReportLine(report=report, **asdict(row)) for row in figures.agents
        )
        if not recipients:
            return report, None
        period = period_key(year=year, month=month)
        email = email_queue(
            purpose=EMAIL_PURPOSE,
            recipients=recipients,
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
    return report, email


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
