"""The monthly commission report (generate_commission_report): computed in the database,
checked against its parts, stored, and emailed with a CSV of the agents' rows."""

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.translation import gettext, pgettext_lazy

from mailing.addresses import email_address_validate
from mailing.selectors import email_outcomes, staff_email_addresses
from mailing.services import email_queue
from payments.models import SystemConfiguration
from payments.money import format_money_lazy
from reporting.models import CommissionReport, CommissionReportLine
from reporting.periods import (
    local_today,
    period_bounds,
    period_key,
    period_label,
    report_period_resolve,
)
from reporting.selectors import commission_agent_rows_select, commission_totals_select

logger = logging.getLogger(__name__)

OPERATION = "generate_commission_report"
EMAIL_PURPOSE = "commission_report"
EMAIL_TEMPLATE = "reporting/email/commission_report"
SCHEDULED = "beat"

STATUSES = ("pending", "paid", "cancelled")
STATUS_LABELS = {
    "pending": pgettext_lazy("commission status", "Pending"),
    "paid": pgettext_lazy("commission status", "Paid"),
    "cancelled": pgettext_lazy("commission status", "Cancelled"),
}
TOTAL_FIELDS = (
    "transactions",
    "voided_transactions",
    "tax_collected",
    "commissions_total",
    *(f"{status}_{figure}" for status in STATUSES for figure in ("count", "amount")),
)
LINE_FIELDS = (
    "agent_code",
    "agent_name",
    "transactions",
    "tax_collected",
    "commission_earned",
    "pending_amount",
    "paid_amount",
    "cancelled_amount",
)
LINE_AMOUNTS = (
    "tax_collected",
    "commission_earned",
    "pending_amount",
    "paid_amount",
    "cancelled_amount",
)


def commission_report_generate(
    *, year: int | None, month: int | None, email: str | None, dry_run: bool, trigger: str
) -> dict[str, Any]:
    """Report on one complete month (default: the previous one, in TIME_ZONE).

    A scheduled (beat) run whose month already has a report sends nothing again; a manual
    or enqueued run always generates and sends. A dry run stores and sends nothing.
    """
    summary: dict[str, Any] = {"operation": OPERATION, "trigger": trigger, "dry_run": dry_run}
    try:
        year, month = report_period_resolve(year=year, month=month, today=local_today())
        recipients = (
            [email_address_validate(email)] if email is not None else staff_email_addresses()
        )
    except ValueError as error:
        return {**summary, "status": "failed", "message": str(error)}

    start, end = period_bounds(year=year, month=month)
    summary.update(
        period=period_key(year=year, month=month),
        period_label=period_label(year=year, month=month),
        period_start=timezone.localtime(start).isoformat(),
        period_end=timezone.localtime(end).isoformat(),
        time_zone=settings.TIME_ZONE,
        already_generated=False,
        report_id=None,
        recipients=recipients,
        emails=asdict(email_outcomes([])),
    )
    if trigger == SCHEDULED and not dry_run:
        existing = _scheduled_report(year=year, month=month)
        if existing is not None:
            return _already_generated(summary, existing)

    currency = SystemConfiguration.load().currency_code
    now = timezone.now()
    with _one_snapshot():
        totals = commission_totals_select(start=start, end=end)
        rows = commission_agent_rows_select(start=start, end=end)
    summary.update(_figures_json(totals=totals, rows=rows, currency=currency))
    summary.update(status="ok", generated_at=timezone.localtime(now).isoformat())
    failed = [check["check"] for check in summary["checks"] if not check["ok"]]
    if failed:
        summary.update(
            status="failed",
            message=(
                f"The {summary['period_label']} report does not add up ({'; '.join(failed)}); "
                "nothing was stored or sent."
            ),
        )
        logger.error("Commission report %s does not add up: %s", summary["period"], failed)
        return summary
    if dry_run:
        return summary

    try:
        report, email_id = _report_store(
            year=year,
            month=month,
            trigger=trigger,
            generated_at=now,
            currency=currency,
            totals=totals,
            rows=rows,
            recipients=recipients,
            summary=summary,
        )
    except IntegrityError:
        # The partial unique index is the last word when two scheduled runs race.
        existing = _scheduled_report(year=year, month=month) if trigger == SCHEDULED else None
        if existing is None:
            raise
        return _already_generated(summary, existing)

    # After the commit: "sent" only once the mail server has accepted the message.
    summary.update(
        report_id=report.pk, emails=asdict(email_outcomes([email_id] if email_id else []))
    )
    if not recipients:
        summary["warning"] = (
            "Nobody to send the report to: no --email was given and no active staff user has "
            "an email address. The report was stored but not emailed."
        )
        logger.warning("Commission report %s stored but not emailed: no recipients", report.pk)
    logger.info(
        "Commission report %s (%s, %s) stored as #%s; emails %s",
        summary["period"],
        trigger,
        summary["totals"]["commissions_total"],
        report.pk,
        summary["emails"],
    )
    return summary


