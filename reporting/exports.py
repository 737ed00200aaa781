"""A stored commission report as files an operator downloads from its admin page: CSV for a
spreadsheet opened by double-click, and XLSX. Both have the columns of the email's CSV
(reporting/csv.py); only the way each format writes numbers differs."""

import csv
import io
from decimal import Decimal

from django.utils.formats import get_format
from django.utils.translation import gettext
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from project.spreadsheets import csv_cell
from reporting.csv import commission_report_header, commission_report_rows
from reporting.figures import CommissionFigures

# Excel guesses a CSV's encoding from a byte-order mark only: without one, a French Excel
# reads UTF-8 as Windows-1252 and "Hérisoa" becomes "HÃ©risoa".
BYTE_ORDER_MARK = "\ufeff"
# Excel localises its number format itself; a format with a grouping shows 1 234,50 in French.
AMOUNT_FORMAT = "#,##0.00"
COUNT_FORMAT = "#,##0"


def commission_report_csv_download(*, figures: CommissionFigures) -> bytes:
    """UTF-8 with a byte-order mark, ``;`` between cells and the active language's decimal
    separator, with no grouping.

    Why: Excel splits a CSV it opens by double-click on the list separator of the
    computer's regional settings, and reads numbers with its decimal separator. In French
    settings these are ``;`` and ``,``: a ``1234.50`` would land as text (or a date), while
    ``1234,50`` is a number. A ``;`` file with a decimal point serves nobody, so the
    separator follows the language the operator reads the admin in. A thousands separator
    would make the number text again, so there is none.
    """
    decimal_separator = get_format("DECIMAL_SEPARATOR")

    def cell(value):
        if isinstance(value, Decimal):
            return f"{value:f}".replace(".", decimal_separator)
        return csv_cell(value)

    buffer = io.StringIO()
    buffer.write(BYTE_ORDER_MARK)
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(commission_report_header(currency=figures.currency))
    rows = commission_report_rows(figures=figures)
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _xlsx_text(value):
    # openpyxl refuses control characters (a vertical tab from a name pasted from Word):
    # the cell keeps the rest of the name rather than the download failing for good.
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def commission_report_xlsx(*, figures: CommissionFigures, title: str) -> bytes:
    """One sheet: the bold header row, one row per agent with numbers as numbers, and a
    bold totals row holding the report's own totals (values, not formulas: a reader without
    a calculation engine sees them too)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    header = commission_report_header(currency=figures.currency)
    sheet.append(header)
    for row in commission_report_rows(figures=figures):
        sheet.append([_xlsx_text(value) for value in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                # openpyxl stores a text starting with "=" as a formula; a name is text.
                cell.data_type = "s"
    totals = figures.totals
    sheet.append(
        [
            gettext("Total"),
            "",
            totals.transactions,
            totals.tax_collected,
            totals.commissions_total,
            totals.pending_amount,
            totals.paid_amount,
            totals.cancelled_amount,
        ]
    )
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    for row in sheet.iter_rows(min_row=2, min_col=3):
        row[0].number_format = COUNT_FORMAT
        for cell in row[1:]:
            cell.number_format = AMOUNT_FORMAT
    for index, width in enumerate((12, 30, 13, 18, 18, 16, 16, 16), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
