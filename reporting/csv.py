"""The commission report's table, one row per agent: the email's CSV attachment (amounts as
plain decimals), and the columns the admin's downloads reuse (reporting/exports.py)."""

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

from django.utils import translation
from django.utils.translation import gettext

from project.spreadsheets import csv_cell
from reporting.figures import LINE_AMOUNTS, CommissionFigures


def commission_report_header(*, currency: str) -> list[str]:
    """The column titles, in the active language."""
    amount = {"currency": currency}
    return [
        gettext("Agent code"),
        gettext("Agent name"),
        gettext("Transactions"),
        gettext("Tax collected (%(currency)s)") % amount,
        gettext("Commission earned (%(currency)s)") % amount,
        gettext("Pending (%(currency)s)") % amount,
        gettext("Paid (%(currency)s)") % amount,
        gettext("Cancelled (%(currency)s)") % amount,
    ]


def commission_report_rows(*, figures: CommissionFigures) -> Iterator[list[str | int | Decimal]]:
    """One row per agent under ``commission_report_header``: texts as stored, numbers as
    numbers, for each format to write (and defuse) its own way."""
    for row in figures.agents:
        yield [
            row.agent_code,
            row.agent_name,
            row.transactions,
            *(getattr(row, name) for name in LINE_AMOUNTS),
        ]


def commission_report_csv(*, figures: CommissionFigures) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # The attachment is read by scripts as well as people: its titles stay English whatever
    # the email's language, as they always were.
    with translation.override("en"):
        writer.writerow(commission_report_header(currency=figures.currency))
    writer.writerows(
        [csv_cell(value) for value in row] for row in commission_report_rows(figures=figures)
    )
    return buffer.getvalue()