def _scheduled_report(*, year: int, month: int) -> CommissionReport | None:
    return CommissionReport.objects.filter(year=year, month=month, trigger=SCHEDULED).first()


def _already_generated(summary: dict[str, Any], report: CommissionReport) -> dict[str, Any]:
    """What the first scheduled run stored and sent; this run sends nothing."""
    totals = {name: getattr(report, name) for name in TOTAL_FIELDS}
    rows = list(report.lines.order_by("agent_code").values("agent_id", *LINE_FIELDS))
    generated_at = timezone.localtime(report.generated_at)
    summary = {
        **summary,
        **_figures_json(totals=totals, rows=rows, currency=report.currency),
        "status": "ok",
        "already_generated": True,
        "report_id": report.pk,
        "generated_at": generated_at.isoformat(),
        "recipients": report.recipients,
        "warning": (
            f"The scheduled {summary['period_label']} report was already generated at "
            f"{generated_at:%Y-%m-%d %H:%M} (report #{report.pk}); it was not sent again."
        ),
    }
    logger.info("Commission report %s already generated as #%s", summary["period"], report.pk)
    return summary


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read the totals and their parts from one snapshot, so that a payment voided or a
    commission paid while the report runs cannot make them disagree."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _checks(*, totals: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Every total against the sum of its parts."""

    def over_agents(name: str) -> Any:
        return sum((row[name] for row in rows), start=Decimal(0) if name != "transactions" else 0)

    pairs = [
        (
            "pending + paid = total commissions",
            totals["commissions_total"],
            totals["pending_amount"] + totals["paid_amount"],
        ),
        (
            "agents' transactions = transactions",
            totals["transactions"],
            over_agents("transactions"),
        ),
        (
            "agents' tax collected = tax collected",
            totals["tax_collected"],
            over_agents("tax_collected"),
        ),
        (
            "agents' commissions earned = total commissions",
            totals["commissions_total"],
            over_agents("commission_earned"),
        ),
        ("agents' pending = pending", totals["pending_amount"], over_agents("pending_amount")),
        ("agents' paid = paid", totals["paid_amount"], over_agents("paid_amount")),
        (
            "agents' cancelled = cancelled",
            totals["cancelled_amount"],
            over_agents("cancelled_amount"),
        ),
    ]
    checks = [
        {"check": name, "ok": total == parts, "total": str(total), "parts": str(parts)}
        for name, total, parts in pairs
    ]
    uneven = [
        row["agent_code"]
        for row in rows
        if row["pending_amount"] + row["paid_amount"] != row["commission_earned"]
    ]
    checks.append(
        {
            "check": "each agent's pending + paid = earned",
            "ok": not uneven,
            "total": str(over_agents("commission_earned")),
            "parts": str(over_agents("pending_amount") + over_agents("paid_amount")),
            **({"agents": uneven} if uneven else {}),
        }
    )
    return checks


def _figures_json(
    *, totals: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], currency: str
) -> dict[str, Any]:
    return {
        "currency": currency,
        "totals": {
            "transactions": totals["transactions"],
            "voided_transactions": totals["voided_transactions"],
            "tax_collected": str(totals["tax_collected"]),
            "commissions_total": str(totals["commissions_total"]),
        },
        "by_status": {
            status: {
                "count": totals[f"{status}_count"],
                "amount": str(totals[f"{status}_amount"]),
            }
            for status in STATUSES
        },
        "agents": [
            {
                "agent": row["agent_code"],
                "agent_name": row["agent_name"],
                "transactions": row["transactions"],
                **{name: str(row[name]) for name in LINE_AMOUNTS},
            }
            for row in rows
        ],
        "checks": _checks(totals=totals, rows=rows),
    }


def _report_store(
    *,
    year: int,
    month: int,
    trigger: str,
    generated_at: dt.datetime,
    currency: str,
    totals: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    recipients: list[str],
    summary: Mapping[str, Any],
) -> tuple[CommissionReport, int | None]:
    """The report, its lines and its email commit together; delivery follows the commit."""
    with transaction.atomic():
        report = CommissionReport.objects.create(
            year=year,
            month=month,
            trigger=trigger,
            generated_at=generated_at,
            currency=currency,
            recipients=recipients,
            **{name: totals[name] for name in TOTAL_FIELDS},
        )
        CommissionReportLine.objects.bulk_create(
            CommissionReportLine(
                report=report, agent_id=row["agent_id"], **{name: row[name] for name in LINE_FIELDS}
            )
            for row in rows
        )
        if not recipients:
            return report, None
        email = email_queue(
            purpose=EMAIL_PURPOSE,
            recipients=recipients,
            subject=_subject_lazy(first_day=dt.date(year, month, 1)),
            template=EMAIL_TEMPLATE,
            context=_email_context(report=report, summary=summary),
            about=summary["period"],
            subject_object=report,
            attachments=[
                {
                    "filename": f"commission-report-{summary['period']}.csv",
                    "mimetype": "text/csv",
                    "content": commission_report_csv(rows=summary["agents"], currency=currency),
                }
            ],
        )
    return report, email.pk


def _email_context(*, report: CommissionReport, summary: Mapping[str, Any]) -> dict[str, Any]:
    currency = report.currency

    def money(amount: str) -> str:
        return format_money_lazy(Decimal(amount), currency=currency)

    start, end = period_bounds(year=report.year, month=report.month)
    totals = summary["totals"]
    return {
        "report": report,
        "first_day": start.date(),
        "last_day": (end - dt.timedelta(days=1)).date(),
        "generated_at": report.generated_at,
        "time_zone": settings.TIME_ZONE,
        "currency": currency,
        "transactions": totals["transactions"],
        "voided_transactions": totals["voided_transactions"],
        "tax_collected": money(totals["tax_collected"]),
        "commissions_total": money(totals["commissions_total"]),
        "by_status": [
            {
                "label": STATUS_LABELS[status],
                "count": figures["count"],
                "amount": money(figures["amount"]),
            }
            for status, figures in summary["by_status"].items()
        ],
        "agents": [
            {
                "code": row["agent"],
                "name": row["agent_name"],
                "transactions": row["transactions"],
                **{name: money(row[name]) for name in LINE_AMOUNTS},
            }
            for row in summary["agents"]
        ],
    }


def _subject(*, first_day: dt.date) -> str:
    # The month's name in the email language: "Rapport des commissions — octobre 2026".
    return gettext("Commission report — %(month)s") % {"month": date_format(first_day, "F Y")}


_subject_lazy = lazy(_subject, str)


def _csv_cell(text: str) -> str:
    # A spreadsheet would run a name starting with = + - or @ as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def commission_report_csv(*, rows: Sequence[Mapping[str, Any]], currency: str) -> str:
    """One row per agent, amounts as plain decimals, from the summary's agent rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "Agent code",
            "Agent name",
            "Transactions",
            f"Tax collected ({currency})",
            f"Commission earned ({currency})",
            f"Pending ({currency})",
            f"Paid ({currency})",
            f"Cancelled ({currency})",
        ]
    )
    writer.writerows(
        [
            _csv_cell(row["agent"]),
            _csv_cell(row["agent_name"]),
            row["transactions"],
            *(row[name] for name in LINE_AMOUNTS),
        ]
        for row in rows
    )
    return buffer.getvalue()
